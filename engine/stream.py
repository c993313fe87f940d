"""Stream: bytes off the wire become text deltas and, at the end, unified fields. Pure, no I/O.

The decoders work on bytes, so a chunk boundary may fall anywhere (inside a
line, a JSON token or a UTF-8 character). `StreamState` applies the provider's
per-event rules and remembers everything the final response needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .compiled import CompiledRule, CompiledStream
from .errors import ErrorKind

Event = tuple[str | None, bytes]


class SSEDecoder:
    """Server-sent events: yields ``(event name or None, data)`` per dispatched event."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events: list[Event] = []
        for line in lines:
            self._split_line(line, events)
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
            self._event, self._data = None, []
            return
        if line[0] == 58:  # b":" — a comment / keep-alive
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

    def close(self) -> list[Event]:
        """Events still buffered at the end of the body (a last event without its blank line)."""
        events: list[Event] = []
        if self._buffer:
            self._split_line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events


class NDJSONDecoder:
    """Newline-delimited JSON: one event per non-empty line."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        return [(None, line) for line in lines if line.strip()]

    def close(self) -> list[Event]:
        line, self._buffer = self._buffer, b""
        return [(None, line)] if line.strip() else []


class StreamState:
    """Everything learnt from a stream so far: text, usage, finish reason, end and errors."""

    __slots__ = ("_decoder", "_done", "ended", "error", "error_kind", "events", "kinds", "parts", "reasoning", "spec",
                 "values")

    def __init__(self, spec: CompiledStream, kinds: Mapping[str, ErrorKind] | None = None) -> None:
        self.spec = spec
        self.kinds = kinds or {}
        self._done = spec.done.encode() if spec.done is not None else None
        self._decoder: SSEDecoder | NDJSONDecoder = SSEDecoder() if spec.format == "sse" else NDJSONDecoder()
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.values: dict[str, Any] = {}
        self.events: list[Any] = []
        self.ended = False
        self.error: str | None = None
        self.error_kind: ErrorKind | None = None

    @property
    def finished(self) -> bool:
        return self.ended or self.error is not None

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def feed(self, chunk: bytes) -> list[str]:
        """Decode a chunk of the body; returns the text deltas it completes."""
        return self._apply(self._decoder.feed(chunk))

    def close(self) -> list[str]:
        """The body has ended: handle what is still buffered."""
        return self._apply(self._decoder.close())

    def fail(self, message: str, kind: ErrorKind) -> None:
        if self.error is None:
            self.error, self.error_kind = message, kind

    def _rule(self, name: str | None, payload: Any) -> CompiledRule | None:
        spec = self.spec
        if name is not None and name in spec.events:
            return spec.events[name]
        if spec.event_type is not None and spec.events:
            kind = spec.event_type.value(payload)
            if kind is not None and kind in spec.events:
                return spec.events[kind]
        return spec.chunk

    def _apply(self, events: list[Event]) -> list[str]:
        deltas: list[str] = []
        for name, data in events:
            if self.finished:
                break
            if self._done is not None and data.strip() == self._done:
                self.ended = True
                break
            try:
                payload = json.loads(data)
            except ValueError:
                self.fail(f"stream event is not valid JSON: {data[:200].decode('utf-8', 'replace')!r}",
                          ErrorKind.INVALID_RESPONSE)
                break
            self.events.append(payload if name is None else {"event": name, "data": payload})
            rule = self._rule(name, payload)
            if rule is None:
                continue
            for head, fields in rule.groups:
                if head is not None and (type(payload) is not dict or payload.get(head) is None):
                    continue
                for field, extractor in fields:
                    value = extractor.value(payload)
                    if value is not None:
                        self.values[field] = value
            if rule.delta is not None:
                delta = rule.delta.strings(payload)
                if delta:
                    self.parts.append(delta)
                    deltas.append(delta)
            if rule.reasoning_delta is not None:
                thought = rule.reasoning_delta.strings(payload)
                if thought:
                    self.reasoning.append(thought)
            if rule.error or "error_message" in self.values:
                message = self.values.get("error_message") or json.dumps(payload)[:200]
                error_type = self.values.get("error_type")
                self.fail(f"error in stream: {message}" + (f" ({error_type})" if error_type else ""),
                          self.kinds.get(str(error_type), ErrorKind.SERVER))
            elif rule.end or (rule.end_when is not None and rule.end_when.value(payload)):
                self.ended = True
        return deltas

