"""The unified request and response every provider speaks, and the rendered HTTP request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import ErrorKind

REDACTED = "***"


class CompletionRequest(BaseModel):
    """One chat completion, provider-neutral.

    ``extra`` carries provider-specific body fields; bundled templates merge it
    into the request body, and any template can read it.
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]]
    model: str | None = None
    temperature: float | None = 0.7
    max_tokens: int | None = None
    stream: bool = False
    output_schema: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _check_messages(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not messages:
            raise ValueError("at least one message is required")
        for i, message in enumerate(messages):
            if "role" not in message or "content" not in message:
                raise ValueError(f"message {i} needs 'role' and 'content' keys, got {sorted(message)}")
        return messages


class CompletionResponse(BaseModel):
    """The unified result of a call, successful or not.

    Token counts are ``None`` when the provider did not report them; ``cost_usd``
    is ``None`` when the model has no known price. ``input_tokens`` always
    counts all input tokens, cached ones included.
    """

    model_config = ConfigDict(extra="forbid")

    content: str = ""
    reasoning: str | None = None
    model: str | None = None
    provider: str | None = None
    success: bool = True
    error: str | None = None
    error_kind: ErrorKind | None = None
    status_code: int | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    raw_response: Any = None

    @property
    def text(self) -> str:
        """Alias of ``content``."""
        return self.content


@dataclass(slots=True)
class HTTPRequest:
    """The exact HTTP request a call sends. ``repr`` and `redacted` hide secrets."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes
    secret_headers: frozenset[str] = field(default=frozenset(), repr=False)
    secret_params: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content) if self.content else None

    def redacted(self) -> HTTPRequest:
        """A copy with API keys replaced by ``***`` in headers and query string."""
        headers = {k: (REDACTED if k.lower() in self.secret_headers else v) for k, v in self.headers.items()}
        url = self.url
        if self.secret_params:
            from urllib.parse import parse_qsl, quote, urlencode

            base, _, query = url.partition("?")
            params = [(k, REDACTED if k in self.secret_params else v) for k, v in parse_qsl(query, True)]
            url = base + "?" + urlencode(params, safe="*", quote_via=quote)
        return HTTPRequest(self.method, url, headers, self.content)

    def to_dict(self) -> dict[str, Any]:
        """Method, URL, headers and parsed body, secrets redacted: the golden-file form."""
        shown = self.redacted()
        return {"method": shown.method, "url": shown.url, "headers": shown.headers, "body": shown.json}

    def __repr__(self) -> str:
        shown = self.redacted()
        return f"HTTPRequest(method={shown.method!r}, url={shown.url!r}, headers={shown.headers!r})"
