"""Shapes: how the unified (OpenAI-shaped) messages and tools become a provider's own JSON. Pure, no I/O.

A *shape* is a YAML structure whose ``$name`` strings are filled in from a small set of variables
(``{text: $text}``, ``{functionCall: {name: $name, args: $args}}``); a key whose value comes out
``null`` is left out, and ``$$`` writes a literal ``$``. Two directives cover what a plain fill cannot:
``{$first: [$strict, false]}`` is the first of its shapes that does not come out null (a default), and a
mapping with ``$when: $name`` comes out null, and so is left out, unless that variable is set. Shapes are
compiled once into plain Python functions, so converting a conversation costs a few microseconds per message.

`normalize` reads the unified messages into `Turn`\\ s of typed parts (text, image, document,
tool call, tool result, reasoning); a provider file's ``request.messages`` says how each part and
each message is written (see `MessageShapes`). A part the provider has no shape for is refused with
`UnsupportedInput` before anything is sent, never dropped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidMessages, UnsupportedInput

Shape = Any
Filler = Callable[[Mapping[str, Any]], Any]

PART_KINDS = ("text", "image", "image_url", "document", "document_url", "tool_call", "tool_result", "reasoning",
              "redacted_reasoning")
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*(?P<b64>;base64)?,(?P<data>.*)$", re.S)
_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


# -- shapes -----------------------------------------------------------------------------------------------

class ShapeError(ValueError):
    """A shape whose ``$first`` or ``$when`` directive is malformed (reported with the file and key)."""


def compile_shape(shape: Shape) -> Filler:
    """A function filling the shape from a mapping of variables (unknown variables raise ``KeyError``).

    Raises `ShapeError` for a malformed directive.
    """
    if isinstance(shape, Mapping) and "$first" in shape:
        return _first(shape)
    if isinstance(shape, Mapping) and "$when" in shape:
        return _when(shape)
    if isinstance(shape, str):
        if shape.startswith("$$"):
            literal = shape[1:]
            return lambda _v: literal
        match = _VARIABLE.match(shape)
        if match is not None:
            name = match.group(1)
            return lambda v: v[name]
        return lambda _v: shape
    if isinstance(shape, Mapping):
        items = [(key, compile_shape(value)) for key, value in shape.items()]

        def fill_mapping(v: Mapping[str, Any]) -> dict[str, Any] | None:
            out = {}
            for key, fill in items:
                value = fill(v)
                if value is not None:
                    out[key] = value
            return out

        return fill_mapping
    if isinstance(shape, list):
        parts = [compile_shape(item) for item in shape]

        def fill_list(v: Mapping[str, Any]) -> list[Any]:
            return [value for fill in parts if (value := fill(v)) is not None]

        return fill_list
    return lambda _v: shape


def _first(shape: Mapping[str, Any]) -> Filler:
    """``{$first: [a, b, ...]}``: the first of the shapes that does not come out null (``b`` a default for
    ``a``)."""
    options = shape["$first"]
    if len(shape) != 1 or not isinstance(options, list) or not options:
        raise ShapeError("$first takes a list of shapes and stands alone in its mapping, as in "
                         "{$first: [$strict, false]}")
    fills = [compile_shape(option) for option in options]

    def fill_first(v: Mapping[str, Any]) -> Any:
        for fill in fills:
            value = fill(v)
            if value is not None:
                return value
        return None

    return fill_first


def _when(shape: Mapping[str, Any]) -> Filler:
    """A mapping with ``$when: $name``: filled only when that variable is set (not null, false or empty), else
    null, so that its parent leaves it out."""
    condition = shape["$when"]
    match = _VARIABLE.match(condition) if isinstance(condition, str) else None
    if match is None:
        raise ShapeError(f"$when names one variable, as in {{$when: $text, type: summary_text, text: $text}}; "
                         f"got {condition!r}")
    name = match.group(1)
    fill = compile_shape({key: value for key, value in shape.items() if key != "$when"})

    def fill_when(v: Mapping[str, Any]) -> Any:
        return fill(v) if v[name] else None

    return fill_when


def shape_variables(shape: Shape) -> set[str]:
    """The ``$name`` variables a shape uses."""
    if isinstance(shape, str):
        match = _VARIABLE.match(shape) if not shape.startswith("$$") else None
        return {match.group(1)} if match else set()
    if isinstance(shape, Mapping):
        return {name for value in shape.values() for name in shape_variables(value)}
    if isinstance(shape, list):
        return {name for item in shape for name in shape_variables(item)}
    return set()


# -- unified messages, read -------------------------------------------------------------------------------

@dataclass(slots=True)
class Part:
    """One typed piece of a unified message; ``values`` are the variables its shape can use."""

    kind: str
    values: dict[str, Any]


@dataclass(slots=True)
class Turn:
    """One unified message, read: its role, typed parts, and the message itself."""

    role: str
    parts: list[Part]
    message: Mapping[str, Any]
    text_only: bool = False  # content was a plain string (and nothing else)
    calls: list[Part] = field(default_factory=list)


def data_url(url: str) -> tuple[str | None, str] | None:
    """``(media type, base64 data)`` of a ``data:`` URL, or ``None`` when it is not one."""
    if not url.startswith("data:"):
        return None
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidMessages(f"a data URL must look like data:<type>;base64,<data>, got {url[:40]!r}")
    data = match["data"]
    if not match["b64"]:
        from urllib.parse import unquote_to_bytes

        data = base64.b64encode(unquote_to_bytes(data)).decode()
    return match["type"], data


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _media_parts(part: Mapping[str, Any]) -> Part:
    """An ``image_url`` or ``file`` content part as a typed part."""
    if part.get("type") == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        detail = image.get("detail") if isinstance(image, Mapping) else None
        if not isinstance(url, str) or not url:
            raise InvalidMessages("an image_url part needs image_url.url")
        decoded = data_url(url)
        if decoded is not None:
            media_type, data = decoded
            media_type = media_type or "image/png"
            return Part("image", {"media_type": media_type, "data": data, "url": None, "detail": detail,
                                  "format": _format(media_type), "data_url": f"data:{media_type};base64,{data}"})
        guessed = _guess_type(url, "image")
        return Part("image_url", {"url": url, "media_type": guessed, "detail": detail, "data": None,
                                  "format": _format(guessed), "data_url": None})
    file = part.get("file")
    if not isinstance(file, Mapping):
        raise InvalidMessages("a file part needs file.file_data (a data: URL or base64) or file.url")
    filename = file.get("filename") if isinstance(file.get("filename"), str) else None
    if isinstance(file.get("file_data"), str):
        raw = file["file_data"]
        decoded = data_url(raw)
        media_type, data = decoded if decoded is not None else (None, raw)
        media_type = media_type or _guess_type(filename or "", "application") or "application/pdf"
        return Part("document", {"media_type": media_type, "data": data, "url": None, "filename": filename,
                                 "name": _document_name(filename), "format": _format(media_type),
                                 "data_url": f"data:{media_type};base64,{data}"})
    url = file.get("url") or file.get("file_url")
    if isinstance(url, str) and url:
        media_type = _guess_type(url, "application") or "application/pdf"
        return Part("document_url", {"url": url, "media_type": media_type, "filename": filename, "data": None,
                                     "name": _document_name(filename), "format": _format(media_type),
                                     "data_url": None})
    raise InvalidMessages("a file part needs file.file_data (a data: URL or base64) or file.url")


def _guess_type(name: str, family: str) -> str | None:
    import mimetypes

    guessed = mimetypes.guess_type(name.split("?")[0])[0]
    return guessed if guessed and guessed.startswith(family) else None


def _format(media_type: str | None) -> str | None:
    """The short format name of a media type (``image/jpeg`` -> ``jpeg``), as some APIs want it."""
    return media_type.split("/")[-1].split("+")[0] if media_type else None


def _document_name(filename: str | None) -> str:
    """A document name most APIs accept: letters, digits, spaces, hyphens, parentheses and brackets."""
    stem = (filename or "document").rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9 ()\[\]-]+", "-", stem).strip("- ") or "document"
    return re.sub(r"\s+", " ", cleaned)[:200]


def tool_call_values(call: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The variables of one unified tool call (``arguments`` JSON text, ``args`` its object)."""
    function = call.get("function") if isinstance(call.get("function"), Mapping) else {}
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidMessages("a tool call needs function.name")
    arguments = function.get("arguments", "{}") if isinstance(function, Mapping) else "{}"
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except ValueError as exc:
        raise InvalidMessages(f"tool call {name!r}: function.arguments is not JSON text ({exc})") from None
    call_id = call.get("id") if isinstance(call.get("id"), str) else None
    return {"id": call_id or stable_call_id(name, arguments, index), "name": name, "arguments": arguments,
            "args": args if isinstance(args, dict) else {"value": args}, "index": index,
            "signature": call.get("signature")}


