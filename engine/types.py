"""The unified request and response every provider speaks, and the rendered HTTP request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import ErrorKind

REDACTED = "***"


class CompletionRequest(BaseModel):
    """One chat completion, provider-neutral, in OpenAI's chat shape (which every provider file translates).

    ``messages``: ``{role, content}`` with content a string or parts (``text``, ``image_url`` with an https
    or ``data:`` URL, ``file`` with ``file_data``); assistant turns may carry ``tool_calls``; ``role: tool``
    turns answer one by ``tool_call_id``. ``tools`` are function tools; ``tool_choice`` is ``auto``,
    ``none``, ``required`` or one named function. ``extra`` carries provider-specific body fields; bundled
    templates merge it into the request body, and any template can read it.
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]]
    model: str | None = None
    temperature: float | None = 0.7
    max_tokens: int | None = None
    stream: bool = False
    output_schema: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stop: str | list[str] | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None

    @field_validator("messages")
    @classmethod
    def _check_messages(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not messages:
            raise ValueError("at least one message is required")
        for i, message in enumerate(messages):
            if "role" not in message:
                raise ValueError(f"message {i} needs a 'role' key, got {sorted(message)}")
            if "content" not in message and not message.get("tool_calls"):
                raise ValueError(f"message {i} needs 'content' (or, for an assistant, 'tool_calls'), "
                                 f"got {sorted(message)}")
        return messages

    @field_validator("tools")
    @classmethod
    def _check_tools(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, tool in enumerate(tools or ()):
            function = tool.get("function")
            if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
                raise ValueError(f"tool {i} must be {{'type': 'function', 'function': {{'name': ..., "
                                 "'description': ..., 'parameters': {...}}}")
        return tools

    @field_validator("tool_choice")
    @classmethod
    def _check_tool_choice(cls, choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(choice, str) and choice not in ("auto", "none", "required"):
            raise ValueError("tool_choice must be 'auto', 'none', 'required' or one named function")
        if isinstance(choice, dict):
            function = choice.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise ValueError("a named tool_choice is {'type': 'function', 'function': {'name': ...}}")
        return choice


class ToolCall(BaseModel):
    """One function call the model asked for. ``arguments`` is JSON text; `args` parses it.

    ``signature`` is opaque data the provider needs back with the call on the next turn (Gemini's thought
    signature); `CompletionResponse.message` carries it, so replaying that message sends it back.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None

    def args(self) -> Any:
        """The arguments parsed; raises ``ValueError`` when the model wrote invalid JSON."""
        return json.loads(self.arguments) if self.arguments.strip() else {}

    def to_message(self) -> dict[str, Any]:
        """The call as it appears in an assistant message's ``tool_calls``."""
        call: dict[str, Any] = {"id": self.id, "type": "function",
                                "function": {"name": self.name, "arguments": self.arguments}}
        if self.signature is not None:
            call["signature"] = self.signature
        return call


@dataclass(slots=True)
class StreamEvent:
    """One typed event of a stream, the same for every provider.

    ``type``: ``text`` (``text``), ``reasoning`` (``text``), ``tool_call`` (a call starts: ``index``, ``id``,
    ``name``), ``tool_arguments`` (``index``, ``text``: a piece of its JSON arguments), ``usage``
    (``response`` holds the counts), ``end`` (``response`` is the final response).
    """

    type: str
    text: str = ""
    index: int | None = None
    id: str | None = None
    name: str | None = None
    response: CompletionResponse | None = None


class CompletionResponse(BaseModel):
    """The unified result of a call, successful or not.

    Token counts are ``None`` when the provider did not report them; ``cost_usd``
    is ``None`` when the model has no known price. ``input_tokens`` always
    counts all input tokens, cached ones included. ``finish_reason`` is one of
    ``stop``, ``length``, ``tool_calls``, ``content_filter``, ``other`` (the
    provider's own word is ``native_finish_reason``). ``warnings`` notes what
    the engine ignored (a usage count that was not a sane number). A failed
    call's ``error`` reads ``HTTP <status>: <message> (<type or code>)`` (or
    ``error in stream: <message> (<type>)``); ``error_message`` and
    ``error_code`` are the provider's own message and type or code, and
    ``request_id`` its request id, when its file says where they are.
    ``service_tier`` is the tier the provider says served the call, and
    ``cache_write_1h_tokens`` the part of ``cache_write_tokens`` written for
    an hour; both can change the cost.
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
    cache_write_1h_tokens: int | None = None
    service_tier: str | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    raw_response: Any = None
    warnings: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    native_finish_reason: str | None = None
    thinking: list[dict[str, Any]] = Field(default_factory=list)
    error_message: str | None = None
    error_code: str | None = None
    request_id: str | None = None

    @property
    def text(self) -> str:
        """Alias of ``content``."""
        return self.content

    @property
    def message(self) -> dict[str, Any]:
        """The reply as an assistant message to append to the conversation: text, tool calls, and the opaque
        data (signatures, reasoning blocks) the provider needs back on the next turn."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        elif message["content"] is None:
            message["content"] = ""
        if self.thinking:
            message["thinking"] = [dict(block) for block in self.thinking]
        return message


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Engine settings for one call, never sent as body fields: ``timeout`` (seconds), ``max_retries``,
    extra ``headers``, and an ``api_key`` or ``base_url`` used instead of the configured ones."""

    timeout: float | None = None
    max_retries: int | None = None
    headers: dict[str, str] | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.max_retries is not None and (type(self.max_retries) is not int or self.max_retries < 0):
            raise ValueError(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")


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


InputType = Literal["query", "document", "classification", "clustering"]


class EmbeddingRequest(BaseModel):
    """What to embed: the texts, and the options every embeddings API may take (each provider file writes them
    under its API's names; one its API does not take is refused before anything is sent)."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(min_length=1, description="The texts, one vector each, in this order.")
    model: str | None = None
    dimensions: int | None = Field(default=None, gt=0, description="Shorter vectors, where the model can.")
    input_type: InputType | None = Field(
        default=None, description="What the texts are for: search `query` or `document`, `classification`, "
                                  "`clustering` (models that embed them differently).",
    )
    user: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="Provider-specific body fields.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_text_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class EmbeddingResponse(BaseModel):
    """The unified result of an embeddings call: one vector per input, in input order.

    A long input list is sent in batches; if one fails, ``success`` is ``False``, ``error`` says which
    inputs it held, ``failed`` lists their indexes and their ``vectors`` entries are ``None``: vectors are
    never dropped or shifted. ``input_tokens`` and ``cost_usd`` cover the batches that succeeded.
    """

    model_config = ConfigDict(extra="forbid")

    vectors: list[list[float] | None] = Field(default_factory=list)
    model: str | None = None
    provider: str | None = None
    success: bool = True
    error: str | None = None
    error_kind: ErrorKind | None = None
    status_code: int | None = None
    input_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    raw_response: Any = None
    warnings: list[str] = Field(default_factory=list)
    failed: list[int] = Field(default_factory=list)
    batches: int = 0
    error_message: str | None = None
    error_code: str | None = None
    request_id: str | None = None

    @property
    def dimensions(self) -> int | None:
        """The length of the vectors (``None`` when there are none)."""
        return next((len(v) for v in self.vectors if v is not None), None)
