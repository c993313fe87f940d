"""Stream: bytes off the wire become text deltas and, at the end, unified fields. Pure, no I/O.

The decoders work on bytes, so a chunk boundary may fall anywhere (inside a
line, a JSON token or a UTF-8 character). `StreamState` applies the provider's
per-event rules and remembers everything the final response needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .compiled import CompiledRule, CompiledStream
from .errors import ErrorKind
from .jsonpath import reading_headers
from .limits import DEFAULT, LimitExceeded, Limits, parse_json
from .types import StreamEvent, ToolCall

Event = tuple[str | None, bytes]


class _Lines:
    """Splits bytes into lines in linear time (a long line is joined once), refusing a line past ``limit``."""

    __slots__ = ("_limit", "_parts", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            if chunk:
                self._parts.append(chunk)
                self._size += len(chunk)
                if self._size > self._limit:
                    raise LimitExceeded("max_event_bytes", self._limit, "a stream line")
            return []
        lines = chunk.split(b"\n")
        limit = self._limit
        if self._parts:
            self._parts.append(lines[0])
            lines[0] = b"".join(self._parts)
            self._parts, self._size = [], 0
            if len(lines[0]) > limit:
                raise LimitExceeded("max_event_bytes", limit, "a stream line")
        tail = lines.pop()
        if tail:
            self._parts, self._size = [tail], len(tail)
        # Every other line, and the tail, lies within this chunk: only a chunk past the limit can hold one.
        if len(chunk) > limit and (max(map(len, lines), default=0) > limit or self._size > limit):
            raise LimitExceeded("max_event_bytes", limit, "a stream line")
        return lines

    def close(self) -> bytes:
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        return rest


class SSEDecoder:
    """Server-sent events: yields ``(event name or None, data)`` per dispatched event."""

    __slots__ = ("_data", "_event", "_limit", "_lines", "_size")

    def __init__(self, limit: int = DEFAULT.max_event_bytes) -> None:
        self._lines = _Lines(limit)
        self._limit = limit
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        for line in self._lines.feed(chunk):
            if line.endswith(b"\r"):
                line = line[:-1]
            if b"\r" in line:  # lone CR line endings
                for part in line.split(b"\r"):
                    self._line(part, events)
            elif not line:  # the blank line that ends an event (the common case, inlined)
                if self._data:
                    data = self._data
                    events.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    self._event, self._data, self._size = None, [], 0
            else:
                self._line(line, events)
        return events

    def _split_line(self, line: bytes, events: list[Event]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:  # lone CR line endings
            for part in line.split(b"\r"):
                self._line(part, events)
        else:
            self._line(line, events)

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._data:
                events.append((self._event, b"\n".join(self._data)))
            self._event, self._data, self._size = None, [], 0
            return
        if line[0] == 58:  # b":" — a comment / keep-alive
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value)
            if self._size > self._limit:
                raise LimitExceeded("max_event_bytes", self._limit, "a stream event")
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

    def close(self) -> list[Event]:
        """Events still buffered at the end of the body (a last event without its blank line)."""
        events: list[Event] = []
        rest = self._lines.close()
        if rest:
            self._split_line(rest, events)
        self._line(b"", events)
        return events


class NDJSONDecoder:
    """Newline-delimited JSON: one event per non-empty line."""

    __slots__ = ("_lines",)

    def __init__(self, limit: int = DEFAULT.max_event_bytes) -> None:
        self._lines = _Lines(limit)

    def feed(self, chunk: bytes) -> list[Event]:
        return [(None, line) for line in self._lines.feed(chunk) if line.strip()]

    def close(self) -> list[Event]:
        line = self._lines.close()
        return [(None, line)] if line.strip() else []


class StreamState:
    """Everything learnt from a stream so far: text, usage, finish reason, end and errors.

    Nothing a server sends raises: a bad event, one past a limit or too deeply nested fails the
    stream with ``invalid_response``. ``secret`` (the API key, or a tuple of secrets) is masked in any event
    that echoes it.
    """

    __slots__ = ("_decoder", "_done", "_headers", "_limits", "_secrets", "bytes_seen", "calls", "ended", "error",
                 "error_kind", "events", "head", "kinds", "parts", "reasoning", "spec", "thoughts", "values")

    def __init__(self, spec: CompiledStream, kinds: Mapping[str, ErrorKind] | None = None,
                 limits: Limits = DEFAULT, secret: str | tuple[str, ...] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.kinds = kinds or {}
        self._limits = limits
        secrets = (secret,) if isinstance(secret, str) else secret or ()
        self._secrets = tuple(s.encode() for s in secrets if len(s) >= 4)
        self._done = spec.done.encode() if spec.done is not None else None
        self._decoder: SSEDecoder | NDJSONDecoder = (
            SSEDecoder(limits.max_event_bytes) if spec.format == "sse" else NDJSONDecoder(limits.max_event_bytes))
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.values: dict[str, Any] = {}
        self.events: list[Any] = []
        self.ended = False
        self.error: str | None = None
        self.error_kind: ErrorKind | None = None
        self.bytes_seen = 0
        self.head = b""  # the first bytes of the body, to show when it holds no events
        self.calls = ToolCallAssembler()  # tool calls being assembled, by the API's index (or arrival)
        self._headers = headers  # for header: paths (given only when the provider file has some)
        self.thoughts: dict[Any, dict[str, Any]] = {}  # reasoning blocks to replay, by index

    @property
    def finished(self) -> bool:
        return self.ended or self.error is not None

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def feed(self, chunk: bytes) -> list[StreamEvent | str]:
        """Decode a chunk of the body; returns the events it completes: a text delta as a plain ``str``, any
        other event (reasoning, tool calls forming) as a `StreamEvent`."""
        if self.bytes_seen < 200:
            self.head += chunk[:200 - len(self.head)]
        self.bytes_seen += len(chunk)
        try:
            if self._headers is not None:
                with reading_headers(self._headers):
                    return self._apply(self._decoder.feed(chunk))
            return self._apply(self._decoder.feed(chunk))  # (the common case: no rule reads a header)
        except LimitExceeded as exc:
            self.fail(str(exc), ErrorKind.INVALID_RESPONSE)
            return []

    def close(self) -> list[StreamEvent | str]:
        """The body has ended: handle what is still buffered."""
        try:
            if self._headers is not None:
                with reading_headers(self._headers):
                    return self._apply(self._decoder.close())
            return self._apply(self._decoder.close())
        except LimitExceeded as exc:
            self.fail(str(exc), ErrorKind.INVALID_RESPONSE)
            return []

    def fail(self, message: str, kind: ErrorKind) -> None:
        if self.error is None:
            self.error, self.error_kind = message, kind

    def _rule(self, name: str | None, payload: Any) -> CompiledRule | None:
        spec = self.spec
        if name is not None and name in spec.events:
            return spec.events[name]
        if spec.event_type is not None and spec.events:
            kind = spec.event_type.value(payload)
            if isinstance(kind, str) and kind in spec.events:
                return spec.events[kind]
        return spec.chunk

    def tool_calls(self) -> list[ToolCall]:
        """The tool calls assembled so far, in the order they started."""
        return self.calls.calls()

    def thinking(self) -> list[dict[str, Any]]:
        blocks = []
        for block in self.thoughts.values():
            out = {"text": "".join(block["text"])} if block["text"] else {}
            for key in ("signature", "redacted", "id"):
                if block.get(key) is not None:
                    out[key] = block[key]
            if "text" in out or "redacted" in out:
                blocks.append(out)
        return blocks

    def _thinking(self, items: list[tuple[Any, dict[str, Any]]]) -> None:
        for index, values in items:
            key = index if isinstance(index, int | str) else ("#", len(self.thoughts))
            block = self.thoughts.setdefault(key, {"text": []})
            if isinstance(values.get("text"), str):
                block["text"].append(values["text"])
            for name in ("signature", "redacted", "id"):
                if name in values:
                    block[name] = _as_text(values[name])

    def _apply(self, events: list[Event]) -> list[StreamEvent | str]:
        deltas: list[StreamEvent | str] = []
        spec = self.spec
        for name, data in events:
            if self.ended or self.error is not None:
                break
            if self._done is not None and data.strip() == self._done:
                self.ended = True
                break
            for secret in self._secrets:
                if secret in data:
                    data = data.replace(secret, b"***")
            try:
                payload = parse_json(data, self._limits)
            except LimitExceeded as exc:
                self.fail(f"stream event: {exc}", ErrorKind.INVALID_RESPONSE)
                break
            except ValueError:
                self.fail(f"stream event is not valid JSON: {data[:200].decode('utf-8', 'replace')!r}",
                          ErrorKind.INVALID_RESPONSE)
                break
            self.events.append(payload if name is None else {"event": name, "data": payload})
            rule = spec.chunk if name is None and not spec.events else self._rule(name, payload)
            if rule is None:
                continue
            for head, fields in rule.groups:
                if head is not None and (type(payload) is not dict or payload.get(head) is None):
                    continue
                for field, extractor in fields:
                    value = extractor.read(payload)
                    if value is not None:
                        self.values[field] = value
            counts = rule.when is None or rule.when.holds(payload)
            if counts and rule.delta is not None:
                delta = rule.delta.strings(payload)
                if delta:
                    self.parts.append(delta)
                    deltas.append(delta)  # a text delta travels as a plain str (see AsyncStream)
            if counts and rule.reasoning_delta is not None:
                thought = rule.reasoning_delta.strings(payload)
                if thought:
                    self.reasoning.append(thought)
                    deltas.append(StreamEvent("reasoning", thought))
            if counts and rule.tool_call is not None:
                items = rule.tool_call.items(payload)
                if items:
                    self.calls.feed(items, deltas)
            if counts and rule.thinking is not None:
                items = rule.thinking.items(payload)
                if items:
                    self._thinking(items)
            if rule.error or "error_message" in self.values:
                message = self.values.get("error_message")
                if not isinstance(message, str) or not message:
                    message = _short_json(payload)
                error_type = self.values.get("error_type")
                self.fail(f"error in stream: {message}" + (f" ({error_type})" if error_type is not None else ""),
                          self.kinds.get(str(error_type), ErrorKind.SERVER))
            elif rule.end or (rule.end_when is not None and rule.end_when.holds(payload)):
                self.ended = True
        return deltas


class ToolCallAssembler:
    """Tool calls assembled from stream pieces: items with one index are one call (their arguments joined);
    items without an index are each a call. Emits ``tool_call`` when a call's name is known, then
    ``tool_arguments`` for each piece."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[Any, _Call] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, items: list[tuple[Any, dict[str, Any]]], events: list[Any]) -> None:
        for index, values in items:
            key = index if isinstance(index, int | str) else ("#", len(self._calls))
            call = self._calls.get(key)
            if call is None:
                call = self._calls[key] = _Call(len(self._calls))
            if call.id is None and isinstance(values.get("id"), str) and values["id"]:
                call.id = values["id"]
            if not call.name and isinstance(values.get("name"), str):
                call.name = values["name"]
            if values.get("signature") is not None:
                call.signature = _as_text(values["signature"])
            piece = values.get("arguments")
            if piece is not None:
                text = _as_text(piece)
                if isinstance(piece, str):
                    call.arguments.append(text)
                else:  # a whole object: the arguments, not a piece of them
                    call.arguments = [text]
                if call.announced and text:
                    events.append(StreamEvent("tool_arguments", text=text, index=call.position))
            if not call.announced and call.name:
                call.announced = True
                if call.id is None and "".join(call.arguments):  # a whole call without an id: make it now
                    from .shapes import stable_call_id

                    call.id = stable_call_id(call.name, "".join(call.arguments), call.position)
                events.append(StreamEvent("tool_call", index=call.position, id=call.id, name=call.name))
                if "".join(call.arguments):
                    events.append(StreamEvent("tool_arguments", text="".join(call.arguments), index=call.position))

    def calls(self) -> list[ToolCall]:
        """The calls so far, in the order they started (a piece without a name is not a call)."""
        from .shapes import stable_call_id

        calls = []
        for call in sorted(self._calls.values(), key=lambda c: c.position):
            if call.name:
                arguments = "".join(call.arguments) or "{}"
                calls.append(ToolCall(id=call.id or stable_call_id(call.name, arguments, call.position),
                                      name=call.name, arguments=arguments, signature=call.signature))
        return calls


class _Call:
    """A tool call being assembled from stream pieces."""

    __slots__ = ("announced", "arguments", "id", "name", "position", "signature")

    def __init__(self, position: int) -> None:
        self.position = position
        self.id: str | None = None
        self.name: str | None = None
        self.signature: str | None = None
        self.arguments: list[str] = []
        self.announced = False


def _as_text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _short_json(payload: Any) -> str:
    import json

    try:
        return json.dumps(payload)[:200]
    except (ValueError, RecursionError):
        return "(unreadable error event)"
