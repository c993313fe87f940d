"""Public helpers that sit on top of the pipeline stages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError
from .types import CompletionRequest, EmbeddingRequest, HTTPRequest

if TYPE_CHECKING:
    from .provider import LLMProvider
    from .settings import Settings


def render_request(provider: str | LLMProvider, request: CompletionRequest,
                   settings: Settings | None = None) -> HTTPRequest:
    """The exact HTTP request (method, URL, headers, body) a call would send, without sending it.

    ``provider`` is a provider name or an HTTP provider instance. ``repr`` and
    ``to_dict()`` of the result hide the API key.
    """
    from .provider import HTTPProvider
    from .registry import default_registry
    from .render import prepare, render

    if isinstance(provider, HTTPProvider):
        return provider.render(request)
    if not isinstance(provider, str):
        raise ConfigError(f"provider {provider.name!r} has a Python backend: it sends no HTTP request to render")
    registry = default_registry(settings)
    compiled = registry.compiled(provider)
    if compiled.spec.backend is not None:
        raise ConfigError(f"provider {provider!r} has a Python backend: it sends no HTTP request to render")
    return render(prepare(compiled, settings or registry.settings), request)


def render_embeddings_request(provider: str | LLMProvider, request: EmbeddingRequest,
                              settings: Settings | None = None) -> list[HTTPRequest]:
    """The exact HTTP requests an embeddings call would send (one per batch), without sending them."""
    from .provider import HTTPProvider
    from .registry import default_registry

    if isinstance(provider, str):
        provider = default_registry(settings).create(provider, settings=settings)
    if not isinstance(provider, HTTPProvider):
        raise ConfigError(f"provider {provider.name!r} has a Python backend: it sends no HTTP request to render")
    return provider.render_embeddings(request)
