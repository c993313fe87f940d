"""Every exception the engine raises, in one hierarchy.

Configuration mistakes (a broken provider file, a missing API key) raise early.
Provider and network failures at call time never raise: they become a
`CompletionResponse` with ``success=False`` and an `ErrorKind`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a call failed, whatever the provider."""

    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    INVALID_RESPONSE = "invalid_response"


class EngineError(Exception):
    """Base class of every error raised by the engine."""


class ConfigError(EngineError):
    """The configuration (provider files, pricing files, settings) is wrong."""


class ProviderFileError(ConfigError):
    """A provider or pricing file is malformed; names the file, key path and line."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.file, self.key, self.line, self.message = file, key, line, message
        where = file or "<provider>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class UnknownProviderError(ConfigError):
    """No provider file defines the requested provider name."""


class MissingAPIKeyError(ConfigError):
    """The provider needs an API key and none of its env variables is set."""


class TemplateRenderError(ConfigError):
    """A provider's template failed to render or rendered invalid JSON."""


class BackendLoadError(ConfigError):
    """A Python backend named by ``backend: module:Class`` cannot be imported."""


class ProviderError(EngineError):
    """A provider call failed; raised only by APIs that cannot return a response object.

    `complete` returns ``success=False`` instead; Python backends raise this to
    report a failure with its kind, and the engine turns it into a response.
    """

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.SERVER, *,
                 status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.kind = message, ErrorKind(kind)
        self.status_code, self.retry_after = status_code, retry_after
