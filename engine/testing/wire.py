"""The wire formats the fake server speaks: how each provider family's replies, streams and errors look.

One class per format. Each knows the request paths it answers (by suffix, so any base-URL
prefix works), how to read a request body far enough to answer it, and how to write a reply,
a stream (one bytes item per SSE event or NDJSON line, the end marker last), an error body and
an in-stream error. The HTTP side (sockets, chunking, faults) is `engine.testing.server`.

Tools, in each format's native shape: a request that offers tools (and does not forbid calls) and
ends with a user turn holding text is answered with two parallel calls to the first tool (or the one
``tool_choice`` names or forces), with ``{"<first string property>": "Paris"}`` and ``... "Rome"}``
as arguments (``{}`` when the tool takes no string). A request whose last turn holds tool results is
checked strictly (every call answered once, by id or name as the format wants, in the right place,
Gemini's thought signature sent back) and answered ``"Results: " + "; ".join(results)``; a wrong shape
is a `WireError`, which the server answers 400 in the format's error shape.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

CREATED_AT = "2026-01-01T00:00:00.000000Z"
SIGNATURE = "c2lnLWxvY2Fs"  # base64 of "sig-local": the thought signature on Gemini's first call
CITIES = ("Paris", "Rome")  # the arguments of the two calls


class WireError(ValueError):
    """A request whose native shape is wrong: the server answers 400 with this message."""


def dumps(obj: Any) -> str:
    """Compact JSON with raw UTF-8 (not ``\\u`` escapes), so chunk boundaries really split characters."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def sse(data: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {dumps(data)}\n\n".encode()