def stable_call_id(name: str, arguments: str, index: int) -> str:
    """An id for a call the provider gave none: the same call at the same place always gets the same id."""
    digest = hashlib.sha256(f"{index}\x00{name}\x00{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def normalize(messages: Sequence[Mapping[str, Any]]) -> list[Turn]:
    """The unified messages read into typed parts; tool results know the name of the call they answer."""
    turns: list[Turn] = []
    names: dict[str, str] = {}
    for position, message in enumerate(messages):
        role = message.get("role")
        if not isinstance(role, str):
            raise InvalidMessages(f"message {position} has no role")
        content = message.get("content")
        parts: list[Part] = []
        for thought in message.get("thinking") or ():  # reasoning a provider needs replayed (with signatures)
            if isinstance(thought, Mapping):
                kind = "redacted_reasoning" if thought.get("redacted") is not None else "reasoning"
                parts.append(Part(kind, {"text": thought.get("text"), "signature": thought.get("signature"),
                                         "redacted": thought.get("redacted"), "id": thought.get("id")}))
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidMessages(f"message {position}: a tool message needs tool_call_id")
            name = message.get("name") if isinstance(message.get("name"), str) else names.get(call_id)
            if name is None:
                raise InvalidMessages(f"message {position}: tool_call_id {call_id!r} answers no earlier tool call")
            text = _text_of(content)
            try:
                value: Any = json.loads(text)
            except ValueError:
                value = text
            parts.append(Part("tool_result", {
                "id": call_id, "name": name, "content": text, "value": value,
                "object": value if isinstance(value, dict) else {"output": value},
                "is_error": message.get("is_error") or None}))
            turns.append(Turn(role, parts, message))
            continue
        text_only = isinstance(content, str)
        if isinstance(content, str):
            if content or not message.get("tool_calls"):  # an empty message is one empty text, not nothing
                parts.append(Part("text", {"text": content, "extra": None}))
        elif isinstance(content, list):
            for item in content:
                parts.append(_content_part(item, position))
        elif content is not None:
            raise InvalidMessages(f"message {position}: content must be a string or a list of parts")
        calls = []
        for index, call in enumerate(message.get("tool_calls") or ()):
            if not isinstance(call, Mapping):
                raise InvalidMessages(f"message {position}: tool_calls holds a {type(call).__name__}")
            values = tool_call_values(call, index)
            names[values["id"]] = values["name"]
            calls.append(Part("tool_call", values))
        turns.append(Turn(role, parts, message, text_only and not calls, calls))
    return turns


def _content_part(item: Any, position: int) -> Part:
    if isinstance(item, str):
        return Part("text", {"text": item, "extra": None})
    if not isinstance(item, Mapping):
        raise InvalidMessages(f"message {position}: a content part must be an object, got {type(item).__name__}")
    kind = item.get("type")
    if kind == "text" and isinstance(item.get("text"), str):
        extra = {k: v for k, v in item.items() if k not in ("type", "text")} or None
        return Part("text", {"text": item["text"], "extra": extra})
    if kind in ("image_url", "file"):
        return _media_parts(item)
    return Part("native", {"part": dict(item)})  # a provider's own block (cache_control, cachePoint, ...)


# -- unified messages, written --------------------------------------------------------------------------------

@dataclass(slots=True)
class MessageShapes:
    """A provider file's ``request.messages``, compiled."""

    system: str = "keep"
    roles: Mapping[str, str] = field(default_factory=dict)
    tool_results: str = "separate"
    merge_roles: bool = False
    calls: str = "field"
    reasoning: str = "parts"
    message: Filler | None = None
    by_role: Mapping[str, Filler] = field(default_factory=dict)
    parts: Mapping[str, Filler] = field(default_factory=dict)
    call_id_length: int | None = None

    def supports(self, kind: str) -> bool:
        return self.message is None or kind in self.parts or kind == "native"


@dataclass(slots=True)
class Written:
    """The messages in the provider's shape, and the system text when the provider takes it apart."""

    messages: list[Any]
    system: str | None


SYSTEM_ROLES = ("system", "developer")


def system_text(turns: Sequence[Turn]) -> str | None:
    texts = [_text_of(t.message.get("content")) for t in turns if t.role in SYSTEM_ROLES]
    return "\n\n".join(texts) if texts else None


def write_messages(shapes: MessageShapes, messages: Sequence[Mapping[str, Any]]) -> Written:
    """Unified messages in the provider's shape. Raises `UnsupportedInput` or `InvalidMessages`."""
    if shapes.message is None and shapes.call_id_length is None and not _needs_cleaning(messages):
        system = None
        if shapes.system == "separate":
            turns = [Turn(m["role"], [], m) for m in messages]
            system = system_text(turns)
            messages = [m for m in messages if m.get("role") not in SYSTEM_ROLES]
        return Written(list(messages), system)
    turns = normalize(messages)
    system = system_text(turns) if shapes.system == "separate" else None
    if shapes.system == "separate":
        turns = [t for t in turns if t.role not in SYSTEM_ROLES]
    if shapes.call_id_length is not None:
        _fit_call_ids(turns, shapes.call_id_length)
    if shapes.message is None:  # OpenAI's own shape: the messages as given, without the engine's keys
        return Written([_clean(t.message, t) for t in turns], system)
    # Entries: a message to fill ({turns, role, parts, calls}), or an item written already ({item}).
    out: list[dict[str, Any]] = []
    for turn in turns:
        role = shapes.roles.get(turn.role, turn.role)
        thoughts = [w for part in turn.parts if part.kind in _REASONING if (w := _write_part(shapes, part)) is not None]
        written = [_write_part(shapes, part) for part in turn.parts if part.kind not in _REASONING]
        calls = [_write_part(shapes, call) for call in turn.calls]
        before = thoughts if shapes.reasoning == "items" else []
        after = calls if shapes.calls == "items" else []
        parts = [*(thoughts if shapes.reasoning == "parts" else []), *written,
                 *(calls if shapes.calls == "parts" else [])]
        field_calls = calls if shapes.calls == "field" else []
        out += ({"item": item} for item in before)
        if parts or field_calls or not (before or after):  # a message emptied by items of its own goes
            prev = out[-1] if out and "item" not in out[-1] else None
            if prev is not None and prev["role"] == role and (shapes.merge_roles or (
                    shapes.tool_results == "merge" and turn.role == "tool" and prev["turns"][-1].role == "tool")):
                prev["turns"].append(turn)
                prev["parts"] += parts
                prev["calls"] += field_calls
            else:
                out.append({"turns": [turn], "role": role, "parts": parts, "calls": field_calls})
        out += ({"item": item} for item in after)
    return Written([entry["item"] if "item" in entry else _fill_message(shapes, entry) for entry in out], system)


def _write_part(shapes: MessageShapes, part: Part) -> Any:
    if part.kind == "native":
        return part.values["part"]
    fill = shapes.parts.get(part.kind)
    if fill is None:
        if part.kind in _REASONING:
            return None  # another provider's reasoning, kept for its own replay: nothing this API can use
        raise UnsupportedInput(_KIND_NAMES[part.kind])
    written = fill(part.values)
    extra = part.values.get("extra")
    if extra and isinstance(written, dict):
        written = {**written, **extra}  # keys a caller added to a text part (cache_control) pass through
    return written


_REASONING = ("reasoning", "redacted_reasoning")
_KIND_NAMES = {"text": "text parts", "image": "images given as data", "image_url": "images by URL",
               "document": "documents", "document_url": "documents by URL", "tool_call": "tool calls",
               "tool_result": "tool results", "reasoning": "replayed reasoning",
               "redacted_reasoning": "replayed redacted reasoning"}


def _fill_message(shapes: MessageShapes, entry: dict[str, Any]) -> Any:
    turns: list[Turn] = entry["turns"]
    parts: list[Any] = entry["parts"]
    first = turns[0]
    texts = [p.values["text"] for t in turns for p in t.parts if p.kind == "text"]
    results = [p for t in turns for p in t.parts if p.kind == "tool_result"]
    single = len(turns) == 1
    if single and first.text_only and len(parts) <= 1:
        content: Any = texts[0] if texts else ""  # a plain-text message stays plain text
    elif single and results and len(parts) == 1:
        content = results[0].values["content"]
    else:
        content = parts or None
    values = {
        "role": entry["role"],
        "parts": parts,
        "content": content,
        "text": "".join(texts) if texts else None,
        "tool_calls": entry["calls"] or None,
        "tool_call_id": results[0].values["id"] if single and results else None,
        "name": results[0].values["name"] if single and results else None,
        "images": [p.values["data"] for t in turns for p in t.parts if p.kind == "image"] or None,
        "message": first.message,
    }
    fill = shapes.by_role.get(first.role) or shapes.message
    assert fill is not None
    return fill(values)


_ENGINE_KEYS = ("thinking",)


def _needs_cleaning(messages: Sequence[Mapping[str, Any]]) -> bool:
    for message in messages:
        if "thinking" in message:
            return True
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping) and "signature" in call:
                return True
    return False


