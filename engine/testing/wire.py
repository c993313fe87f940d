"""The wire formats the fake server speaks: how each provider family's replies, streams and errors look.

One class per format. Each knows the request paths it answers (by suffix, so any base-URL
prefix works), how to read a request body far enough to answer it, and how to write a reply,
a stream (one bytes item per SSE event or NDJSON line, the end marker last), an error body and
an in-stream error. The HTTP side (sockets, chunking, faults) is `engine.testing.server`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

CREATED_AT = "2026-01-01T00:00:00.000000Z"


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


@dataclass
class Call:
    """One completion to answer: what the reply says and how it is cut into stream deltas."""

    model: str
    text: str  # what is sent as the content (JSON text in JSON mode)
    deltas: list[str]
    input_tokens: int
    stream: bool = False
    number: int = 1
    base_reply: str = ""  # the reply before JSON-mode wrapping
    tool_name: str | None = None  # a forced tool (Anthropic): the answer is its input
    include_usage: bool = False
    created: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def output_tokens(self) -> int:
        return len(self.deltas)


class WireFormat:
    """A provider family's wire format, as the fake server speaks it."""

    name: ClassVar[str]
    path: ClassVar[re.Pattern[str]]  # matched against the end of the request path
    stream_content_type: ClassVar[str] = "text/event-stream; charset=utf-8"

    def matches(self, path: str) -> re.Match[str] | None:
        return self.path.search(path)

    def request_id_headers(self, number: int) -> list[tuple[str, str]]:
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
        return None

    def include_usage(self, body: dict[str, Any]) -> bool:
        return False

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
        return {
            "id": f"chatcmpl-local{call.number:04d}", "object": "chat.completion", "created": call.created,
            "model": call.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": call.text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(call), "system_fingerprint": "fp_local",
        }

    def stream(self, call: Call) -> list[bytes]:
        base = {"id": f"chatcmpl-local{call.number:04d}", "object": "chat.completion.chunk",
                "created": call.created, "model": call.model, "system_fingerprint": "fp_local"}
        extra = {"usage": None} if call.include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**base, "choices": [choice], **extra})

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": d}, None) for d in call.deltas]
        events.append(chunk({}, "stop"))
        if call.include_usage:
            events.append(sse({**base, "choices": [], "usage": self.usage(call)}))
        events.append(b"data: [DONE]\n\n")
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        if status == 429:
            kind, code = "requests", "rate_limit_exceeded"
        elif status >= 500:
            kind, code = "server_error", None
        else:
            kind, code = "invalid_request_error", "invalid_api_key" if status == 401 else None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def stream_error(self, message: str) -> bytes:
        return sse({"error": {"message": message, "type": "server_error", "param": None, "code": None}})


