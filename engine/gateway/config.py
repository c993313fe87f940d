"""The gateway's configuration file: keys, routes, exposed providers, engine settings and state.

A YAML file, validated strictly; a mistake names the file, key and line (see docs/gateway.md for every key and a
worked example). Secrets never appear in it in clear unless you put them there: a gateway key is given by its
SHA-256 (``sha256``) or by the env variable holding it (``key_env``); a deployment's provider key by
``api_key_env``; the provider keys the engine reads as usual (``OPENAI_API_KEY``, ``GENAI_<NAME>_API_KEY``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ProviderFileError
from ..router import Route

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    """A spending limit in USD per period (UTC calendar periods; ``total`` never resets)."""

    usd: float = Field(gt=0, description="The most a key may spend in one period, in USD.")
    period: Literal["day", "week", "month", "total"] = Field(default="month", description="When spending resets.")
    unpriced: Literal["refuse", "allow"] = Field(
        default="refuse", description="Calls to a model with no known price (its cost cannot be counted): `refuse` "
                                      "them (403), or `allow` them uncounted. Local models cost 0 and are allowed.")


class KeySpec(_Strict):
    """One gateway key: who may call, which models and routes, and how much."""

    name: str = Field(description="The key's name: shown in logs, metrics and the ledger (never the key).")
    sha256: str | None = Field(default=None, description="Hex SHA-256 of the key (`genai keys hash`).")
    key_env: str | None = Field(default=None, description="Env variable holding the key itself; hashed when read.")
    models: list[str] = Field(default=["*"], description="Allowed `provider/model` and route names; `*` globs.")
    budget: Budget | None = Field(default=None, description="Spending limit per period.")
    rpm: int | None = Field(default=None, gt=0, description="Most requests in any 60 seconds.")
    tpm: int | None = Field(default=None, gt=0, description="Most tokens (input + output) in any 60 seconds.")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME.match(name):
            raise ValueError("a key name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return name

    @field_validator("sha256", mode="before")
    @classmethod
    def _hash(cls, value: Any) -> str | None:
        if value is not None:
            if not isinstance(value, str):
                raise ValueError("sha256 is a string of 64 hex digits: quote it in YAML")
            value = value.lower().removeprefix("sha256:")
            if not SHA256.match(value):
                raise ValueError("sha256 is the 64 hex digits of the key's SHA-256 (genai keys hash)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> KeySpec:
        if (self.sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of sha256 (the key's hash) and key_env (the env variable holding it)")
        return self


class StateSpec(_Strict):
    """Where the gateway keeps its state."""

    sqlite: Path = Field(default=Path("genai-gateway.db"),
                         description="The ledger and request log (SQLite, one file per replica); without Redis also "
                                     "budgets, rate limits and cooldowns, shared by the replica's workers.")
    redis_url: str | None = Field(default=None, description="Redis shared by every replica for budgets, rate limits "
                                                            "and cooldowns; `GENAI_REDIS_URL` sets or overrides it.")
    log_messages: bool = Field(default=False, description="Keep each request's messages and reply text in the "
                                                          "request log.")
    durable: bool = Field(default=False, description="fsync every ledger commit (synchronous=FULL): survives power "
                                                     "loss, not only a killed process, at a cost per request.")


class ServerSpec(_Strict):
    """HTTP limits."""

    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0, description="Largest request body accepted.")
    graceful_seconds: float = Field(default=60.0, gt=0, description="On shutdown, how long open streams may "
                                                                    "take to finish.")
    keep_alive_seconds: float = Field(
        default=75.0, gt=0, description="How long an idle client connection is kept open. Longer than the clients' "
                                        "own (the openai and anthropic SDKs keep theirs 5 s), so a client never "
                                        "sends on a connection the gateway is closing.")


class GatewayConfig(_Strict):
    """The whole file."""

    keys: list[KeySpec] = Field(min_length=1, description="The gateway keys.")
    routes: dict[str, Route] = Field(default_factory=dict, description="Named model groups (see engine.router).")
    providers: list[str] | None = Field(default=None, description="Providers callable as `provider/model` (default: "
                                                                  "every provider whose key or base URL is set).")
    settings: dict[str, Any] = Field(default_factory=dict, description="Engine settings (`Settings` fields: timeout, "
                                                                       "max_retries, providers_path, ...).")
    state: StateSpec = Field(default_factory=StateSpec, description="Where state is kept.")
    server: ServerSpec = Field(default_factory=ServerSpec, description="HTTP limits.")
    path: Path | None = Field(default=None, exclude=True, description="The file this was read from.")

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        names = [key.name for key in self.keys]
        if len(set(names)) != len(names):
            raise ValueError(f"key names must be unique: {sorted({n for n in names if names.count(n) > 1})}")
        for name in self.routes:
            if not NAME.match(name):
                raise ValueError(f"route name {name!r}: 1-64 letters, digits, '_', '.' or '-' (no '/')")
            self.routes[name] = self.routes[name].model_copy(update={"name": name})
        return self

    @property
    def redis_url(self) -> str | None:
        return os.environ.get("GENAI_REDIS_URL") or self.state.redis_url

    def sqlite_path(self) -> Path:
        """The ledger file; a relative path is relative to the config file's folder."""
        path = self.state.sqlite.expanduser()
        if not path.is_absolute() and self.path is not None:
            path = self.path.parent / path
        return path


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway file; a mistake raises `ProviderFileError` with file, key and line."""
    from ..loader import ProviderSource, line_of, read_yaml

    path = Path(path)
    if not path.is_file():
        raise ProviderFileError("no such file (give the gateway's config with --config or GENAI_GATEWAY_CONFIG)",
                                file=str(path))
    data, text = read_yaml(path)
    if not isinstance(data, dict):
        raise ProviderFileError("a gateway file is a mapping with at least 'keys'", file=str(path), line=1)
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = [p for p in error["loc"] if isinstance(p, str | int)]
        source = ProviderSource("<gateway>", path, data, text)
        raise ProviderFileError(error["msg"], file=str(path), key=".".join(map(str, where)) or None,
                                line=line_of(source, where)) from None
    config.path = path
    return config
