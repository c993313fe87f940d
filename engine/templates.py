"""The Jinja environments provider templates run in, and their helper filters.

Templates run sandboxed (a provider file cannot reach Python internals) with
``StrictUndefined`` (a typo is an error, not an empty string). User content is
only ever a template *variable*, never template source, so a message holding
``{{ 7*7 }}`` is sent as those characters.

Each kind of template escapes what it outputs:
- body: every ``{{ }}`` must go through ``| tojson``; anything else is an error,
  so user text can never break out of a JSON string;
- path: values are percent-encoded (a model id cannot add path segments);
- text (base URL, headers, query values): values are inserted as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import RawOutputError

__all__ = ["FILTERS", "RawOutputError", "TemplateSyntaxError", "UndefinedError", "compile_template",
           "options_read"]


class JSONText(str):
    """Text produced by ``tojson``: the only thing a body template may output."""

    __slots__ = ()


def _not_json(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # a typo in a dict literal names the missing variable
    raise TypeError(f"a {type(value).__name__} cannot be sent as JSON")


def tojson(value: Any) -> JSONText:
    """The value as JSON (UTF-8 kept as is)."""
    return JSONText(json.dumps(value, ensure_ascii=False, default=_not_json))


def drop_none(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping without its ``None`` values: optional body fields left out."""
    return {k: v for k, v in mapping.items() if v is not None}


def merge(mapping: Mapping[str, Any], *others: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new mapping with the others' keys added; later ones win (``None`` is skipped)."""
    merged = dict(mapping)
    for other in others:
        if other:
            merged.update(other)
    return merged


def pick(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The mapping with only the given keys, in its own order: ``extra | pick(["tools", "toolConfig"])``."""
    wanted = set(keys)
    return {k: v for k, v in mapping.items() if k in wanted}


def omit(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The mapping without the given keys: ``extra | omit(["tools"])``."""
    unwanted = set(keys)
    return {k: v for k, v in mapping.items() if k not in unwanted}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def system_text(messages: list[Mapping[str, Any]], separator: str = "\n\n") -> str | None:
    """The text of the system messages joined, or ``None`` when there are none."""
    texts = [_text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    return separator.join(texts) if texts else None


def without_system(messages: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The messages other than system messages."""
    return [m for m in messages if m.get("role") not in ("system", "developer")]


def map_roles(messages: list[Mapping[str, Any]], mapping: Mapping[str, str]) -> list[dict[str, Any]]:
    """The messages with roles renamed (e.g. ``{'assistant': 'model'}``)."""
    return [{**m, "role": mapping.get(m["role"], m["role"])} for m in messages]


def text_parts(messages: list[Mapping[str, Any]], key: str = "parts", text_key: str = "text",
               roles: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Messages as ``{role, <key>: [{<text_key>: text}]}``: the Gemini-style content shape."""
    roles = roles or {}
    return [{"role": roles.get(m["role"], m["role"]), key: [{text_key: _text_of(m.get("content"))}]}
            for m in messages]


def only_keys(messages: list[Mapping[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """Each message reduced to the given keys (providers that reject unknown message fields)."""
    return [{k: m[k] for k in keys if k in m} for m in messages]


def text_content(messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each message with its content flattened to plain text."""
    return [{**m, "content": _text_of(m.get("content"))} for m in messages]


FILTERS: dict[str, Callable[..., Any]] = {
    "tojson": tojson,
    "drop_none": drop_none,
    "merge": merge,
    "pick": pick,
    "omit": omit,
    "system_text": system_text,
    "without_system": without_system,
    "map_roles": map_roles,
    "text_parts": text_parts,
    "only_keys": only_keys,
    "text_content": text_content,
}


def _finalize_body(value: Any) -> str:
    if type(value) is JSONText:
        return value
    raise RawOutputError(
        f"body template printed {type(value).__name__} {str(value)[:40]!r} without '| tojson'; "
        "every value in a JSON body must go through tojson"
    )


def _finalize_path(value: Any) -> str:
    return quote(str(value), safe="")


def _finalize_text(value: Any) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        raise ValueError("a header, query or URL value cannot contain a line break")
    return text


_FINALIZERS = {"body": _finalize_body, "path": _finalize_path, "text": _finalize_text}


@cache
def environment(kind: str) -> ImmutableSandboxedEnvironment:
    """The shared environment for one kind of template (``body``, ``path`` or ``text``)."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=_FINALIZERS[kind],
        keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def outputs_one_value(source: str) -> bool:
    """Whether a body template prints exactly one value (and otherwise only whitespace and ``set``s).

    Every printed value of a body template is ``tojson`` output, so such a template
    always renders valid JSON and the engine can skip checking each rendered body.
    """
    from jinja2 import nodes

    values = 0
    for node in environment("body").parse(source).body:
        if isinstance(node, nodes.Assign):
            continue
        if not isinstance(node, nodes.Output):
            return False
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                if child.data.strip():
                    return False
            else:
                values += 1
    return values == 1


@cache
def compile_template(source: str, kind: str) -> Callable[[Mapping[str, Any]], str]:
    """Compile once; returns a render function. Source without Jinja markup stays a constant.

    Cached by source: the providers that extend one file share its compiled templates.
    """
    if "{{" not in source and "{%" not in source:
        return lambda _context: source
    template = environment(kind).from_string(source)
    return template.render


def options_read(source: str, kind: str) -> set[str]:
    """The option names a template reads (``options.x``, ``options["x"]``, ``options.get("x")``)."""
    from jinja2 import nodes

    names: set[str] = set()
    for node in environment(kind).parse(source).find_all((nodes.Getattr, nodes.Getitem, nodes.Call)):
        if isinstance(node, nodes.Call):
            target = node.node
            if (isinstance(target, nodes.Getattr) and target.attr == "get" and isinstance(target.node, nodes.Name)
                    and target.node.name == "options" and node.args and isinstance(node.args[0], nodes.Const)):
                names.add(str(node.args[0].value))
        elif isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name) \
                and node.node.name == "options":
            if isinstance(node, nodes.Getattr) and node.attr != "get":
                names.add(node.attr)
            elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                names.add(str(node.arg.value))
    return names
