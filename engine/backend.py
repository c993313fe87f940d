"""The Python escape hatch: a provider whose calls are a Python class, not an HTTP template.

A provider file names the class with ``backend: package.module:ClassName``. The
class subclasses `Backend`; the engine gives it everything else: registry,
settings, model aliases, pricing, unified responses, error kinds, latency and
streaming with a final response.

Contract:
- ``__init__(spec, settings, config)``: cheap; import heavy SDKs here or lazily,
  never at module import of ``engine``. Raise `ConfigError` for missing
  credentials or settings.
- ``complete(request, model)`` returns a `BackendResult`; ``stream(request, model)``
  is an async generator of `BackendChunk` (the default calls ``complete`` once).
- Failures: raise `ProviderError(message, kind)`; any other exception is
  reported as a ``server`` error. Never block the event loop: run blocking SDK
  calls in a worker thread (``asyncio.to_thread``).
- Report usage already unified: ``input_tokens`` counts all input tokens,
  cached reads and writes included; ``output_tokens`` includes reasoning.
- Per-model template options: ``self.spec.options_for(model)``.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import BackendLoadError, ConfigError, ErrorKind, ProviderError
from .pricing import PriceTable, Usage
from .provider import AsyncStream, LLMProvider
from .render import resolve_config, resolve_model
from .spec import ProviderSpec
from .types import CompletionRequest, CompletionResponse

if TYPE_CHECKING:
    from .compiled import CompiledProvider
    from .settings import Settings


@dataclass(slots=True)
class BackendResult:
    """A backend's answer to one call."""

    content: str
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    raw: Any = None
    reasoning: str | None = None


@dataclass(slots=True)
class BackendChunk:
    """One piece of a backend's stream: a text delta and/or metadata (later values win)."""

    delta: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    raw: Any = None
    reasoning: str | None = None


class Backend(ABC):
    """Base class of Python backends."""

    def __init__(self, spec: ProviderSpec, settings: Settings, config: dict[str, str]) -> None:
        self.spec, self.settings, self.config = spec, settings, config

    @abstractmethod
    async def complete(self, request: CompletionRequest, model: str) -> BackendResult:
        """One call."""

    async def stream(self, request: CompletionRequest, model: str) -> AsyncIterator[BackendChunk]:
        """A streamed call; by default one chunk holding the whole answer."""
        result = await self.complete(request, model)
        yield BackendChunk(result.content, result.model, result.finish_reason, result.usage, result.raw,
                           result.reasoning)

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""


def load_backend_class(compiled: CompiledProvider) -> type[Backend]:
    """Import the class a provider file names; errors name the file."""
    assert compiled.spec.backend is not None
    module_name, _, class_name = compiled.spec.backend.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendLoadError(f"{compiled.file}: backend: cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Backend):
        raise BackendLoadError(
            f"{compiled.file}: backend: {compiled.spec.backend!r} is not a subclass of engine.Backend"
        )
    return cls


def _usage(value: Usage | None) -> Usage:
    return value if value is not None else Usage()


class BackendProvider(LLMProvider):
    """Runs a Python backend behind the same interface as HTTP providers."""

    def __init__(self, compiled: CompiledProvider, settings: Settings, prices: PriceTable) -> None:
        self.compiled, self.spec, self.settings, self.prices = compiled, compiled.spec, settings, prices
        config = resolve_config(compiled, settings)
        if config.missing:  # a backend reads its config in code: demand it up front
            raise ConfigError(next(iter(config.missing.values())))
        self.backend = load_backend_class(compiled)(compiled.spec, settings, config)

    def __repr__(self) -> str:
        return f"BackendProvider(name={self.name!r}, backend={self.spec.backend!r})"

    async def close(self) -> None:
        await self.backend.close()

    def _error(self, exc: Exception, model: str, started: float, content: str = "",
               finish_reason: str | None = None, raw: Any = None) -> CompletionResponse:
        if isinstance(exc, ProviderError):
            return self._failure(exc.message, exc.kind, model=model, started=started, status_code=exc.status_code,
                                content=content, values={"finish_reason": finish_reason}, raw=raw)
        return self._failure(f"{type(exc).__name__}: {exc}", ErrorKind.SERVER, model=model, started=started,
                            content=content, values={"finish_reason": finish_reason}, raw=raw)

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        try:
            result = await self.backend.complete(request, model)
        except ConfigError:
            raise
        except Exception as exc:
            return self._error(exc, model, started)
        return self._finish(content=result.content, reasoning=result.reasoning, model=result.model,
                           requested=model, usage=_usage(result.usage), finish_reason=result.finish_reason,
                           started=started, status_code=None, raw=result.raw)

    def stream_complete(self, request: CompletionRequest) -> AsyncStream:
        return AsyncStream(lambda result: self._stream(request, result))

    async def _stream(self, request: CompletionRequest, result: AsyncStream) -> AsyncIterator[str]:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        parts: list[str] = []
        thoughts: list[str] = []
        raws: list[Any] = []
        last = BackendChunk()
        chunks = self.backend.stream(request, model)
        completed = False
        try:
            async for chunk in chunks:
                if chunk.raw is not None:
                    raws.append(chunk.raw)
                last.model = chunk.model or last.model
                last.finish_reason = chunk.finish_reason or last.finish_reason
                last.usage = chunk.usage or last.usage
                if chunk.reasoning:
                    thoughts.append(chunk.reasoning)
                if chunk.delta:
                    parts.append(chunk.delta)
                    yield chunk.delta
            completed = True
        except ConfigError:
            raise
        except Exception as exc:
            result.response = self._error(exc, model, started, "".join(parts), last.finish_reason, raws)
            completed = True
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
            if result.response is None:
                if completed:
                    result.response = self._finish(
                        content="".join(parts), reasoning="".join(thoughts) or None, model=last.model,
                        requested=model, usage=_usage(last.usage), finish_reason=last.finish_reason,
                        started=started, status_code=None, raw=raws)
                else:
                    result.response = self._failure("stream closed by the caller before its end",
                                                   ErrorKind.CONNECTION, model=model, started=started,
                                                   content="".join(parts), raw=raws)