def _clean(message: Mapping[str, Any], turn: Turn) -> dict[str, Any]:
    """A unified message as OpenAI takes it: the engine's own keys (signatures, thinking) left out."""
    cleaned = {k: v for k, v in message.items() if k not in _ENGINE_KEYS}
    if turn.calls:
        cleaned["tool_calls"] = [{"id": c.values["id"], "type": "function",
                                  "function": {"name": c.values["name"], "arguments": c.values["arguments"]}}
                                 for c in turn.calls]
    if turn.role == "tool" and turn.parts and turn.parts[-1].kind == "tool_result":
        cleaned["tool_call_id"] = turn.parts[-1].values["id"]
    return cleaned


def _fit_call_ids(turns: Sequence[Turn], length: int) -> None:
    """Make every tool call id ``length`` letters and digits (as some APIs demand), the same way for a call and
    its result, so a conversation from another provider can be replayed."""
    def fit(call_id: str) -> str:
        if len(call_id) == length and call_id.isalnum() and call_id.isascii():
            return call_id
        digest = int(hashlib.sha256(call_id.encode()).hexdigest(), 16)
        alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        out = ""
        for _ in range(length):
            digest, rest = divmod(digest, 62)
            out += alphabet[rest]
        return out

    for turn in turns:
        for call in turn.calls:
            call.values["id"] = fit(call.values["id"])
        for part in turn.parts:
            if part.kind == "tool_result":
                part.values["id"] = fit(part.values["id"])


