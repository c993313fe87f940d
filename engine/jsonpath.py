"""JSONPath expressions, compiled once per provider.

Plain paths (``$.choices[0].delta.content``, ``$['key']``, ``[*]`` and simple
filters such as ``[?(@.type == 'text')]``) become a tuple of steps walked
directly: they are what provider files use, and they run on every stream chunk.
Anything richer (slices, boolean filters, functions) goes to jsonpath-ng's
extended parser, imported only then. The walker follows jsonpath-ng's (RFC 9535)
comparison rules, and tests check that both agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from .errors import JSONPathError

__all__ = ["Extractor", "JSONPathError", "compile_one"]

_STEP = re.compile(
    r"""\.([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[(?:'([^'\\]*)'|"([^"\\]*)")\]|(\[\*\]|\.\*)"""
    r"""|\[\?\(@\.([A-Za-z_][\w-]*)\s*(==|!=)\s*('[^'\\]*'|"[^"\\]*"|true|false|null|-?\d+(?:\.\d+)?)\s*\)\]"""
    r"""|\[\?\(@\.([A-Za-z_][\w-]*)\s*\)\]"""
)
WILDCARD = object()
_LITERALS = {"true": True, "false": False, "null": None}


class _Filter:
    """``[?(@.key == literal)]`` / ``!=`` / ``[?(@.key)]`` (the key is present): keeps the children (list items
    or mapping values) that match."""

    __slots__ = ("equal", "exists", "key", "literal")

    def __init__(self, key: str, op: str, literal: str) -> None:
        self.key, self.equal, self.exists = key, op == "==", op == "exists"
        if self.exists:
            self.literal: Any = None
        elif literal in _LITERALS:
            self.literal = _LITERALS[literal]
        elif literal[0] in "'\"":
            self.literal = literal[1:-1]
        else:
            self.literal = float(literal) if "." in literal else int(literal)

    def keeps(self, child: Any) -> bool:
        if self.exists:
            return isinstance(child, dict) and self.key in child
        if not isinstance(child, dict) or self.key not in child:
            return not self.equal  # a missing member is unequal to everything, null included
        value, literal = child[self.key], self.literal
        if literal is None:
            same = value is None
        elif isinstance(value, bool) or isinstance(literal, bool):
            same = value is literal  # booleans are never numbers
        elif isinstance(literal, str):
            same = isinstance(value, str) and value == literal
        else:
            same = isinstance(value, int | float) and value == literal
        return same is self.equal


def _plain_steps(expression: str) -> tuple[Any, ...] | None:
    if not expression.startswith("$"):
        return None
    steps: list[Any] = []
    pos = 1
    while pos < len(expression):
        match = _STEP.match(expression, pos)
        if not match:
            return None
        name, index, quoted1, quoted2, wildcard, key, op, literal, present = match.groups()
        if key is not None:
            steps.append(_Filter(key, op, literal))
        elif present is not None:
            steps.append(_Filter(present, "exists", ""))
        elif wildcard is not None:
            steps.append(WILDCARD)
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else (quoted1 if quoted1 is not None else quoted2))
        pos = match.end()
    return tuple(steps)


def _walker(steps: tuple[Any, ...]) -> Callable[[Any], list[Any]]:
    if any(step is WILDCARD or isinstance(step, _Filter) for step in steps):
        return _fan_out(steps)

    def find(data: Any) -> list[Any]:
        for step in steps:
            if type(step) is int:
                if not isinstance(data, list):
                    return []
                try:
                    data = data[step]
                except IndexError:
                    return []
            else:
                if not isinstance(data, dict):
                    return []
                try:
                    data = data[step]
                except KeyError:
                    return []
        return [data]

    return find


def _plain_value(steps: tuple[Any, ...]) -> Callable[[Any], Any]:
    """The value at a path of plain keys and indexes, or ``None``: the walk of `_walker` without a list.

    Generated as straight-line code once per path (no loop, no per-step dispatch): these run for every
    stream event, several times each.
    """
    lines = ["def value(d):"]
    for step in steps:
        if type(step) is int:
            bound = f"len(d) <= {step}" if step >= 0 else f"len(d) < {-step}"
            lines += [f"    if not isinstance(d, list) or {bound}:", "        return None", f"    d = d[{step}]"]
        else:
            lines += ["    if not isinstance(d, dict):", "        return None", f"    d = d.get({step!r})"]
    lines.append("    return d")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), {"isinstance": isinstance, "len": len, "list": list, "dict": dict}, namespace)
    return namespace["value"]  # type: ignore[no-any-return]


def _fan_out(steps: tuple[Any, ...]) -> Callable[[Any], list[Any]]:
    # The plain steps before the first wildcard or filter are walked without building lists, so that a
    # path that finds nothing (no tool calls in this stream event) costs a few lookups.
    first = next(i for i, step in enumerate(steps) if step is WILDCARD or isinstance(step, _Filter))
    prefix = _plain_value(steps[:first]) if first else None
    rest = steps[first:]

    def find(data: Any) -> list[Any]:
        if prefix is not None:
            data = prefix(data)
            if data is None:
                return []
        current = [data]
        for step in rest:
            following: list[Any] = []
            for item in current:
                if step is WILDCARD:
                    if isinstance(item, list):
                        following.extend(item)
                    elif isinstance(item, dict):
                        following.extend(item.values())
                elif isinstance(step, _Filter):
                    children = item if isinstance(item, list) else item.values() if isinstance(item, dict) else ()
                    following.extend(child for child in children if step.keeps(child))
                elif type(step) is int:
                    if isinstance(item, list) and -len(item) <= step < len(item):
                        following.append(item[step])
                elif isinstance(item, dict) and step in item:
                    following.append(item[step])
            current = following
        return current

    return find


