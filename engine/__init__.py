"""A declarative LLM provider engine: each provider is a YAML file, one generic engine runs them all.

The public API is re-exported here and imported lazily, so ``import engine``
and listing providers stay cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Engine": "client", "SyncStream": "client",
    "CompletionRequest": "types", "CompletionResponse": "types", "HTTPRequest": "types",
    "LLMProvider": "provider", "HTTPProvider": "provider", "StreamResponse": "provider",
    "Backend": "backend", "BackendResult": "backend", "BackendChunk": "backend",
    "Registry": "registry", "get_provider": "registry", "list_providers": "registry",
    "render_request": "api",
    "Settings": "settings",
    "Usage": "pricing", "PriceTable": "pricing",
    "ErrorKind": "errors", "EngineError": "errors", "ConfigError": "errors", "ProviderFileError": "errors",
    "UnknownProviderError": "errors", "MissingAPIKeyError": "errors", "TemplateRenderError": "errors",
    "BackendLoadError": "errors", "ProviderError": "errors",
}

__all__ = [
    "Backend",
    "BackendChunk",
    "BackendLoadError",
    "BackendResult",
    "CompletionRequest",
    "CompletionResponse",
    "ConfigError",
    "Engine",
    "EngineError",
    "ErrorKind",
    "HTTPProvider",
    "HTTPRequest",
    "LLMProvider",
    "MissingAPIKeyError",
    "PriceTable",
    "ProviderError",
    "ProviderFileError",
    "Registry",
    "Settings",
    "StreamResponse",
    "SyncStream",
    "TemplateRenderError",
    "UnknownProviderError",
    "Usage",
    "get_provider",
    "list_providers",
    "render_request",
]

if TYPE_CHECKING:
    from .api import render_request
    from .backend import Backend, BackendChunk, BackendResult
    from .client import Engine, SyncStream
    from .errors import (
        BackendLoadError,
        ConfigError,
        EngineError,
        ErrorKind,
        MissingAPIKeyError,
        ProviderError,
        ProviderFileError,
        TemplateRenderError,
        UnknownProviderError,
    )
    from .pricing import PriceTable, Usage
    from .provider import HTTPProvider, LLMProvider, StreamResponse
    from .registry import Registry, get_provider, list_providers
    from .settings import Settings
    from .types import CompletionRequest, CompletionResponse, HTTPRequest


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
