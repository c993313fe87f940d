"""Gateway keys: kept as SHA-256 digests, looked up by the digest of what a client presents.

The gateway never holds a key in clear after reading it, never logs one, and names a key by its ``name`` in logs,
metrics and the ledger.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ..errors import ConfigError
from .config import Budget, KeySpec

PREFIX = "sk-genai-"


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key: what the config file and the gateway keep."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random gateway key (256 bits)."""
    return PREFIX + secrets.token_urlsafe(32)


@dataclass(eq=False)
class GatewayKey:
    """A key as the gateway holds it: its name, what it may call, and its limits."""

    name: str
    digest: str = field(repr=False)
    models: tuple[str, ...] = ("*",)
    budget: Budget | None = None
    rpm: int | None = None
    tpm: int | None = None
    _allowed: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def limited(self) -> bool:
        """Whether calls with this key go through admission (a budget or a rate limit)."""
        return self.budget is not None or self.rpm is not None or self.tpm is not None

    def allows(self, model: str) -> bool:
        """Whether this key may call ``model`` (a ``provider/model`` or a route name)."""
        allowed = self._allowed.get(model)
        if allowed is None:
            allowed = any(fnmatchcase(model, pattern) for pattern in self.models)
            if len(self._allowed) < 4096:
                self._allowed[model] = allowed
        return allowed


class Keyring:
    """The configured keys by digest."""

    def __init__(self, specs: Iterable[KeySpec], env: Callable[[str], str | None]) -> None:
        self.by_digest: dict[str, GatewayKey] = {}
        for spec in specs:
            if spec.key_env is not None:
                plain = env(spec.key_env)
                if not plain:
                    raise ConfigError(f"gateway key {spec.name!r}: env variable {spec.key_env} is not set")
                digest = hash_key(plain)
                del plain
            else:
                assert spec.sha256 is not None
                digest = spec.sha256
            if digest in self.by_digest:
                raise ConfigError(f"gateway keys {self.by_digest[digest].name!r} and {spec.name!r} are the same key")
            self.by_digest[digest] = GatewayKey(spec.name, digest, tuple(spec.models), spec.budget, spec.rpm, spec.tpm)

    def find(self, presented: str | None) -> GatewayKey | None:
        """The key a client presented, or ``None``."""
        if not presented:
            return None
        return self.by_digest.get(hash_key(presented))

    def __iter__(self) -> Iterator[GatewayKey]:
        return iter(self.by_digest.values())