# The response headers of the reply being read, for ``header:<name>`` paths (set by `reading_headers`).
_HEADERS: ContextVar[Mapping[str, str] | None] = ContextVar("response_headers", default=None)
HEADER_PREFIX = "header:"


class reading_headers:
    """Evaluate ``header:`` paths against these response headers (case-insensitive names) inside the block.

    A class rather than a generator-based context manager: it is entered for every reply that a provider
    file reads headers from.
    """

    __slots__ = ("_headers", "_token")

    def __init__(self, headers: Mapping[str, str] | None) -> None:
        if headers is not None and not hasattr(headers, "get_list"):  # a plain mapping, not httpx.Headers
            headers = {name.lower(): value for name, value in headers.items()}
        self._headers = headers
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = _HEADERS.set(self._headers)

    def __exit__(self, *exc_info: object) -> None:
        _HEADERS.reset(self._token)


def _header_finder(name: str) -> Callable[[Any], list[Any]]:
    name = name.strip().lower()
    if not name:
        raise JSONPathError("a header path needs a name: header:<name>")

    def find(_data: Any) -> list[Any]:
        headers = _HEADERS.get()
        value = headers.get(name) if headers is not None else None
        return [] if value is None else [value]

    return find


def compile_one(expression: str) -> Callable[[Any], list[Any]]:
    """A function returning every value the expression matches in a document; ``header:<name>`` reads the
    reply's header of that name instead."""
    if expression.startswith(HEADER_PREFIX):
        return _header_finder(expression[len(HEADER_PREFIX):])
    steps = _plain_steps(expression.strip())
    if steps is not None:
        return _walker(steps)
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
    from jsonpath_ng.ext import parse

    try:
        parsed = parse(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        raise JSONPathError(f"invalid JSONPath {expression!r}: {exc}") from exc
    return lambda data: [match.value for match in parsed.find(data)]


class Extractor:
    """One field's JSONPath alternatives: the first that finds a non-null value wins."""

    __slots__ = ("_finders", "_one", "_values", "expressions", "head", "probe", "read", "reads_headers")

    def __init__(self, expressions: str | Sequence[str]) -> None:
        self.expressions = [expressions] if isinstance(expressions, str) else list(expressions)
        self._finders = [compile_one(e) for e in self.expressions]
        self.reads_headers = any(e.startswith(HEADER_PREFIX) for e in self.expressions)
        plain = [_plain_steps(e.strip()) for e in self.expressions]
        heads = {steps[0] if steps and type(steps[0]) is str else None for steps in plain}
        # The top-level key every alternative starts with: no match is possible without it.
        self.head: str | None = heads.pop() if len(heads) == 1 else None
        # Paths of plain keys and indexes find at most one value each: read it without building lists.
        single = all(steps is not None and not any(step is WILDCARD or isinstance(step, _Filter) for step in steps)
                     for steps in plain)
        self._values = tuple(_plain_value(steps) for steps in plain if steps is not None) if single else None
        self._one = self._values[0] if self._values is not None and len(self._values) == 1 else None
        # `value` as a plain function: for one plain path, the generated reader itself (no method call).
        self.read: Callable[[Any], Any] = self._one if self._one is not None else self.value
        # For one path with a wildcard or filter: the value before it, which is None when nothing can match.
        self.probe: Callable[[Any], Any] | None = None
        if self._values is None and len(plain) == 1 and plain[0]:
            steps = plain[0]
            first = next(i for i, step in enumerate(steps) if step is WILDCARD or isinstance(step, _Filter))
            if first:
                self.probe = _plain_value(steps[:first])

    def value(self, data: Any) -> Any:
        """The first non-null match, or ``None``."""
        if self._one is not None:
            return self._one(data)
        if self._values is not None:
            for read in self._values:
                value = read(data)
                if value is not None:
                    return value
            return None
        for find in self._finders:
            for value in find(data):
                if value is not None:
                    return value
        return None

    def all(self, data: Any) -> list[Any]:
        """Every non-null match of the first alternative that matches anything."""
        if self._values is not None:
            value = self.value(data)
            return [] if value is None else [value]
        for find in self._finders:
            values = [v for v in find(data) if v is not None]
            if values:
                return values
        return []

    def text(self, data: Any) -> str | None:
        """All matches of the first alternative that matches, joined as text; ``None`` if none.

        Structured values (a forced tool's ``input``) become their JSON text.
        """
        if self._values is not None:
            value = self.value(data)
            return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for find in self._finders:
            values = [v for v in find(data) if v is not None]
            if values:
                return "".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values)
        return None

    def strings(self, data: Any) -> str | None:
        """Like `text`, counting only string matches: a stream delta is a piece of text, never a structure."""
        if self._one is not None:
            value = self._one(data)
            return value if type(value) is str else None
        if self._values is not None:
            for read in self._values:
                value = read(data)
                if type(value) is str:
                    return value
            return None
        for find in self._finders:
            values = [v for v in find(data) if type(v) is str]
            if values:
                return values[0] if len(values) == 1 else "".join(values)
        return None

    def found(self, data: Any) -> bool:
        """Whether any alternative matches at all, even a null value."""
        return any(find(data) for find in self._finders)


def plain_path(extractor: Extractor) -> tuple[Any, ...] | None:
    """The steps of an extractor that is one path of plain keys and indexes, else ``None``."""
    if len(extractor.expressions) != 1 or extractor._values is None:
        return None
    return _plain_steps(extractor.expressions[0].strip())


def plain_reader(steps: tuple[Any, ...]) -> Callable[[Any], Any]:
    """The value at these plain steps, or ``None`` (see `plain_path`)."""
    return _plain_value(steps)
