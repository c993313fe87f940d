"""Auth hooks: request credentials from Python code, for APIs without a static key (OAuth2 access tokens).

A provider file names a hook with ``auth: {type: hook, hook: module:Class}``. The class subclasses
`AuthHook`; it is imported and built when the provider is first used, never by discovery or
``genai check``, so its dependencies stay optional. Its `fetch` (sync or async) returns `Credentials`:
headers and/or query values, and when they expire. The engine caches them until shortly before they
expire, lets one task fetch while concurrent first calls wait for that one fetch, and turns a failure
into a call that fails with ``auth``, never an exception.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import BackendLoadError, ConfigError, ErrorKind, ProviderError

if TYPE_CHECKING:
    from .settings import Settings
    from .spec import ProviderSpec

REFRESH_MARGIN = 60.0  # seconds before expiry at which credentials are fetched again


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a hook gives: headers and query values for each request, until ``expires_at`` (epoch seconds;
    ``None``: they do not expire)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    expires_at: float | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (*self.headers.values(), *self.query.values()) if len(v) >= 4)


class AuthHook(ABC):
    """Base class of auth hooks. ``__init__(spec, settings, config)`` must be cheap and must not call the network;
    raise `ConfigError` for missing settings and `BackendLoadError` for a missing optional dependency."""

    def __init__(self, spec: ProviderSpec, settings: Settings, config: Mapping[str, str]) -> None:
        if self.needs_library(config):
            self.check_available()
        self.spec, self.settings, self.config = spec, settings, config

    @classmethod
    def check_available(cls) -> None:
        """Raise `BackendLoadError` with an install hint when an optional library the hook needs is missing."""
        return None

    @classmethod
    def needs_library(cls, config: Mapping[str, str]) -> bool:
        """Whether this configuration uses the optional library (`check_available` is called only then)."""
        return True

    @abstractmethod
    def fetch(self) -> Credentials | Awaitable[Credentials]:
        """New credentials. A blocking implementation runs in a worker thread. Raise to fail the calls."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""


def load_hook(spec: ProviderSpec, file: str, settings: Settings, config: Mapping[str, str]) -> AuthHook:
    """Import and build the hook a provider file names; errors name the file."""
    assert spec.auth.hook is not None
    module_name, _, class_name = spec.auth.hook.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendLoadError(f"{file}: auth.hook: cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, AuthHook):
        raise BackendLoadError(f"{file}: auth.hook: {spec.auth.hook!r} is not a subclass of engine.auth.AuthHook")
    return cls(spec, settings, config)


class CachedAuth:
    """A hook's credentials, cached until shortly before they expire; one fetch at a time."""

    def __init__(self, hook: AuthHook, name: str) -> None:
        self.hook, self.name = hook, name
        self._credentials: Credentials | None = None
        self._lock: asyncio.Lock | None = None
        self.fetches = 0

    def _fresh(self) -> Credentials | None:
        credentials = self._credentials
        if credentials is None:
            return None
        if credentials.expires_at is not None and credentials.expires_at - REFRESH_MARGIN <= time.time():
            return None
        return credentials

    async def credentials(self) -> Credentials:
        """Valid credentials, fetched when none are cached or they are about to expire. Raises `ProviderError`
        (kind ``auth``) when the hook fails, and `ConfigError` for missing setup."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            fresh = self._fresh()  # another task may have fetched while this one waited
            if fresh is not None:
                return fresh
            self.fetches += 1
            try:
                if inspect.iscoroutinefunction(self.hook.fetch):
                    result: Any = await self.hook.fetch()
                else:
                    result = await asyncio.to_thread(self.hook.fetch)
                    if inspect.isawaitable(result):
                        result = await result
            except (ConfigError, ProviderError):
                raise
            except Exception as exc:
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise ProviderError(f"auth hook of provider {self.name!r} failed: {detail}", ErrorKind.AUTH) from exc
            if not isinstance(result, Credentials):
                raise ProviderError(f"auth hook of provider {self.name!r} returned {type(result).__name__}, "
                                    "not Credentials", ErrorKind.AUTH)
            self._credentials = result
            return result

    def forget(self) -> None:
        """Drop the cached credentials (the API refused them): the next call fetches new ones."""
        self._credentials = None