def text_of(content: Any) -> str:
    """Plain text of a message content in any format (a string, a list of parts or blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(t for t in (text_of(part) for part in content) if t)
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else text_of(content.get("content") or content.get("parts"))
    return ""


def pieces(text: str, n: int = 3) -> list[str]:
    """``text`` cut into ``n`` non-empty pieces (fewer when it is shorter), as streams send arguments."""
    n = max(1, min(n, len(text)))
    cuts = [len(text) * i // n for i in range(n + 1)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


@dataclass
class ToolUse:
    """One tool call the server answers with; ``id`` as the format writes it (Gemini's calls have none)."""

    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def json(self) -> str:
        return dumps(self.arguments)

    def pieces(self) -> list[str]:
        return pieces(self.json)


@dataclass
class Call:
    """One completion to answer: what the reply says and how it is cut into stream deltas."""

    model: str
    text: str  # what is sent as the content (JSON text in JSON mode; the text before any tool calls)
    deltas: list[str]
    input_tokens: int
    stream: bool = False
    number: int = 1
    base_reply: str = ""  # the reply before JSON-mode wrapping
    tool_name: str | None = None  # a forced tool in JSON mode (Anthropic): the answer is its input
    include_usage: bool = False
    created: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[ToolUse] = field(default_factory=list)  # the calls the reply makes

    @property
    def output_tokens(self) -> int:
        return len(self.deltas) + sum(len(call.pieces()) for call in self.tool_calls)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise WireError(message)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def string_property(schema: Any) -> str | None:
    """The first string property of a JSON Schema (or of Gemini's OpenAPI subset, whose types are upper-case)."""
    for name, prop in _dict(_dict(schema).get("properties")).items():
        kind = _dict(prop).get("type")
        if any(isinstance(k, str) and k.lower() == "string" for k in (kind if isinstance(kind, list) else [kind])):
            return str(name)
    return None


_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def _check_base64(data: Any, where: str) -> None:
    """Raw base64 image data (not a data URL, not a web URL)."""
    _require(isinstance(data, str) and bool(data) and not data.startswith(("data:", "http:", "https:")),
             f"{where}: expected raw base64 image data, got {str(data)[:30]!r}")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{where}: the image data is not valid base64") from None


def _check_image_url(url: Any, where: str) -> None:
    """An image by URL: an http(s) URL, or a base64 ``data:image/...`` URL."""
    _require(isinstance(url, str), f"{where}: the image URL must be a string, got {_kind(url)}")
    if url.startswith("data:"):
        match = _DATA_URL.fullmatch(url)
        _require(match is not None and match["type"].startswith("image/"),
                 f"{where}: a data URL must be data:image/<type>;base64,<data>")
        assert match is not None
        _check_base64(match["data"], where)
    else:
        _require(url.startswith(("https://", "http://")), f"{where}: an image URL must be https or a data URL")


def _part_images(messages: list[dict[str, Any]]) -> int:
    """``image_url`` parts of the user messages (OpenAI, Cohere), each checked."""
    count = 0
    for i, message in enumerate(messages):
        if message.get("role") != "user":
            continue
        for j, part in enumerate(_dicts(message.get("content"))):
            if part.get("type") == "image_url":
                image = part.get("image_url")
                _check_image_url(image.get("url") if isinstance(image, dict) else image, f"messages[{i}].content[{j}]")
                count += 1
    return count


def _chat_results(messages: list[dict[str, Any]], *, object_arguments: bool = False) -> list[str] | None:
    """The results of an OpenAI-shaped conversation that ends with ``role: tool`` messages, checked.

    OpenAI and Cohere: the assistant message before has ``tool_calls`` (arguments JSON text) and each id is
    answered by exactly one tool message's ``tool_call_id``. Ollama (``object_arguments``): arguments are
    objects and each call is answered by one tool message naming it in ``tool_name``.
    """
    start = len(messages)
    while start > 0 and messages[start - 1].get("role") == "tool":
        start -= 1
    if start == len(messages):
        return None
    before = messages[start - 1] if start > 0 else {}
    calls = before.get("tool_calls")
    _require(before.get("role") == "assistant" and isinstance(calls, list) and bool(calls),
             f"messages[{start}]: messages with role 'tool' must be a response to a preceding assistant message "
             "with 'tool_calls'")
    assert isinstance(calls, list)
    ids: list[Any] = []  # Ollama's calls may have none
    names: list[str] = []
    for i, call in enumerate(calls):
        where = f"messages[{start - 1}].tool_calls[{i}]"
        _require(isinstance(call, dict), f"{where} must be an object")
        function = _dict(call.get("function"))
        _require(isinstance(function.get("name"), str) and bool(function["name"]), f"{where}.function.name is missing")
        arguments = function.get("arguments")
        got = f"got {_kind(arguments)}"
        if object_arguments:
            _require(isinstance(arguments, dict), f"{where}.function.arguments must be an object, {got}")
        else:
            _require(call.get("type") == "function", f"{where}.type must be 'function'")
            if not isinstance(arguments, str):
                raise WireError(f"{where}.function.arguments must be JSON text, {got}")
            try:
                parsed = json.loads(arguments)
            except ValueError:
                raise WireError(f"{where}.function.arguments is not valid JSON: {arguments[:40]!r}") from None
            _require(isinstance(parsed, dict), f"{where}.function.arguments must be a JSON object")
            _require(isinstance(call.get("id"), str) and bool(call["id"]), f"{where}.id is missing")
        ids.append(call.get("id"))
        names.append(function["name"])
    _require(len(set(ids)) == len(ids) or object_arguments, f"messages[{start - 1}].tool_calls: duplicate ids {ids}")
    results = messages[start:]
    if object_arguments:
        for j, message in enumerate(results, start):
            _require(isinstance(message.get("tool_name"), str), f"messages[{j}]: a tool message needs tool_name")
            answered = message.get("tool_call_id")
            _require(answered is None or answered in ids, f"messages[{j}]: tool_call_id {answered!r} answers no call")
        told = [message["tool_name"] for message in results]
        _require(Counter(told) == Counter(names), f"the tool messages answer {told} but the calls were {names}: "
                                                  "one tool message per call, named in tool_name")
    else:
        answered_ids = [message.get("tool_call_id") for message in results]
        for j, answered in enumerate(answered_ids, start):
            _require(answered in ids, f"messages[{j}]: tool_call_id {answered!r} answers none of the calls "
                                      f"of the assistant message before ({', '.join(ids)})")
        missing = [i for i in ids if i not in answered_ids]
        _require(not missing, "An assistant message with 'tool_calls' must be followed by tool messages responding "
                              "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                              + ", ".join(missing))
        _require(len(set(answered_ids)) == len(answered_ids), "each tool_call_id takes one tool message, got "
                 + ", ".join(str(i) for i in answered_ids))
    texts = []
    for j, message in enumerate(results, start):
        content = message.get("content")
        _require(isinstance(content, str | list), f"messages[{j}].content must be text or a list of parts, "
                                                  f"got {_kind(content)}")
        texts.append(text_of(content))
    return texts


class WireFormat:
    """A provider family's wire format, as the fake server speaks it."""

    name: ClassVar[str]
    path: ClassVar[re.Pattern[str]]  # matched against the end of the request path
    stream_content_type: ClassVar[str] = "text/event-stream; charset=utf-8"
    call_id: ClassVar[str] = "call_local{n}"  # the ids of the calls the server makes ("" where the format has none)
    needs_key: ClassVar[bool] = True  # whether FakeServer(api_key=...) checks the key of its requests

    def matches(self, path: str) -> re.Match[str] | None:
        return self.path.search(path)

    def request_id_headers(self, number: int) -> list[tuple[str, str]]:
        return []

    def reply_headers(self, call: Call) -> list[tuple[str, str]]:
        """Headers of a reply to this call, besides the request id (an API that reports counts in headers)."""
        return []

    def wants_stream(self, body: dict[str, Any], match: re.Match[str]) -> bool:
        return body.get("stream") is True

    def model(self, body: dict[str, Any], match: re.Match[str]) -> str:
        model = body.get("model")
        return model if isinstance(model, str) else "local-model"

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The conversation as ``{role, content}`` items (role ``user`` or ``assistant`` or ``system``)."""
        messages = body.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    def system_text(self, body: dict[str, Any]) -> str:
        return ""

    def json_mode(self, body: dict[str, Any]) -> bool:
        return False

    def forced_tool(self, body: dict[str, Any]) -> str | None:
        """The tool whose input is the answer in JSON mode (Anthropic's old structured output), else ``None``."""
        return None

    def include_usage(self, body: dict[str, Any]) -> bool:
        return False

    def check(self, body: dict[str, Any]) -> None:
        """Raise `WireError` for a request that is not in the format's native shape (before anything is
        answered). Tool results and images are checked by `tool_results` and `images`."""

    def reply_options(self, body: dict[str, Any]) -> dict[str, Any]:
        """What else the reply depends on, in the format's own terms; kept as `Call.extra`."""
        return {}

    # -- tools and images -------------------------------------------------------------------------------------
    def tools(self, body: dict[str, Any]) -> dict[str, Any]:
        """The tools the request offers, in order: name -> parameters schema (OpenAI's shape here)."""
        return {f["name"]: f.get("parameters") for f in (_dict(t.get("function")) for t in _dicts(body.get("tools")))
                if isinstance(f.get("name"), str)}

    def calls_forbidden(self, body: dict[str, Any]) -> bool:
        """Whether ``tool_choice`` says the model must not call a tool."""
        return False

    def chosen_tool(self, body: dict[str, Any]) -> str | None:
        """The tool ``tool_choice`` names or forces (a forced choice without a name: the first tool)."""
        return None

    def parallel(self, body: dict[str, Any]) -> bool:
        """Whether the model may make several calls at once."""
        return True

    def tool_results(self, body: dict[str, Any]) -> list[str] | None:
        """The texts of the tool results the conversation ends with (``None`` when its last turn holds none).

        Raises `WireError` when they are not in the format's native shape or do not answer every call.
        """
        return None

    def images(self, body: dict[str, Any]) -> int:
        """How many images the user turns hold; raises `WireError` for one that is malformed."""
        return 0

    def call_text(self, calls: list[ToolUse]) -> str:
        """The text a reply with tool calls carries before them."""
        return ""

    def answer_calls(self, body: dict[str, Any]) -> list[ToolUse]:
        """The tool calls to answer with: two parallel calls (one when parallel calls are off) when tools are
        offered, not forbidden, and the last turn is a user turn with text; else none."""
        tools = self.tools(body)
        if not tools or self.calls_forbidden(body) or self.forced_tool(body) is not None:
            return []
        messages = self.messages(body)
        if not messages or messages[-1].get("role") != "user" or not text_of(messages[-1].get("content")).strip() \
                or self.tool_results(body) is not None:
            return []
        name = self.chosen_tool(body) or next(iter(tools))
        _require(name in tools, f"tool_choice names {name!r}, which is not among the tools ({', '.join(tools)})")
        prop = string_property(tools[name])
        cities = CITIES if self.parallel(body) else CITIES[:1]
        return [ToolUse(self.call_id.format(n=n, name=name), name, {prop: city} if prop else {})
                for n, city in enumerate(cities, 1)]

    # -- writing ----------------------------------------------------------------------------------------------
    def reply(self, call: Call) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, call: Call) -> list[bytes]:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def stream_error(self, message: str) -> bytes:
        raise NotImplementedError


class OpenAIChat(WireFormat):
    """OpenAI Chat Completions (also Azure's deployment paths and every OpenAI-compatible server)."""

    name = "openai"
    path = re.compile(r"/chat/completions$")

    def request_id_headers(self, number: int) -> list[tuple[str, str]]:
        return [("x-request-id", f"req_local{number:04d}")]

    def json_mode(self, body: dict[str, Any]) -> bool:
        fmt = body.get("response_format")
        return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")

    def include_usage(self, body: dict[str, Any]) -> bool:
        options = body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def calls_forbidden(self, body: dict[str, Any]) -> bool:
        return body.get("tool_choice") == "none"

    def chosen_tool(self, body: dict[str, Any]) -> str | None:
        choice = body.get("tool_choice")
        if choice == "required":
            return next(iter(self.tools(body)), None)
        name = _dict(_dict(choice).get("function")).get("name")
        return name if isinstance(name, str) else None

    def parallel(self, body: dict[str, Any]) -> bool:
        return body.get("parallel_tool_calls") is not False

    def tool_results(self, body: dict[str, Any]) -> list[str] | None:
        return _chat_results(self.messages(body))

    def images(self, body: dict[str, Any]) -> int:
        return _part_images(self.messages(body))

    @staticmethod
    def usage(call: Call) -> dict[str, Any]:
        i, o = call.input_tokens, call.output_tokens
        return {
            "prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }

    def reply(self, call: Call) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": call.text, "refusal": None}
        if call.tool_calls:  # content is null next to calls
            message["content"] = call.text or None
            message["tool_calls"] = [{"id": t.id, "type": "function", "function": {"name": t.name,
                                                                                   "arguments": t.json}}
                                     for t in call.tool_calls]
        return {
            "id": f"chatcmpl-local{call.number:04d}", "object": "chat.completion", "created": call.created,
            "model": call.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if call.tool_calls else "stop"}],
            "usage": self.usage(call), "system_fingerprint": "fp_local",
        }

    def stream(self, call: Call) -> list[bytes]:
        base = {"id": f"chatcmpl-local{call.number:04d}", "object": "chat.completion.chunk",
                "created": call.created, "model": call.model, "system_fingerprint": "fp_local"}
        extra = {"usage": None} if call.include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**base, "choices": [choice], **extra})

        events = [chunk({"role": "assistant", "content": None if call.tool_calls else ""}, None)]
        events += [chunk({"content": d}, None) for d in call.deltas]
        # Every call starts (id, name, no arguments yet), then the calls' argument pieces come interleaved.
        events += [chunk({"tool_calls": [{"index": i, "id": t.id, "type": "function",
                                          "function": {"name": t.name, "arguments": ""}}]}, None)
                   for i, t in enumerate(call.tool_calls)]
        split = [t.pieces() for t in call.tool_calls]
        events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p[r]}}]}, None)
                   for r in range(max(map(len, split), default=0)) for i, p in enumerate(split) if r < len(p)]
        events.append(chunk({}, "tool_calls" if call.tool_calls else "stop"))
        if call.include_usage:
            events.append(sse({**base, "choices": [], "usage": self.usage(call)}))
        events.append(b"data: [DONE]\n\n")
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return openai_error(status, message)

    def stream_error(self, message: str) -> bytes:
        return sse({"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def openai_error(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error body (chat completions and responses alike)."""
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", "invalid_api_key" if status == 401 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class AnthropicMessages(WireFormat):
    """Anthropic Messages: named SSE events from ``message_start`` to ``message_stop``."""

    name = "anthropic"
    path = re.compile(r"/messages$")
    call_id = "toolu_local{n}"
    ERROR_TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
        413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error",
    }

    def request_id_headers(self, number: int) -> list[tuple[str, str]]:
        return [("request-id", f"req_local{number:04d}")]

    def system_text(self, body: dict[str, Any]) -> str:
        return text_of(body.get("system"))

    def json_mode(self, body: dict[str, Any]) -> bool:
        output_config = body.get("output_config")  # structured outputs
        return (isinstance(output_config, dict) and isinstance(output_config.get("format"), dict)) or (
            self.forced_tool(body) is not None)

    def forced_tool(self, body: dict[str, Any]) -> str | None:
        # JSON mode through a forced tool: the only tool, forced, with an ``answer`` property to fill.
        tools, choice = self.tools(body), _dict(body.get("tool_choice"))
        name = self.chosen_tool(body)
        if len(tools) != 1 or choice.get("type") not in ("tool", "any") or name not in tools:
            return None
        return name if "answer" in _dict(_dict(tools[name]).get("properties")) else None

    def tools(self, body: dict[str, Any]) -> dict[str, Any]:
        return {t["name"]: t.get("input_schema") for t in _dicts(body.get("tools")) if isinstance(t.get("name"), str)}

    def calls_forbidden(self, body: dict[str, Any]) -> bool:
        return _dict(body.get("tool_choice")).get("type") == "none"

    def chosen_tool(self, body: dict[str, Any]) -> str | None:
        choice = _dict(body.get("tool_choice"))
        if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            return str(choice["name"])
        return next(iter(self.tools(body)), None) if choice.get("type") == "any" else None

    def parallel(self, body: dict[str, Any]) -> bool:
        return _dict(body.get("tool_choice")).get("disable_parallel_tool_use") is not True

    def tool_results(self, body: dict[str, Any]) -> list[str] | None:
        messages = self.messages(body)
        last = messages[-1] if messages else {}
        blocks = _dicts(last.get("content"))
        if last.get("role") != "user" or not any(b.get("type") == "tool_result" for b in blocks):
            return None
        n = len(messages) - 1
        before = messages[-2] if n > 0 else {}
        uses = [b for b in _dicts(before.get("content")) if b.get("type") == "tool_use"]
        _require(before.get("role") == "assistant" and bool(uses),
                 f"messages.{n}: tool_result blocks must be in the user message right after an assistant message "
                 "with tool_use blocks")
        for j, use in enumerate(uses):
            where = f"messages.{n - 1}.content.{j}"
            _require(isinstance(use.get("id"), str) and bool(use["id"]), f"{where}: tool_use.id is missing")
            _require(isinstance(use.get("name"), str) and bool(use["name"]), f"{where}: tool_use.name is missing")
            _require(isinstance(use.get("input"), dict), f"{where}: tool_use.input must be an object, "
                                                         f"got {_kind(use.get('input'))}")
        ids = [use["id"] for use in uses]
        first_text = next((k for k, b in enumerate(blocks) if b.get("type") == "text"), len(blocks))
        results = [(k, b) for k, b in enumerate(blocks) if b.get("type") == "tool_result"]
        for k, block in results:
            _require(k < first_text, f"messages.{n}.content.{k}: tool_result blocks must come before any text")
            _require(block.get("tool_use_id") in ids,
                     f"messages.{n}.content.{k}: unexpected `tool_use_id` found in `tool_result` blocks: "
                     f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                     "block in the previous message.")
            _require(isinstance(block.get("content", ""), str | list),
                     f"messages.{n}.content.{k}: tool_result content must be text or a list of blocks")
        answered = [b["tool_use_id"] for _, b in results]
        missing = [i for i in ids if i not in answered]
        _require(not missing, f"messages.{n}: `tool_use` ids were found without `tool_result` blocks immediately "
                              f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                              "`tool_result` block in the next message.")
        _require(len(set(answered)) == len(answered), f"messages.{n}: each tool_use id takes one tool_result block")
        return [text_of(b.get("content")) for _, b in results]

    def images(self, body: dict[str, Any]) -> int:
        count = 0
        for i, message in enumerate(self.messages(body)):
            if message.get("role") != "user":
                continue
            for j, block in enumerate(_dicts(message.get("content"))):
                if block.get("type") != "image":
                    continue
                where, source = f"messages.{i}.content.{j}.source", _dict(block.get("source"))
                if source.get("type") == "base64":
                    media_type = source.get("media_type")
                    _require(media_type in ("image/jpeg", "image/png", "image/gif", "image/webp"),
                             f"{where}.media_type: {media_type!r} is not one of image/jpeg, image/png, image/gif, "
                             "image/webp")
                    _check_base64(source.get("data"), f"{where}.data")
                else:
                    _require(source.get("type") == "url", f"{where}.type must be base64 or url")
                    _check_image_url(source.get("url"), f"{where}.url")
                    _require(not str(source["url"]).startswith("data:"), f"{where}.url: a data URL goes as base64")
                count += 1
        return count

    def call_text(self, calls: list[ToolUse]) -> str:
        return f"I'll look that up with {calls[0].name}."

    @staticmethod
    def usage(call: Call, output_tokens: int) -> dict[str, Any]:
        return {"input_tokens": call.input_tokens, "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    def _blocks(self, call: Call) -> list[tuple[dict[str, Any], Any, list[dict[str, Any]]]]:
        """The reply's content blocks: (block with its content, block as it starts a stream, its stream deltas)."""
        if call.tool_name is not None:
            block = {"type": "tool_use", "id": "toolu_local01", "name": call.tool_name}
            return [({**block, "input": {"answer": call.base_reply}}, {**block, "input": {}},
                     [{"type": "input_json_delta", "partial_json": d} for d in call.deltas])]
        blocks: list[tuple[dict[str, Any], Any, list[dict[str, Any]]]] = []
        if call.text or not call.tool_calls:
            blocks.append(({"type": "text", "text": call.text}, {"type": "text", "text": ""},
                           [{"type": "text_delta", "text": d} for d in call.deltas]))
        for t in call.tool_calls:
            block = {"type": "tool_use", "id": t.id, "name": t.name}
            blocks.append(({**block, "input": t.arguments}, {**block, "input": {}},
                           [{"type": "input_json_delta", "partial_json": p} for p in t.pieces()]))
        return blocks

    def reply(self, call: Call) -> dict[str, Any]:
        calling = call.tool_name is not None or bool(call.tool_calls)
        return {
            "id": f"msg_local{call.number:04d}", "type": "message", "role": "assistant", "model": call.model,
            "content": [block for block, _, _ in self._blocks(call)], "stop_reason": "tool_use" if calling else
            "end_turn", "stop_sequence": None, "usage": self.usage(call, call.output_tokens),
        }

    def stream(self, call: Call) -> list[bytes]:
        start = {**self.reply(call), "content": [], "stop_reason": None, "usage": self.usage(call, 1)}
        events = [sse({"type": "message_start", "message": start}, "message_start")]
        for index, (_, block, deltas) in enumerate(self._blocks(call)):
            events.append(sse({"type": "content_block_start", "index": index, "content_block": block},
                              "content_block_start"))
            if index == 0:
                events.append(sse({"type": "ping"}, "ping"))
            events += [sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
                       for d in deltas]
            events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        stop_reason = "tool_use" if call.tool_name is not None or call.tool_calls else "end_turn"
        events += [
            sse({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                 "usage": {"output_tokens": call.output_tokens}}, "message_delta"),
            sse({"type": "message_stop"}, "message_stop"),
        ]
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = self.ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def stream_error(self, message: str) -> bytes:
        return sse({"type": "error", "error": {"type": "overloaded_error", "message": message}}, "error")


class OllamaChat(WireFormat):
    """Ollama's native chat API: NDJSON streams, on by default."""

    name = "ollama"
    path = re.compile(r"/api/chat$")
    stream_content_type = "application/x-ndjson"
    needs_key = False  # Ollama's own API has no keys

    def wants_stream(self, body: dict[str, Any], match: re.Match[str]) -> bool:
        return body.get("stream", True) is not False

    def json_mode(self, body: dict[str, Any]) -> bool:
        return bool(body.get("format"))

    def tool_results(self, body: dict[str, Any]) -> list[str] | None:
        return _chat_results(self.messages(body), object_arguments=True)

    def images(self, body: dict[str, Any]) -> int:
        count = 0
        for i, message in enumerate(self.messages(body)):
            images = message.get("images")
            if message.get("role") != "user" or images is None:
                continue
            _require(isinstance(images, list), f"messages[{i}].images must be a list of base64 strings")
            for j, data in enumerate(images):
                _check_base64(data, f"messages[{i}].images[{j}]")
            count += len(images)
        return count

    @staticmethod
    def stats(call: Call) -> dict[str, Any]:
        load, prompt, gen = 1_000_000, call.input_tokens * 50_000, call.output_tokens * 1_000_000
        return {"total_duration": load + prompt + gen + 100_000, "load_duration": load,
                "prompt_eval_count": call.input_tokens, "prompt_eval_duration": prompt,
                "eval_count": call.output_tokens, "eval_duration": gen}

    @staticmethod
    def calls(call: Call) -> list[dict[str, Any]]:
        return [{"id": t.id, "function": {"index": i, "name": t.name, "arguments": t.arguments}}
                for i, t in enumerate(call.tool_calls)]

    def reply(self, call: Call) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": call.text}
        if call.tool_calls:
            message["tool_calls"] = self.calls(call)
        return {"model": call.model, "created_at": CREATED_AT, "message": message,
                "done_reason": "stop", "done": True, **self.stats(call)}

    def stream(self, call: Call) -> list[bytes]:
        head = {"model": call.model, "created_at": CREATED_AT}
        messages: list[dict[str, Any]] = [{"role": "assistant", "content": d} for d in call.deltas]
        if call.tool_calls:  # calls come whole, all in one line
            messages.append({"role": "assistant", "content": "", "tool_calls": self.calls(call)})
        lines = [(dumps({**head, "message": m, "done": False}) + "\n").encode() for m in messages]
        final = {**head, "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": True,
                 **self.stats(call)}
        lines.append((dumps(final) + "\n").encode())
        return lines

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}

    def stream_error(self, message: str) -> bytes:
        return (dumps({"error": message}) + "\n").encode()


class GeminiGenerateContent(WireFormat):
    """Google Gemini generateContent / streamGenerateContent (``alt=sse``); every event a whole response."""

    name = "gemini"
    path = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")
    call_id = ""  # functionCall parts carry no id
    STATUS: ClassVar[dict[int, str]] = {
        400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
    }

    def wants_stream(self, body: dict[str, Any], match: re.Match[str]) -> bool:
        return match["method"] == "streamGenerateContent"

    def model(self, body: dict[str, Any], match: re.Match[str]) -> str:
        return match["model"]

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        contents = body.get("contents")  # {role: user|model, parts: [{text}]}
        if not isinstance(contents, list):
            return []
        return [{"role": "assistant" if c.get("role") == "model" else "user", "content": c.get("parts")}
                for c in contents if isinstance(c, dict)]

    def system_text(self, body: dict[str, Any]) -> str:
        return text_of(body.get("systemInstruction"))

    def json_mode(self, body: dict[str, Any]) -> bool:
        generation = body.get("generationConfig")
        return isinstance(generation, dict) and generation.get("responseMimeType") == "application/json"

    def tools(self, body: dict[str, Any]) -> dict[str, Any]:
        declarations = [d for t in _dicts(body.get("tools")) for d in _dicts(t.get("functionDeclarations"))]
        return {d["name"]: d.get("parametersJsonSchema", d.get("parameters")) for d in declarations
                if isinstance(d.get("name"), str)}

    @staticmethod
    def _calling(body: dict[str, Any]) -> dict[str, Any]:
        return _dict(_dict(body.get("toolConfig")).get("functionCallingConfig"))

    def calls_forbidden(self, body: dict[str, Any]) -> bool:
        return self._calling(body).get("mode") == "NONE"

    def chosen_tool(self, body: dict[str, Any]) -> str | None:
        calling = self._calling(body)
        if calling.get("mode") != "ANY":
            return None
        allowed = [n for n in calling.get("allowedFunctionNames") or () if isinstance(n, str)]
        return allowed[0] if allowed else next(iter(self.tools(body)), None)

    def tool_results(self, body: dict[str, Any]) -> list[str] | None:
        contents = _dicts(body.get("contents"))
        last = contents[-1] if contents else {}
        answers = [(k, p) for k, p in enumerate(_dicts(last.get("parts"))) if "functionResponse" in p]
        if last.get("role", "user") != "user" or not answers:
            return None
        n = len(contents) - 1
        before = contents[-2] if n > 0 else {}
        calls = [(k, p) for k, p in enumerate(_dicts(before.get("parts"))) if "functionCall" in p]
        _require(before.get("role") == "model" and bool(calls),
                 f"contents[{n}]: functionResponse parts must answer the functionCall parts of the model turn "
                 "right before them")
        first, part = calls[0]
        signature = part.get("thoughtSignature")
        _require(signature is not None, f"contents[{n - 1}].parts[{first}]: Function call is missing a "
                                        "thought_signature in functionCall parts; send back the one it came with")
        _require(signature == SIGNATURE, f"contents[{n - 1}].parts[{first}]: thought_signature {signature!r} is not "
                                         f"the one the server sent ({SIGNATURE!r})")
        _require(len(answers) == len(calls), f"contents[{n}]: Please ensure that the number of function response "
                                             "parts is equal to the number of function call parts of the function "
                                             f"call turn ({len(answers)} responses, {len(calls)} calls)")
        texts = []
        for (k, call), (j, answer) in zip(calls, answers, strict=True):
            asked, told = _dict(call["functionCall"]), _dict(answer["functionResponse"])
            _require(isinstance(asked.get("args", {}), dict), f"contents[{n - 1}].parts[{k}].functionCall.args must "
                                                              "be an object")
            _require(told.get("name") == asked.get("name"),
                     f"contents[{n}].parts[{j}].functionResponse.name {told.get('name')!r} does not match the call "
                     f"it answers ({asked.get('name')!r})")
            _require("id" not in asked or told.get("id") == asked["id"],
                     f"contents[{n}].parts[{j}].functionResponse.id must be the call's id {asked.get('id')!r}")
            response = told.get("response")
            _require(isinstance(response, dict), f"contents[{n}].parts[{j}].functionResponse.response must be an "
                                                 f"object, got {_kind(response)}")
            assert isinstance(response, dict)
            output = response.get("output", response)
            texts.append(output if isinstance(output, str) else json.dumps(output, ensure_ascii=False))
        return texts

    def images(self, body: dict[str, Any]) -> int:
        count = 0
        for i, content in enumerate(_dicts(body.get("contents"))):
            if content.get("role", "user") != "user":
                continue
            for j, part in enumerate(_dicts(content.get("parts"))):
                where = f"contents[{i}].parts[{j}]"
                if "inlineData" in part:
                    blob = _dict(part["inlineData"])
                    _require(isinstance(blob.get("mimeType"), str), f"{where}.inlineData.mimeType is missing")
                    _check_base64(blob.get("data"), f"{where}.inlineData.data")
                    count += str(blob["mimeType"]).startswith("image/")
                elif "fileData" in part:
                    file = _dict(part["fileData"])
                    _require(isinstance(file.get("fileUri"), str), f"{where}.fileData.fileUri is missing")
                    count += str(file.get("mimeType", "")).startswith("image/")
        return count

    @staticmethod
    def chunk(call: Call, parts: list[dict[str, Any]], output_tokens: int, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": call.input_tokens, "candidatesTokenCount": output_tokens,
                 "totalTokenCount": call.input_tokens + output_tokens}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": call.model,
                "responseId": f"local{call.number:04d}"}

    @staticmethod
    def call_parts(call: Call) -> list[dict[str, Any]]:
        # With parallel calls only the first part carries the thought signature.
        return [{"functionCall": {"name": t.name, "args": t.arguments}, **({"thoughtSignature": SIGNATURE} if i == 0
                                                                          else {})}
                for i, t in enumerate(call.tool_calls)]

    def reply(self, call: Call) -> dict[str, Any]:
        parts = self.call_parts(call) if call.tool_calls else [{"text": call.text}]
        return self.chunk(call, parts, call.output_tokens, "STOP")

    def stream(self, call: Call) -> list[bytes]:
        # One event per text delta or call; cumulative usage in every event; the last one has the finishReason.
        # CRLF line ends, as Google sends.
        items = [[{"text": d}] for d in call.deltas] + [[part] for part in self.call_parts(call)]
        last = len(items)
        return [sse(self.chunk(call, parts, call.output_tokens * i // last, "STOP" if i == last else None))
                .replace(b"\n", b"\r\n") for i, parts in enumerate(items, 1)]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message,
                          "status": self.STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}}

    def stream_error(self, message: str) -> bytes:
        return sse({"error": {"code": 500, "message": message, "status": "INTERNAL"}})


