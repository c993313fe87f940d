"""A call as a client API asked for it, in the engine's terms; and the JSON helpers both APIs share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ErrorKind
from .problems import Problem

# Body fields a client may never pass through to a provider: the gateway sets them, or they would choose where a
# call goes or with which key.
RESERVED = frozenset({"model", "messages", "stream", "stream_options", "api_key", "base_url", "api_base", "headers",
                      "timeout", "max_retries", "extra_headers", "extra_body", "extra_query"})

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    return _encode(value).encode()


@dataclass(slots=True)
class ChatCall:
    """What to ask the engine: the model (a route name or ``provider/model``), the messages in OpenAI's chat shape,
    the engine's keyword options (request fields only, never per-call engine options) and whether to stream."""

    model: str
    messages: list[dict[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None

    def size(self) -> int:
        """A rough count of the input's characters (for a budget's estimate before the call)."""
        return len(json.dumps(self.messages, ensure_ascii=False, separators=(",", ":"))) + (
            len(json.dumps(self.options["tools"], separators=(",", ":"))) if self.options.get("tools") else 0)


@dataclass(slots=True)
class EmbeddingCall:
    """An embeddings request in the engine's terms: the model (a route name or ``provider/model``), the texts, the
    engine's keyword options (dimensions, input_type, user, extra) and how the vectors are written back."""

    model: str
    inputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    base64: bool = False
    stream: bool = False
    max_tokens: int | None = None

    def size(self) -> int:
        """The input's characters (for a budget's estimate before the call)."""
        return sum(len(text) for text in self.inputs)


def invalid(message: str, param: str | None = None) -> Problem:
    return Problem(str(ErrorKind.INVALID_REQUEST), message, param=param)


def read_json(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise invalid("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    return data


def number(body: dict[str, Any], name: str, kind: type | tuple[type, ...] = (int, float)) -> Any:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise invalid(f"{name} must be an integer" if kind is int else f"{name} must be a number", name)
    return value


def pass_through(body: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """Body fields the gateway does not read, passed to the provider as-is (``extra``); reserved ones refused."""
    extra = {}
    for name, value in body.items():
        if name in known:
            continue
        if name in RESERVED:
            raise invalid(f"{name!r} cannot be set through the gateway", name)
        extra[name] = value
    return extra
