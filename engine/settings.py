"""Engine settings: environment variables prefixed ``GENAI_``, a ``.env`` file, or code.

Per-provider values use the provider's name: ``GENAI_<NAME>_API_KEY``,
``GENAI_<NAME>_BASE_URL`` and ``GENAI_<NAME>_<CONFIG>`` (e.g.
``GENAI_AZURE_OPENAI_RESOURCE``), next to the env variables a provider file
names itself (``GROQ_API_KEY``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .limits import DEFAULT, NAMES, Limits


class Settings(BaseSettings):
    """Where providers and prices come from, and how calls behave."""

    model_config = SettingsConfigDict(env_prefix="GENAI_", env_file=".env", extra="ignore")

    providers_path: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Extra provider folders (os.pathsep-separated in GENAI_PROVIDERS_PATH); later ones win.",
    )
    pricing_file: Path | None = Field(default=None, description="A pricing file that overrides all others.")
    default_model: str | None = Field(default=None, description="'provider/model' used when none is given.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for the provider (read/write/pool).")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    http_transport: Literal["httpcore2", "httpx"] = Field(
        default="httpcore2",
        description="Connection pool: httpcore2 (faster under concurrency) or httpx's own (what respx mocks; "
                    "tests that mock httpx set this).",
    )
    max_retries: int = Field(default=2, ge=0, description="Retries on connection errors, 408, 409, 429, 5xx.")
    embed_concurrency: int = Field(default=4, ge=1, le=64,
                                   description="Most batches of one embeddings call in flight at once.")
    retry_initial_delay: float = Field(default=0.5, ge=0, description="First backoff delay in seconds.")
    retry_max_delay: float = Field(default=8.0, ge=0, description="Longest backoff delay in seconds.")
    api_keys: dict[str, SecretStr] = Field(default_factory=dict, description="API keys by provider name.")
    base_urls: dict[str, str] = Field(default_factory=dict, description="Base URL overrides by provider name.")
    provider_config: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Provider config values by provider name (see a file's 'config')."
    )
    allow_retired: bool = Field(
        default=False, description="Send calls to models whose provider has retired them (warning on the response) "
                                   "instead of failing before sending.",
    )
    allow_link_local: bool = Field(
        default=False, description="Allow calls to link-local and cloud metadata addresses (169.254.0.0/16, "
                                   "fe80::/10, metadata.google.internal); refused by default.",
    )
    # Limits (engine.limits): past one, a call fails with invalid_response naming it.
    max_response_bytes: int = Field(default=DEFAULT.max_response_bytes, gt=0,
                                    description="Most bytes of a non-streamed body, after decompression.")
    max_stream_bytes: int = Field(default=DEFAULT.max_stream_bytes, gt=0,
                                  description="Most bytes of a streamed body, after decompression.")
    max_event_bytes: int = Field(default=DEFAULT.max_event_bytes, gt=0,
                                 description="Most bytes of one SSE event or NDJSON line.")
    max_json_depth: int = Field(default=DEFAULT.max_json_depth, gt=0, description="Deepest JSON nesting read.")
    max_file_bytes: int = Field(default=DEFAULT.max_file_bytes, gt=0,
                                description="Most bytes of a provider or pricing file.")
    max_request_bytes: int = Field(default=DEFAULT.max_request_bytes, gt=0,
                                   description="Most bytes of a rendered request body.")
    template_max_string: int = Field(default=DEFAULT.template_max_string, gt=0,
                                     description="Longest string or sequence a template builds by repetition.")
    template_max_range: int = Field(default=DEFAULT.template_max_range, gt=0,
                                    description="Longest range() in a template.")
    template_max_power: int = Field(default=DEFAULT.template_max_power, gt=0,
                                    description="Most bits of a ** result in a template.")
    template_max_format_width: int = Field(default=DEFAULT.template_max_format_width, gt=0,
                                           description="Widest width or precision in a template's format spec.")

    @field_validator("http_transport", mode="before")
    @classmethod
    def _auto_is_default(cls, value: Any) -> Any:
        return "httpcore2" if value == "auto" else value  # "auto" was the default before it meant nothing else

    @field_validator("providers_path", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p]
        return value

    @property
    def limits(self) -> Limits:
        """The limits these settings set (see `engine.limits`)."""
        return Limits(**{name: getattr(self, name) for name in NAMES})

    def env(self, name: str) -> str | None:
        """An env variable, from the process environment or else the ``.env`` file."""
        from ._env import env

        env_file = self.model_config.get("env_file")
        return env(name, env_file if isinstance(env_file, str | Path) else None)

    def api_key(self, provider: str, env_names: list[str]) -> str | None:
        """The provider's API key from code, else the first of its env variables that is set."""
        key = self.api_keys.get(provider)
        if key is not None:
            return key.get_secret_value()
        for name in env_names:
            if value := self.env(name):
                return value
        return None

    def key_source(self, provider: str, env_names: list[str]) -> str | None:
        """Where the provider's API key comes from: ``"settings"``, an env variable's name, or ``None``."""
        if provider in self.api_keys:
            return "settings"
        return next((name for name in env_names if self.env(name)), None)