# -- tools --------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class ToolShapes:
    """A provider file's ``request.tools``, compiled: one tool's shape, and ``tool_choice`` by kind."""

    tool: Filler | None = None
    choice: Mapping[str, Filler] = field(default_factory=dict)


def tool_values(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise InvalidMessages("a tool must be {'type': 'function', 'function': {'name': ..., 'parameters': ...}}")
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {"name": function["name"], "description": function.get("description"), "parameters": parameters,
            "strict": function.get("strict"), "function": dict(function), "tool": dict(tool)}


def choice_kind(tool_choice: Any) -> tuple[str, str | None]:
    """``("auto" | "none" | "required" | "named", name)`` of a unified ``tool_choice``."""
    if tool_choice in ("auto", "none", "required"):
        return str(tool_choice), None
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if isinstance(name, str) and name:
            return "named", name
    raise InvalidMessages("tool_choice must be 'auto', 'none', 'required' or "
                          "{'type': 'function', 'function': {'name': ...}}")


def write_tools(shapes: ToolShapes, tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any,
                parallel: bool | None) -> tuple[list[Any] | None, Any]:
    """Tools and ``tool_choice`` in the provider's shape; without ``request.tools`` they pass as given."""
    if shapes.tool is None:
        return (list(tools) if tools else None), tool_choice
    written = [shapes.tool(tool_values(tool)) for tool in tools] if tools else None
    if tool_choice is None and parallel is None:
        return written, None
    kind, name = choice_kind(tool_choice if tool_choice is not None else "auto")
    fill = shapes.choice.get(kind)
    if fill is None:
        if kind == "auto" and parallel is not False:
            return written, None  # auto is every API's default: nothing to send
        if kind == "none":
            return None, None  # an API with no way to say "no tools" is sent none
        what = f"tool_choice {kind!r}" if kind != "named" else "a named tool_choice"
        raise UnsupportedInput(what if parallel is not False or kind != "auto" else "parallel_tool_calls false")
    return written, fill({"name": name, "no_parallel": True if parallel is False else None,
                          "parallel": parallel})