class CohereChat(WireFormat):
    """Cohere v2 chat: the event type in both the SSE ``event:`` line and ``data.type``."""

    name = "cohere"
    path = re.compile(r"/v2/chat$")
    call_id = "{name}_local{n}"

    @staticmethod
    def usage(call: Call) -> dict[str, Any]:
        billed = {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens}
        # tokens also counts Cohere's own prompt template, billed_units does not.
        return {"billed_units": billed, "tokens": {"input_tokens": call.input_tokens + 60,
                                                   "output_tokens": call.output_tokens}}

    def json_mode(self, body: dict[str, Any]) -> bool:
        fmt = body.get("response_format")
        return isinstance(fmt, dict) and fmt.get("type") == "json_object"

    def calls_forbidden(self, body: dict[str, Any]) -> bool:
        return body.get("tool_choice") == "NONE"

    def chosen_tool(self, body: dict[str, Any]) -> str | None:
        return next(iter(self.tools(body)), None) if body.get("tool_choice") == "REQUIRED" else None

    def tool_results(self, body: dict[str, Any]) -> list[str] | None:
        return _chat_results(self.messages(body))

    def images(self, body: dict[str, Any]) -> int:
        return _part_images(self.messages(body))

    @staticmethod
    def plan(call: Call) -> str:
        return f"I will call {call.tool_calls[0].name} for each city." if call.tool_calls else ""

    def reply(self, call: Call) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": call.text}]}
        if call.tool_calls:  # a turn that calls tools has a plan and no content
            message = {"role": "assistant", "tool_plan": self.plan(call), "tool_calls": [
                {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.json}}
                for t in call.tool_calls]}
        return {"id": f"local-{call.number:04d}", "message": message,
                "finish_reason": "TOOL_CALL" if call.tool_calls else "COMPLETE", "usage": self.usage(call)}

    def stream(self, call: Call) -> list[bytes]:
        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, **fields}, kind)

        events = [event("message-start", id=f"local-{call.number:04d}", delta={"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}})]
        if call.tool_calls:
            events += [event("tool-plan-delta", delta={"message": {"tool_plan": word}})
                       for word in re.findall(r"\s*\S+\s*", self.plan(call))]
            for i, t in enumerate(call.tool_calls):
                # tool_calls is one object in these events, not a list
                events.append(event("tool-call-start", index=i, delta={"message": {"tool_calls": {
                    "id": t.id, "type": "function", "function": {"name": t.name, "arguments": ""}}}}))
                events += [event("tool-call-delta", index=i, delta={"message": {"tool_calls": {
                    "function": {"arguments": p}}}}) for p in t.pieces()]
                events.append(event("tool-call-end", index=i))
        if call.deltas or not call.tool_calls:
            events.append(event("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}}))
            events += [event("content-delta", index=0, delta={"message": {"content": {"text": d}}})
                       for d in call.deltas]
            events.append(event("content-end", index=0))
        events.append(event("message-end", delta={"finish_reason": "TOOL_CALL" if call.tool_calls else "COMPLETE",
                                                  "usage": self.usage(call)}))
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"id": "local-error", "message": message}

    def stream_error(self, message: str) -> bytes:
        return sse({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": message}}, "message-end")


class VertexAnthropic(AnthropicMessages):
    """Claude on Vertex AI: Anthropic Messages at ``…/publishers/anthropic/models/<model>:rawPredict`` (or
    ``:streamRawPredict``), the model in the path, ``anthropic_version`` in the body."""

    name = "vertex-anthropic"
    path = re.compile(r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)$")
    VERSION = "vertex-2023-10-16"

    def model(self, body: dict[str, Any], match: re.Match[str]) -> str:
        _require("model" not in body, "Vertex takes the model in the path, not in the body")
        _require(body.get("anthropic_version") == self.VERSION,
                 f"anthropic_version must be {self.VERSION!r}, got {body.get('anthropic_version')!r}")
        _require((match["method"] == "streamRawPredict") == (body.get("stream") is True),
                 "a streamed call goes to :streamRawPredict with \"stream\": true, any other to :rawPredict")
        return match["model"]


class OpenAIResponses(WireFormat):
    """OpenAI Responses: ``input`` items, flat function tools, typed SSE events from ``response.created`` to
    ``response.completed``.

    A reasoning model (``o<digit>...``, ``gpt-5...``) answers with a reasoning item first: with a summary when
    ``reasoning.summary`` is set, with encrypted content (bound to the item's id) when ``include`` asks for it.
    Requests are checked as the API checks them: chat-completions fields are refused, ``max_output_tokens`` is at
    least 16, reasoning models take no ``temperature`` and other models no encrypted reasoning, every
    ``function_call`` is answered by one ``function_call_output`` and every output answers a call, and a replayed
    reasoning item carries the encrypted content the server issued (under ``store: false`` it must carry some).
    """

    name = "openai-responses"
    path = re.compile(r"/responses$")
    SUMMARY = "**Answering** The question is clear; a short answer will do."
    REASONING_TOKENS = 8
    CHAT_FIELDS: ClassVar[dict[str, str]] = {
        "messages": "input", "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
        "response_format": "text.format"}
    UNSUPPORTED = ("stop", "seed", "presence_penalty", "frequency_penalty", "n", "logit_bias", "stream_options")
    ROLE_PARTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "user": ("input_text", "input_image", "input_file"), "system": ("input_text",),
        "developer": ("input_text",), "assistant": ("output_text", "refusal")}
    IMAGE_DETAIL = ("low", "high", "auto", "original")

    def request_id_headers(self, number: int) -> list[tuple[str, str]]:
        return [("x-request-id", f"req_local{number:04d}")]

    @staticmethod
    def reasoning_model(model: Any) -> bool:
        return isinstance(model, str) and re.match(r"(o\d|gpt-5)", model) is not None

    @staticmethod
    def encrypted(item_id: str) -> str:
        """The encrypted reasoning the server issues for a reasoning item: bound to its id, as the API's is."""
        return base64.b64encode(f"enc:{item_id}".encode()).decode()

    @staticmethod
    def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
        given = body.get("input")
        if isinstance(given, str):
            return [{"type": "message", "role": "user", "content": given}]
        return _dicts(given)

    def messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in self._items(body):
            kind = item.get("type", "message")
            if kind == "message":
                out.append({"role": item.get("role"), "content": item.get("content")})
            elif kind == "function_call":
                out.append({"role": "assistant", "content": ""})
            elif kind == "function_call_output":
                out.append({"role": "tool", "content": item.get("output")})
        return out

    def system_text(self, body: dict[str, Any]) -> str:
        instructions = body.get("instructions")
        return instructions if isinstance(instructions, str) else ""

    def json_mode(self, body: dict[str, Any]) -> bool:
        fmt = _dict(_dict(body.get("text")).get("format"))
        return fmt.get("type") in ("json_object", "json_schema")

    def tools(self, body: dict[str, Any]) -> dict[str, Any]:
        return {t["name"]: t.get("parameters") for t in _dicts(body.get("tools"))
                if t.get("type") == "function" and isinstance(t.get("name"), str)}

    def calls_forbidden(self, body: dict[str, Any]) -> bool:
        return body.get("tool_choice") == "none"

    def chosen_tool(self, body: dict[str, Any]) -> str | None:
        choice = body.get("tool_choice")
        if choice == "required":
            return next(iter(self.tools(body)), None)
        name = _dict(choice).get("name")
        return name if isinstance(name, str) else None

    def parallel(self, body: dict[str, Any]) -> bool:
        return body.get("parallel_tool_calls") is not False

    def reply_options(self, body: dict[str, Any]) -> dict[str, Any]:
        reasoning = self.reasoning_model(body.get("model"))
        include = body.get("include")
        include = include if isinstance(include, list) else []
        return {"reasoning": reasoning, "summary": reasoning and bool(_dict(body.get("reasoning")).get("summary")),
                "encrypted": reasoning and "reasoning.encrypted_content" in include}

    # -- the request, checked ---------------------------------------------------------------------------------
    def check(self, body: dict[str, Any]) -> None:
        for field_name, moved in self.CHAT_FIELDS.items():
            _require(field_name not in body, f"Unsupported parameter: '{field_name}'. In the Responses API, this "
                                              f"parameter has moved to '{moved}'.")
        for field_name in self.UNSUPPORTED:
            _require(field_name not in body, f"Unsupported parameter: '{field_name}'.")
        _require(isinstance(body.get("model"), str), "Missing required parameter: 'model'.")
        given = body.get("input")
        _require(isinstance(given, str | list), "Missing required parameter: 'input'.")
        _require(not isinstance(given, list) or all(isinstance(item, dict) for item in given),
                 "Invalid type for 'input': expected a string or an array of input items.")
        _require(isinstance(body.get("instructions", ""), str), "Invalid type for 'instructions': expected a string.")
        limit = body.get("max_output_tokens")
        if limit is not None:
            _require(type(limit) is int and limit >= 16, "Invalid 'max_output_tokens': integer below minimum value. "
                                                          f"Expected a value >= 16, but got {limit} instead.")
        reasoning = self.reasoning_model(body["model"])
        _require(not (reasoning and "temperature" in body),
                 "Unsupported parameter: 'temperature' is not supported with this model.")
        include = body.get("include", [])
        _require(isinstance(include, list) and all(isinstance(i, str) for i in include),
                 "Invalid type for 'include': expected an array of strings.")
        _require(reasoning or "reasoning.encrypted_content" not in include,
                 "Encrypted content is not supported with this model.")
        for key in ("store", "stream", "parallel_tool_calls"):
            _require(isinstance(body.get(key, False), bool), f"Invalid type for '{key}': expected a boolean.")
        self._check_format(_dict(body.get("text")).get("format"))
        self._check_tools(body)
        for i, item in enumerate(self._items(body)):
            self._check_item(body, i, item)

    @staticmethod
    def _check_format(fmt: Any) -> None:
        if fmt is None:
            return
        kind = _dict(fmt).get("type")
        _require(kind in ("text", "json_object", "json_schema"), f"Invalid value for 'text.format.type': {kind!r}.")
        if kind == "json_schema":
            name = fmt.get("name")
            _require(isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) is not None,
                     "Invalid 'text.format.name': a name of letters, digits, _ and - (at most 64) is required.")
            _require(isinstance(fmt.get("schema"), dict), "Missing required parameter: 'text.format.schema'.")

    def _check_tools(self, body: dict[str, Any]) -> None:
        tools = body.get("tools", [])
        _require(isinstance(tools, list), "Invalid type for 'tools': expected an array.")
        for i, tool in enumerate(tools):
            where = f"tools[{i}]"
            _require(isinstance(tool, dict) and isinstance(tool.get("type"), str), f"Invalid value for '{where}.type'.")
            if tool["type"] != "function":  # a built-in tool (web_search, file_search, ...): the server runs none
                continue
            _require("function" not in tool, f"Unknown parameter: '{where}.function'. Function tools are flat: "
                                             "name, description and parameters sit next to type.")
            _require(isinstance(tool.get("name"), str), f"Missing required parameter: '{where}.name'.")
            params = tool.get("parameters")
            _require(params is None or isinstance(params, dict), f"Invalid type for '{where}.parameters'.")
            _require(isinstance(tool.get("strict", False), bool), f"Invalid type for '{where}.strict'.")
            # Strict mode (the API's default when strict is left out) takes only closed schemas.
            if tool.get("strict", True) and isinstance(params, dict):
                required = set(params.get("required") or ())
                _require(params.get("additionalProperties") is False and set(_dict(params.get("properties")))
                         <= required, f"Invalid schema for function '{tool['name']}': In strict mode, "
                                      "'additionalProperties' must be false and every property required.")
        choice = body.get("tool_choice")
        if choice is None or choice in ("auto", "none", "required"):
            return
        _require(isinstance(choice, dict) and choice.get("type") == "function",
                 "Invalid value for 'tool_choice': expected auto, none, required or {type: function, name}.")
        assert isinstance(choice, dict)
        _require(isinstance(choice.get("name"), str), "Missing required parameter: 'tool_choice.name'.")

    def _check_item(self, body: dict[str, Any], i: int, item: dict[str, Any]) -> None:
        where, kind = f"input[{i}]", item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            _require(role in self.ROLE_PARTS, f"Invalid value for '{where}.role': {role!r}.")
            unknown = sorted(set(item) - {"type", "role", "content", "id", "status", "phase"})
            _require(not unknown, f"Unknown parameter: '{where}.{unknown[0] if unknown else ''}'.")
            content = item.get("content")
            _require(isinstance(content, str | list), f"Invalid type for '{where}.content': expected a string or an "
                                                      "array of content parts.")
            allowed = self.ROLE_PARTS[str(role)]
            for j, part in enumerate(_dicts(content)):
                ptype = part.get("type")
                _require(ptype in allowed, f"Invalid value: '{ptype}'. Supported values are: "
                                           + " and ".join(f"'{a}'" for a in allowed) + f" ({where}.content[{j}]).")
                if ptype in ("input_text", "output_text"):
                    _require(isinstance(part.get("text"), str), f"Missing required parameter: "
                                                                f"'{where}.content[{j}].text'.")
        elif kind == "function_call":
            for key in ("call_id", "name"):
                _require(isinstance(item.get(key), str) and bool(item[key]), f"Missing required parameter: "
                                                                             f"'{where}.{key}'.")
            arguments = item.get("arguments")
            _require(isinstance(arguments, str), f"Invalid type for '{where}.arguments': expected a string, but got "
                                                 f"{_kind(arguments)} instead.")
            try:
                parsed = json.loads(str(arguments))
            except ValueError:
                raise WireError(f"{where}.arguments is not valid JSON: {str(arguments)[:40]!r}") from None
            _require(isinstance(parsed, dict), f"{where}.arguments must be a JSON object")
        elif kind == "function_call_output":
            _require(isinstance(item.get("call_id"), str), f"Missing required parameter: '{where}.call_id'.")
            _require(isinstance(item.get("output"), str | list), f"Invalid type for '{where}.output'.")
        elif kind == "reasoning":
            item_id = item.get("id")
            _require(isinstance(item_id, str) and bool(item_id), f"Missing required parameter: '{where}.id'.")
            summary = item.get("summary")
            _require(isinstance(summary, list) and all(
                isinstance(p, dict) and p.get("type") == "summary_text" and isinstance(p.get("text"), str)
                for p in summary), f"Invalid '{where}.summary': expected an array of summary_text parts.")
            encrypted = item.get("encrypted_content")
            if encrypted is None:
                _require(body.get("store") is not False,
                         f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to false. "
                         "Try again with `store` set to true, or remove this item from your input.")
            else:
                _require(encrypted == self.encrypted(str(item_id)),
                         f"The encrypted content for item {item_id} could not be verified.")
            later = self._items(body)[i + 1:i + 2]
            _require(bool(later) and later[0].get("type", "message") in ("function_call", "message"),
                     f"Item '{item_id}' of type 'reasoning' was provided without its required following item.")
        else:
            raise WireError(f"Invalid value for '{where}.type': {kind!r}.")

    def tool_results(self, body: dict[str, Any]) -> list[str] | None:
        items = self._items(body)
        calls = [(i, item["call_id"]) for i, item in enumerate(items)
                 if item.get("type") == "function_call" and isinstance(item.get("call_id"), str)]
        outputs = [(i, item.get("call_id")) for i, item in enumerate(items)
                   if item.get("type") == "function_call_output"]
        for i, call_id in outputs:
            _require(any(c == call_id and j < i for j, c in calls),
                     f"No tool call found for function call output with call_id {call_id}.")
        answered = [c for _, c in outputs]
        for _, call_id in calls:
            _require(call_id in answered, f"No tool output found for function call {call_id}.")
            _require(answered.count(call_id) == 1, f"Duplicate function call output for call_id {call_id}.")
        start = len(items)
        while start > 0 and items[start - 1].get("type") == "function_call_output":
            start -= 1
        if start == len(items):
            return None
        return [text_of(item.get("output")) for item in items[start:]]

    def images(self, body: dict[str, Any]) -> int:
        count = 0
        for i, item in enumerate(self._items(body)):
            if item.get("type", "message") != "message" or item.get("role") != "user":
                continue
            for j, part in enumerate(_dicts(item.get("content"))):
                where = f"input[{i}].content[{j}]"
                if part.get("type") == "input_image":
                    _require(part.get("detail", "auto") in self.IMAGE_DETAIL, f"Invalid value for '{where}.detail'.")
                    if part.get("file_id") is None:
                        _check_image_url(part.get("image_url"), f"{where}.image_url")
                    count += 1
                elif part.get("type") == "input_file":
                    data, url = part.get("file_data"), part.get("file_url")
                    if data is not None:
                        match = _DATA_URL.fullmatch(data) if isinstance(data, str) else None
                        _require(match is not None, f"{where}.file_data must be a data URL, "
                                                    "data:<media type>;base64,<data>")
                        assert match is not None
                        _check_base64(match["data"], f"{where}.file_data")
                        _require(isinstance(part.get("filename"), str), f"Missing required parameter: "
                                                                        f"'{where}.filename'.")
                    else:
                        by_url = isinstance(url, str) and url.startswith("https://")
                        _require(by_url or part.get("file_id") is not None,
                                 f"{where}: an input_file needs file_data, file_url or file_id")
        return count

    # -- the reply --------------------------------------------------------------------------------------------
    def _reasoning_item(self, call: Call, done: bool = True) -> dict[str, Any] | None:
        if not call.extra.get("reasoning"):
            return None
        item_id = f"rs_local{call.number:04d}"
        item: dict[str, Any] = {"type": "reasoning", "id": item_id, "summary": []}
        if done and call.extra.get("summary"):
            item["summary"] = [{"type": "summary_text", "text": self.SUMMARY}]
        if done and call.extra.get("encrypted"):
            item["encrypted_content"] = self.encrypted(item_id)
        return item

    @staticmethod
    def _message(call: Call, done: bool = True) -> dict[str, Any]:
        content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": call.text}] if done else []
        return {"type": "message", "id": f"msg_local{call.number:04d}", "status": "completed" if done else
                "in_progress", "role": "assistant", "content": content}

    @staticmethod
    def _call(call: Call, n: int, tool: ToolUse, done: bool = True) -> dict[str, Any]:
        return {"type": "function_call", "id": f"fc_local{call.number:04d}_{n}", "call_id": tool.id,
                "name": tool.name, "arguments": tool.json if done else "",
                "status": "completed" if done else "in_progress"}

    def _output(self, call: Call) -> list[dict[str, Any]]:
        reasoning = self._reasoning_item(call)
        output = [reasoning] if reasoning else []
        if call.text or not call.tool_calls:
            output.append(self._message(call))
        return output + [self._call(call, n, t) for n, t in enumerate(call.tool_calls, 1)]

    def usage(self, call: Call) -> dict[str, Any]:
        thought = self.REASONING_TOKENS if call.extra.get("reasoning") else 0
        out = call.output_tokens + thought
        return {"input_tokens": call.input_tokens, "input_tokens_details": {"cached_tokens": 0,
                                                                           "cache_write_tokens": 0},
                "output_tokens": out, "output_tokens_details": {"reasoning_tokens": thought},
                "total_tokens": call.input_tokens + out}

    def _response(self, call: Call, done: bool) -> dict[str, Any]:
        return {"id": f"resp_local{call.number:04d}", "object": "response", "created_at": call.created,
                "status": "completed" if done else "in_progress", "error": None, "incomplete_details": None,
                "model": call.model, "output": self._output(call) if done else [], "parallel_tool_calls": True,
                "store": False, "tool_choice": "auto", "usage": self.usage(call) if done else None}

    def reply(self, call: Call) -> dict[str, Any]:
        return self._response(call, True)

    def stream(self, call: Call) -> list[bytes]:
        events: list[bytes] = []

        def event(kind: str, **fields: Any) -> None:
            events.append(sse({"type": kind, "sequence_number": len(events), **fields}, kind))

        event("response.created", response=self._response(call, False))
        event("response.in_progress", response=self._response(call, False))
        index = 0
        reasoning = self._reasoning_item(call)
        if reasoning is not None:
            item_id = reasoning["id"]
            event("response.output_item.added", output_index=index, item=self._reasoning_item(call, False))
            for part in reasoning["summary"]:
                event("response.reasoning_summary_part.added", item_id=item_id, output_index=index, summary_index=0,
                      part={"type": "summary_text", "text": ""})
                for piece in pieces(part["text"]):
                    event("response.reasoning_summary_text.delta", item_id=item_id, output_index=index,
                          summary_index=0, delta=piece)
                event("response.reasoning_summary_text.done", item_id=item_id, output_index=index, summary_index=0,
                      text=part["text"])
                event("response.reasoning_summary_part.done", item_id=item_id, output_index=index, summary_index=0,
                      part=part)
            event("response.output_item.done", output_index=index, item=reasoning)
            index += 1
        if call.text or not call.tool_calls:
            message = self._message(call)
            item_id = message["id"]
            event("response.output_item.added", output_index=index, item=self._message(call, False))
            event("response.content_part.added", item_id=item_id, output_index=index, content_index=0,
                  part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
            for delta in call.deltas:
                event("response.output_text.delta", item_id=item_id, output_index=index, content_index=0,
                      delta=delta, logprobs=[])
            event("response.output_text.done", item_id=item_id, output_index=index, content_index=0, text=call.text,
                  logprobs=[])
            event("response.content_part.done", item_id=item_id, output_index=index, content_index=0,
                  part=message["content"][0])
            event("response.output_item.done", output_index=index, item=message)
            index += 1
        # Every call starts, then the calls' argument pieces come interleaved (by output_index), then each ends.
        first = index
        for n, tool in enumerate(call.tool_calls, 1):
            event("response.output_item.added", output_index=first + n - 1, item=self._call(call, n, tool, False))
        split = [tool.pieces() for tool in call.tool_calls]
        for r in range(max(map(len, split), default=0)):
            for n, parts in enumerate(split, 1):
                if r < len(parts):
                    event("response.function_call_arguments.delta", item_id=f"fc_local{call.number:04d}_{n}",
                          output_index=first + n - 1, delta=parts[r])
        for n, tool in enumerate(call.tool_calls, 1):
            event("response.function_call_arguments.done", item_id=f"fc_local{call.number:04d}_{n}",
                  output_index=first + n - 1, name=tool.name, arguments=tool.json)
            event("response.output_item.done", output_index=first + n - 1, item=self._call(call, n, tool))
        event("response.completed", response=self._response(call, True))
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return openai_error(status, message)

    def stream_error(self, message: str) -> bytes:
        return sse({"type": "error", "code": "server_error", "message": message, "param": None,
                    "sequence_number": 0}, "error")


FORMATS: dict[str, WireFormat] = {f.name: f for f in (OpenAIChat(), AnthropicMessages(), OllamaChat(),
                                                       GeminiGenerateContent(), CohereChat(), VertexAnthropic(),
                                                       OpenAIResponses())}


def route(path: str, extra: Sequence[WireFormat] = ()) -> tuple[WireFormat, re.Match[str]] | None:
    """The wire format that answers a request path, by its ending (``extra`` formats first); ``None`` when
    none does."""
    path = path.rstrip("/") or "/"
    for wire in (*extra, *FORMATS.values()):
        if (match := wire.matches(path)) is not None:
            return wire, match
    return None