class AnthropicMessages(WireFormat):
    """Anthropic Messages: named SSE events from ``message_start`` to ``message_stop``."""

    name = "anthropic"
    path = re.compile(r"/messages$")
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
        tools, choice = body.get("tools"), body.get("tool_choice")
        if not (isinstance(tools, list) and tools and isinstance(choice, dict)):
            return None
        if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            return str(choice["name"])
        if choice.get("type") == "any" and isinstance(tools[0], dict) and isinstance(tools[0].get("name"), str):
            return str(tools[0]["name"])
        return None

    @staticmethod
    def usage(call: Call, output_tokens: int) -> dict[str, Any]:
        return {"input_tokens": call.input_tokens, "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    def reply(self, call: Call) -> dict[str, Any]:
        content: list[dict[str, Any]]
        if call.tool_name is not None:
            content = [{"type": "tool_use", "id": "toolu_local01", "name": call.tool_name,
                        "input": {"answer": call.base_reply}}]
        else:
            content = [{"type": "text", "text": call.text}]
        return {
            "id": f"msg_local{call.number:04d}", "type": "message", "role": "assistant", "model": call.model,
            "content": content, "stop_reason": "end_turn" if call.tool_name is None else "tool_use",
            "stop_sequence": None, "usage": self.usage(call, call.output_tokens),
        }

    def stream(self, call: Call) -> list[bytes]:
        start = {**self.reply(call), "content": [], "stop_reason": None, "usage": self.usage(call, 1)}
        if call.tool_name is None:
            block: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": d} for d in call.deltas]
        else:
            block = {"type": "tool_use", "id": "toolu_local01", "name": call.tool_name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": d} for d in call.deltas]
        events = [
            sse({"type": "message_start", "message": start}, "message_start"),
            sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
            sse({"type": "ping"}, "ping"),
        ]
        events += [sse({"type": "content_block_delta", "index": 0, "delta": d}, "content_block_delta")
                   for d in deltas]
        stop_reason = "end_turn" if call.tool_name is None else "tool_use"
        events += [
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
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

    def wants_stream(self, body: dict[str, Any], match: re.Match[str]) -> bool:
        return body.get("stream", True) is not False

    def json_mode(self, body: dict[str, Any]) -> bool:
        return bool(body.get("format"))

    @staticmethod
    def stats(call: Call) -> dict[str, Any]:
        load, prompt, gen = 1_000_000, call.input_tokens * 50_000, call.output_tokens * 1_000_000
        return {"total_duration": load + prompt + gen + 100_000, "load_duration": load,
                "prompt_eval_count": call.input_tokens, "prompt_eval_duration": prompt,
                "eval_count": call.output_tokens, "eval_duration": gen}

    def reply(self, call: Call) -> dict[str, Any]:
        return {"model": call.model, "created_at": CREATED_AT, "message": {"role": "assistant", "content": call.text},
                "done_reason": "stop", "done": True, **self.stats(call)}

    def stream(self, call: Call) -> list[bytes]:
        head = {"model": call.model, "created_at": CREATED_AT}
        lines = [(dumps({**head, "message": {"role": "assistant", "content": d}, "done": False}) + "\n").encode()
                 for d in call.deltas]
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

    @staticmethod
    def chunk(call: Call, text: str, output_tokens: int, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": call.input_tokens, "candidatesTokenCount": output_tokens,
                 "totalTokenCount": call.input_tokens + output_tokens}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": call.model,
                "responseId": f"local{call.number:04d}"}

    def reply(self, call: Call) -> dict[str, Any]:
        return self.chunk(call, call.text, call.output_tokens, "STOP")

    def stream(self, call: Call) -> list[bytes]:
        # Cumulative usage in every event; the last one has the finishReason. CRLF line ends, as Google sends.
        last = len(call.deltas)
        return [sse(self.chunk(call, d, i, "STOP" if i == last else None)).replace(b"\n", b"\r\n")
                for i, d in enumerate(call.deltas, 1)]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message,
                          "status": self.STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}}

    def stream_error(self, message: str) -> bytes:
        return sse({"error": {"code": 500, "message": message, "status": "INTERNAL"}})


class CohereChat(WireFormat):
    """Cohere v2 chat: the event type in both the SSE ``event:`` line and ``data.type``."""

    name = "cohere"
    path = re.compile(r"/v2/chat$")

    @staticmethod
    def usage(call: Call) -> dict[str, Any]:
        billed = {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens}
        # tokens also counts Cohere's own prompt template, billed_units does not.
        return {"billed_units": billed, "tokens": {"input_tokens": call.input_tokens + 60,
                                                   "output_tokens": call.output_tokens}}

    def json_mode(self, body: dict[str, Any]) -> bool:
        fmt = body.get("response_format")
        return isinstance(fmt, dict) and fmt.get("type") == "json_object"

    def reply(self, call: Call) -> dict[str, Any]:
        return {"id": f"local-{call.number:04d}",
                "message": {"role": "assistant", "content": [{"type": "text", "text": call.text}]},
                "finish_reason": "COMPLETE", "usage": self.usage(call)}

    def stream(self, call: Call) -> list[bytes]:
        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, **fields}, kind)

        events = [event("message-start", id=f"local-{call.number:04d}", delta={"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}),
            event("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}})]
        events += [event("content-delta", index=0, delta={"message": {"content": {"text": d}}}) for d in call.deltas]
        events += [event("content-end", index=0),
                   event("message-end", delta={"finish_reason": "COMPLETE", "usage": self.usage(call)})]
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"id": "local-error", "message": message}

    def stream_error(self, message: str) -> bytes:
        return sse({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": message}}, "message-end")


FORMATS: dict[str, WireFormat] = {f.name: f for f in (OpenAIChat(), AnthropicMessages(), OllamaChat(),
                                                       GeminiGenerateContent(), CohereChat())}


def route(path: str) -> tuple[WireFormat, re.Match[str]] | None:
    """The wire format that answers a request path, by its ending; ``None`` when none does."""
    path = path.rstrip("/") or "/"
    for wire in FORMATS.values():
        if (match := wire.matches(path)) is not None:
            return wire, match
    return None
