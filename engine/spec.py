"""The provider-file format: pydantic models that validate one YAML file.

Every model rejects unknown keys, so a typo in a provider file is an error with
its key path, never a silently ignored setting. A "path" value is a JSONPath
expression, or a list of them tried in order (the first that finds a non-null
value wins).
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import ErrorKind

PathSpec = str | list[str]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Strict):
    """One model the provider serves."""

    id: str
    aliases: list[str] = []
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    description: str | None = None
    options: dict[str, Any] = {}


class ConfigVar(_Strict):
    """A per-provider setting (e.g. Azure's resource name), read from env or settings."""

    description: str | None = None
    env: list[str] = []
    default: str | None = None
    required: bool = False


class AuthSpec(_Strict):
    """How the API key is sent: in a header, a query parameter, or not at all."""

    type: Literal["header", "query", "none"] = "header"
    header: str = "Authorization"
    value: str = "Bearer {{ api_key }}"
    query_param: str | None = None
    env: list[str] = []
    optional: bool = False

    @model_validator(mode="after")
    def _query_needs_param(self) -> AuthSpec:
        if self.type == "query" and not self.query_param:
            raise ValueError("auth.type 'query' needs auth.query_param (e.g. 'key')")
        return self


class RequestSpec(_Strict):
    """The HTTP request: method, path and query templates, static headers, Jinja body template."""

    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    path: str
    stream_path: str | None = None
    query: dict[str, str] = {}
    stream_query: dict[str, str] = {}
    headers: dict[str, str] = {}
    body: str | None = None


class ResponseSpec(_Strict):
    """Where each unified field is found in a non-streamed response body."""

    content: PathSpec
    reasoning: PathSpec | None = None
    model: PathSpec | None = None
    finish_reason: PathSpec | None = None
    input_tokens: PathSpec | None = None
    output_tokens: PathSpec | None = None
    cached_input_tokens: PathSpec | None = None
    cache_write_tokens: PathSpec | None = None
    reasoning_tokens: PathSpec | None = None
    input_includes_cached: bool = True
    output_includes_reasoning: bool = True


class ErrorSpec(_Strict):
    """Where the message and type are found in an error body, and how types map to kinds."""

    message: PathSpec | None = None
    type: PathSpec | None = None
    kinds: dict[str, ErrorKind] = {}


class StreamRule(_Strict):
    """What one kind of stream event carries. Usage values: the last one reported wins."""

    delta: PathSpec | None = None
    reasoning_delta: PathSpec | None = None
    model: PathSpec | None = None
    finish_reason: PathSpec | None = None
    input_tokens: PathSpec | None = None
    output_tokens: PathSpec | None = None
    cached_input_tokens: PathSpec | None = None
    cache_write_tokens: PathSpec | None = None
    reasoning_tokens: PathSpec | None = None
    error_message: PathSpec | None = None
    error_type: PathSpec | None = None
    error: bool = False
    end: bool | str = False


class StreamSpec(_Strict):
    """How a streamed response is framed and what each event means."""

    format: Literal["sse", "ndjson"] = "sse"
    done: str | None = None
    event_type: PathSpec | None = None
    chunk: StreamRule | None = None
    events: dict[str, StreamRule] = {}

    @model_validator(mode="after")
    def _has_an_end(self) -> StreamSpec:
        rules = [*self.events.values(), *([self.chunk] if self.chunk else [])]
        if not rules:
            raise ValueError("a stream needs 'chunk' (the rule for every event) or per-type 'events'")
        if self.done is None and not any(rule.end for rule in rules):
            raise ValueError(
                "a stream needs an end marker: 'done' (e.g. '[DONE]') or a rule with 'end' "
                "(true, or a JSONPath that is truthy on the last event); otherwise a cut-off "
                "stream could not be told from a complete one"
            )
        return self


class Price(_Strict):
    """USD per million tokens for one model."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)
    source: str | None = None
    date: datetime.date | None = None

    @field_validator("input", "output", "cached_input", "cache_write", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        # YAML gives floats; str() keeps the written digits so 0.59 stays exactly 0.59.
        return str(value) if isinstance(value, float) else value


class ProviderSpec(_Strict):
    """One provider file, after ``extends`` is resolved."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    extends: str | None = None
    description: str = ""
    docs_url: str | None = None
    checked: datetime.date | None = None
    base_url: str | None = None
    default_model: str | None = None
    models: list[ModelInfo] = []
    local: bool = False
    auth: AuthSpec = AuthSpec(type="none")
    config: dict[str, ConfigVar] = {}
    options: dict[str, Any] = {}
    request: RequestSpec | None = None
    response: ResponseSpec | None = None
    errors: ErrorSpec = ErrorSpec()
    stream: StreamSpec | None = None
    pricing: dict[str, Price] = {}
    backend: Annotated[str | None, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = None

    @model_validator(mode="after")
    def _http_needs_request(self) -> ProviderSpec:
        if self.backend is None:
            missing = [key for key in ("base_url", "request", "response") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"an HTTP provider needs {', '.join(missing)} (or a Python 'backend')")
            if self.request is not None and self.request.body is None and self.request.method != "GET":
                raise ValueError("request.body is required for a POST request")
        ids = [m.id for m in self.models]
        if self.default_model and ids and self.resolve_alias(self.default_model) not in ids:
            raise ValueError(f"default_model {self.default_model!r} is not one of the listed models")
        return self

    def resolve_alias(self, model: str) -> str:
        """The canonical model id for an alias (or the id itself)."""
        for info in self.models:
            if model == info.id or model in info.aliases:
                return info.id
        return model

    @property
    def key_env(self) -> list[str]:
        """Env variables that may hold the API key, in lookup order."""
        return [env_name(self.name, "API_KEY"), *self.auth.env]


def env_name(provider: str, key: str) -> str:
    """``GENAI_<PROVIDER>_<KEY>`` with the provider name upper-cased and made env-safe."""
    return f"GENAI_{re.sub(r'[^A-Za-z0-9]', '_', provider).upper()}_{key.upper()}"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a provider file (for editors and the YAML language server)."""
    return ProviderSpec.model_json_schema()
