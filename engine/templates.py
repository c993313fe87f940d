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
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import RawOutputError
from .limits import DEFAULT, LimitExceeded, Limits

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


def as_list(value: Any) -> list[Any] | None:
    """A value as a list: ``None`` stays ``None``, a list stays, anything else becomes ``[value]``
    (``stop | as_list`` for APIs that take only a list of stop sequences)."""
    if value is None or isinstance(value, list):
        return value
    return [value]


def pick(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The mapping with only the given keys, in its own order: ``extra | pick(["tools", "toolConfig"])``."""
    wanted = set(keys)
    return {k: v for k, v in mapping.items() if k in wanted}


def omit(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The mapping without the given keys: ``extra | omit(["tools"])``."""
    unwanted = set(keys)
    return {k: v for k, v in mapping.items() if k not in unwanted}


class PathText(str):
    """A value for a path template that keeps some characters unencoded (see `raw_path`)."""

    __slots__ = ("safe",)
    safe: str


def raw_path(value: Any, safe: str = "/@") -> PathText:
    """In a path template: the value with ``/``, ``@`` (or the characters given) kept as they are, so that
    ``{{ model | raw_path }}`` puts ``@org/family/model-7b`` in the path as segments; every other character
    outside ``A-Za-z0-9_.-~`` is still percent-encoded."""
    text = PathText(str(value))
    text.safe = safe
    return text


def last_turn(messages: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The last message (for APIs that take the newest turn in a field of its own)."""
    return messages[-1] if messages else None


def history(messages: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every message but the last (the turns before the newest one)."""
    return list(messages[:-1])


def rename_keys(messages: list[Mapping[str, Any]], mapping: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each message with its keys renamed (e.g. ``{'content': 'message'}``); other keys unchanged."""
    return [{mapping.get(k, k): v for k, v in m.items()} for m in messages]


def merge_turns(messages: list[Mapping[str, Any]], separator: str = "\n\n") -> list[dict[str, Any]]:
    """Consecutive messages of one role joined into one, their texts joined (APIs that demand alternation)."""
    merged: list[dict[str, Any]] = []
    for message in messages:
        if merged and merged[-1].get("role") == message.get("role"):
            before, after = _text_of(merged[-1].get("content")), _text_of(message.get("content"))
            merged[-1]["content"] = f"{before}{separator}{after}"
        else:
            merged.append(dict(message))
    return merged


# -- chat templates: a conversation flattened into one prompt string ----------------------------------------

def _turns(messages: list[Mapping[str, Any]], system_into_first_user: bool) -> list[tuple[str, str]]:
    """``(role, text)`` turns; with ``system_into_first_user`` the system text leads the first user turn."""
    turns = [(str(m.get("role")), _text_of(m.get("content")).strip()) for m in messages]
    if not system_into_first_user:
        return turns
    system = "\n\n".join(text for role, text in turns if role in ("system", "developer"))
    rest = [(role, text) for role, text in turns if role not in ("system", "developer")]
    if system:
        first = next((i for i, (role, _) in enumerate(rest) if role == "user"), None)
        if first is None:
            rest.insert(0, ("user", system))
        else:
            rest[first] = ("user", f"{system}\n\n{rest[first][1]}")
    return rest


def _chatml(messages: list[Mapping[str, Any]], generate: bool) -> str:
    body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in _turns(messages, False))
    return body + ("<|im_start|>assistant\n" if generate else "")


def _llama3(messages: list[Mapping[str, Any]], generate: bool) -> str:
    body = "".join(f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"
                   for role, text in _turns(messages, False))
    return "<|begin_of_text|>" + body + ("<|start_header_id|>assistant<|end_header_id|>\n\n" if generate else "")


def _mistral_instruct(messages: list[Mapping[str, Any]], generate: bool) -> str:
    out = "<s>"
    for role, text in _turns(messages, True):
        out += f"[INST] {text} [/INST]" if role == "user" else f"{text}</s>"
    return out


def _gemma(messages: list[Mapping[str, Any]], generate: bool) -> str:
    body = "".join(f"<start_of_turn>{'model' if role == 'assistant' else role}\n{text}<end_of_turn>\n"
                   for role, text in _turns(messages, True))
    return "<bos>" + body + ("<start_of_turn>model\n" if generate else "")


CHAT_TEMPLATES: dict[str, Callable[[list[Mapping[str, Any]], bool], str]] = {
    "chatml": _chatml, "llama3": _llama3, "mistral_instruct": _mistral_instruct, "gemma": _gemma,
}


@pass_context
def chat_template(context: Any, messages: list[Mapping[str, Any]], name: str,
                  add_generation_prompt: bool = True) -> str:
    """The conversation as one prompt string in a model's chat template: ``chatml``, ``llama3``,
    ``mistral_instruct``, ``gemma``, or one the provider file declares under ``chat_templates``. It ends with
    the assistant's turn opened unless ``add_generation_prompt`` is false."""
    own = context.get("chat_templates") or {}
    if name in own:
        return str(own[name]({"messages": messages, "add_generation_prompt": add_generation_prompt}))
    if name not in CHAT_TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}: bundled ones are {', '.join(CHAT_TEMPLATES)}"
                         + (f"; this file declares {', '.join(own)}" if own else ""))
    return CHAT_TEMPLATES[name](messages, add_generation_prompt)


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


def each_as(items: list[Any], shape: Any, **values: Any) -> list[Any]:
    """Each item written into a shape (the provider-file shape language): ``$item`` is the item, other
    ``$name``\\ s the keyword values, and a key whose value is none is left out:
    ``inputs | each_as({"content": {"parts": [{"text": "$item"}]}, "taskType": "$task"}, task=task)``."""
    from .shapes import compile_shape

    fill = compile_shape(shape)
    _too_big(len(items), "each_as() items")
    return [fill({**values, "item": item}) for item in items]


FILTERS: dict[str, Callable[..., Any]] = {
    "tojson": tojson,
    "drop_none": drop_none,
    "merge": merge,
    "pick": pick,
    "as_list": as_list,
    "raw_path": raw_path,
    "last_turn": last_turn,
    "history": history,
    "rename_keys": rename_keys,
    "merge_turns": merge_turns,
    "chat_template": chat_template,
    "each_as": each_as,
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
    return quote(str(value), safe=value.safe if type(value) is PathText else "")


def _finalize_text(value: Any) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        raise ValueError("a header, query or URL value cannot contain a line break")
    return text


_FINALIZERS = {"body": _finalize_body, "path": _finalize_path, "text": _finalize_text, "prompt": str}


# -- resource limits ---------------------------------------------------------------------------------------
# The sandbox keeps templates away from Python internals; these keep them from exhausting memory or CPU
# with a single expression. The limits in force for a render are set by `limited` (engine.limits).
_LIMITS: ContextVar[Limits] = ContextVar("template_limits", default=DEFAULT)


@contextmanager
def limited(limits: Limits) -> Iterator[None]:
    """Render under these limits (the defaults apply otherwise)."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


def _too_big(size: int, what: str) -> None:
    limit = _LIMITS.get().template_max_string
    if size > limit:
        raise LimitExceeded("template_max_string", limit, f"{what} ({size:,} items)")


_SPEC = re.compile(r"(\d+)?(?:\.(\d+))?[bcdeEfFgGnosxX%]?$")
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_width(*numbers: str | None) -> None:
    limit = _LIMITS.get().template_max_format_width
    for number in numbers:
        if number is not None and (number == "*" or int(number) > limit):
            raise LimitExceeded("template_max_format_width", limit, "a format width or precision")


def _check_format_spec(spec: str) -> None:
    if "{" in spec:
        raise LimitExceeded("template_max_format_width", _LIMITS.get().template_max_format_width,
                            "a nested format spec")
    match = _SPEC.search(spec)
    if match is not None:
        _check_width(match.group(1), match.group(2))


def _check_power(base: Any, exponent: Any) -> None:
    import math

    limit = _LIMITS.get().template_max_power
    if isinstance(base, int | float) and isinstance(exponent, int | float) and abs(base) > 1 and exponent > 0:
        bits = math.log2(abs(base)) * exponent
        if bits > limit:
            raise LimitExceeded("template_max_power", limit, f"the bits of {base!r} ** {exponent!r}")


def limited_range(*args: int) -> range:
    """``range()`` for templates, refused past ``template_max_range`` items."""
    result = range(*args)
    limit = _LIMITS.get().template_max_range
    if len(result) > limit:
        raise LimitExceeded("template_max_range", limit, f"range() of {len(result):,} items")
    return result


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with limits on sizes, powers, format widths and ranges."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and not isinstance(times, bool):
                    _too_big(len(seq) * times, "a repeated string or sequence")
        elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _too_big(len(left) + len(right), "a joined string or sequence")
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            for match in _PRINTF.finditer(left):
                _check_width(match.group(1), match.group(2))
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` / ``format_map`` in a template: the format string's widths are checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            for _, _, spec, _ in string.Formatter().parse(text):
                if spec:
                    _check_format_spec(spec)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(__obj, "__self__", None).__class__ is str:
            name = getattr(__obj, "__name__", "")
            if name in _WIDTH_METHODS and args and isinstance(args[0], int):
                _too_big(args[0], f"str.{name}() width")
            elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
                text = __obj.__self__
                count = text.count(args[0]) if args[0] else len(text) + 1
                _too_big(len(text) + count * len(args[1]), "str.replace() result")
        return super().call(__context, __obj, *args, **kwargs)


def _guarded_filters() -> dict[str, Callable[..., Any]]:
    """Jinja's filters that take a width or repeat text, with the same limits."""
    from jinja2 import filters as jf

    def center(value: Any, width: int = 80) -> str:
        _too_big(width, "center() width")
        return jf.do_center(value, width)

    def indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        _too_big((width if isinstance(width, int) else len(width)) * (str(value).count("\n") + 1), "indent()")
        return jf.do_indent(value, width, first, blank)

    def format_(value: str, *args: Any, **kwargs: Any) -> str:
        for match in _PRINTF.finditer(value):
            _check_width(match.group(1), match.group(2))
        return jf.do_format(value, *args, **kwargs)

    def replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
        text = str(s)
        times = text.count(old) if old else len(text) + 1
        _too_big(len(text) + times * len(str(new)), "replace() result")
        return jf.do_replace(eval_ctx, s, old, new, count)  # type: ignore[no-any-return]

    from jinja2.utils import pass_eval_context

    return {"center": center, "indent": indent, "format": format_, "replace": pass_eval_context(replace)}


@cache
def environment(kind: str) -> ImmutableSandboxedEnvironment:
    """The shared environment for one kind of template (``body``, ``path`` or ``text``)."""
    env = LimitedSandbox(
        undefined=StrictUndefined, autoescape=False, finalize=_FINALIZERS[kind],
        keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(_guarded_filters())
    env.filters.update(FILTERS)
    env.globals["range"] = limited_range
    env.globals.pop("lipsum", None)
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
    env = environment(kind)
    _refuse_other_templates(env.parse(source))
    template = env.from_string(source)

    def render(context: Mapping[str, Any]) -> str:
        # Generated piece by piece, so that output past max_request_bytes stops before it is all built.
        limit = _LIMITS.get().max_request_bytes
        parts: list[str] = []
        size = 0
        for piece in template.generate(context):
            size += len(piece)
            if size > limit:
                raise LimitExceeded("max_request_bytes", limit, f"the rendered {kind} template")
            parts.append(piece)
        return parts[0] if len(parts) == 1 else "".join(parts)

    return render


def _refuse_other_templates(tree: Any) -> None:
    """A provider template is self-contained: ``include``, ``import`` and ``extends`` have nothing to load."""
    from jinja2 import nodes

    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        statement = {nodes.Include: "include", nodes.Extends: "extends"}.get(type(node), "import")
        raise TemplateSyntaxError(f"{{% {statement} %}} is not allowed: a provider template cannot load another "
                                  "template (use a macro, or the file's chat_templates)", node.lineno)


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
