"""Every exception the engine raises, in one hierarchy, and the kinds a failed call can have.

Configuration mistakes (a broken provider file, a missing API key) raise early,
with the file, key and line as fields. Provider and network failures at call
time never raise: they become a `CompletionResponse` with ``success=False`` and
an `ErrorKind`.

    EngineError
    ├── ConfigError                 the configuration is wrong; raised before anything is sent
    │   ├── ProviderFileError       a provider or pricing file is malformed (file, key, line)
    │   │   └── TemplateRenderError a template failed to render (file, key, line)
    │   ├── UnknownProviderError    no provider file defines the name
    │   ├── MissingAPIKeyError      the provider needs a key and none is set
    │   ├── BackendLoadError        a Python backend cannot be imported
    │   ├── UnknownOptionError      a call was given a keyword option the engine does not know
    │   └── JSONPathError           a JSONPath expression does not parse
    ├── InvalidRequestError         a request the provider or model cannot take, or malformed messages
    │   ├── UnsupportedInput        the model lacks what the request holds (images, tools, an option)
    │   └── InvalidMessages         a tool result without its call, a bad data URL, ...
    ├── ProviderError               a call failed, with its kind (raised by backends, turned into a response)
    │   └── SendError               the request got no usable HTTP response
    ├── RawOutputError              a body template printed a value without ``| tojson``
    └── DocsError                   an example in the generated reference is wrong
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


# The kind an HTTP status means when the body says nothing more precise; shared by every provider.
STATUS_KINDS: dict[int, ErrorKind] = {
    400: ErrorKind.INVALID_REQUEST, 401: ErrorKind.AUTH, 402: ErrorKind.AUTH, 403: ErrorKind.AUTH,
    404: ErrorKind.NOT_FOUND, 408: ErrorKind.TIMEOUT, 409: ErrorKind.SERVER, 413: ErrorKind.INVALID_REQUEST,
    422: ErrorKind.INVALID_REQUEST, 429: ErrorKind.RATE_LIMIT,
}


def kind_for_status(status: int) -> ErrorKind:
    """The error kind of an HTTP status: `STATUS_KINDS`, else ``server`` for 5xx and ``invalid_request``."""
    if status in STATUS_KINDS:
        return STATUS_KINDS[status]
    return ErrorKind.SERVER if status >= 500 else ErrorKind.INVALID_REQUEST


class EngineError(Exception):
    """Base class of every error raised by the engine."""


class ConfigError(EngineError):
    """The configuration (provider files, pricing files, settings) is wrong."""


class ProviderFileError(ConfigError):
    """A provider or pricing file is malformed; ``file``, ``key`` (dotted path) and ``line`` say where."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.file, self.key, self.line, self.message = file, key, line, message
        super().__init__(self.location() + f": {message}")

    def location(self) -> str:
        """``file:line: key`` as far as known."""
        where = (self.file or "<provider>") + (f":{self.line}" if self.line is not None else "")
        return f"{where}: {self.key}" if self.key else where


class TemplateRenderError(ProviderFileError):
    """A provider's template failed to render, or rendered invalid JSON; ``key`` names the template."""


class UnknownProviderError(ConfigError):
    """No provider file defines the requested provider name."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class MissingAPIKeyError(ConfigError):
    """The provider needs an API key and none of its env variables (``env``) is set."""

    def __init__(self, message: str, *, provider: str | None = None, env: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.provider, self.env = provider, env


class BackendLoadError(ConfigError):
    """A Python backend named by ``backend: module:Class`` cannot be imported."""


class UnknownOptionError(ConfigError, TypeError):
    """A call was given a keyword option the engine does not know; the message names the accepted ones."""


class JSONPathError(ConfigError, ValueError):
    """A JSONPath expression does not parse."""


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


class InvalidRequestError(EngineError, ValueError):
    """A request the provider or model cannot take (a part, tool or option it lacks), or malformed messages.

    ``render_request`` raises it; ``complete`` and ``stream`` return it as ``invalid_request``, before sending.
    """


class UnsupportedInput(InvalidRequestError):
    """The provider or model lacks what the request holds; ``what`` names it (``images by URL``, ``tools``)."""

    def __init__(self, what: str, detail: str = "") -> None:
        self.what = what
        super().__init__(f"{what}{': ' + detail if detail else ''}")


class InvalidMessages(InvalidRequestError):
    """The unified messages are malformed: a tool result without its call, a bad data URL, ..."""


class SendError(ProviderError):
    """The request got no usable HTTP response (after retries): a timeout or a connection failure."""


class RawOutputError(EngineError, ValueError):
    """A body template printed a value without ``| tojson``."""


class DocsError(EngineError, ValueError):
    """An example in the provider-format reference does not validate, or a doc section is missing."""
