"""A declarative LLM provider engine: each provider is a YAML file, one generic engine runs them all.

The way in is `Engine` (``engine.complete("provider/model", ...)``, ``engine.stream(...)``, and the
``a``-prefixed async twins). The lower level is `get_provider`, which returns an `LLMProvider` that
takes a `CompletionRequest`. Everything here is imported lazily, so ``import engine`` and listing
providers stay cheap.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module. `__all__` and the TYPE_CHECKING imports below list the same names
# (tests/test_public_api.py keeps the three in step).
_EXPORTS = {
    # the way in
    "Engine": "client", "Stream": "client", "AsyncStream": "provider",
    "CompletionRequest": "types", "CompletionResponse": "types", "ToolCall": "types", "StreamEvent": "types",
    "EmbeddingRequest": "types", "EmbeddingResponse": "types",
    "Usage": "pricing", "Settings": "settings",
    # the lower level
    "get_provider": "registry", "list_providers": "registry", "render_request": "api",
    "LLMProvider": "provider", "HTTPRequest": "types",
    # the Python escape hatch
    "Backend": "backend", "BackendResult": "backend", "BackendChunk": "backend",
    # errors
    "ErrorKind": "errors", "EngineError": "errors", "ConfigError": "errors", "ProviderFileError": "errors",
    "TemplateRenderError": "errors", "UnknownProviderError": "errors", "MissingAPIKeyError": "errors",
    "BackendLoadError": "errors", "ProviderError": "errors", "UnknownOptionError": "errors",
}

# Names that moved; still importable from here, with a DeprecationWarning.
_MOVED = {
    "StreamResponse": ("provider", "AsyncStream", "engine.AsyncStream"),
    "SyncStream": ("client", "Stream", "engine.Stream"),
    "HTTPProvider": ("provider", "HTTPProvider", "engine.provider.HTTPProvider"),
    "Registry": ("registry", "Registry", "engine.registry.Registry"),
    "PriceTable": ("pricing", "PriceTable", "engine.pricing.PriceTable"),
}

__all__ = [
    "AsyncStream",
    "Backend",
    "BackendChunk",
    "BackendLoadError",
    "BackendResult",
    "CompletionRequest",
    "CompletionResponse",
    "ConfigError",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "Engine",
    "EngineError",
    "ErrorKind",
    "HTTPRequest",
    "LLMProvider",
    "MissingAPIKeyError",
    "ProviderError",
    "ProviderFileError",
    "Settings",
    "Stream",
    "StreamEvent",
    "TemplateRenderError",
    "ToolCall",
    "UnknownOptionError",
    "UnknownProviderError",
    "Usage",
    "get_provider",
    "list_providers",
    "render_request",
]

if TYPE_CHECKING:
    from .api import render_request
    from .backend import Backend, BackendChunk, BackendResult
    from .client import Engine, Stream
    from .errors import (
        BackendLoadError,
        ConfigError,
        EngineError,
        ErrorKind,
        MissingAPIKeyError,
        ProviderError,
        ProviderFileError,
        TemplateRenderError,
        UnknownOptionError,
        UnknownProviderError,
    )
    from .pricing import Usage
    from .provider import AsyncStream, LLMProvider
    from .registry import get_provider, list_providers
    from .settings import Settings
    from .types import (
        CompletionRequest,
        CompletionResponse,
        EmbeddingRequest,
        EmbeddingResponse,
        HTTPRequest,
        StreamEvent,
        ToolCall,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    if name in _MOVED:
        module, attribute, new = _MOVED[name]
        warnings.warn(f"engine.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
