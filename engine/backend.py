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

import asyncio
import importlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compiled import USAGE_FIELDS
from .errors import BackendLoadError, ConfigError, ErrorKind, InvalidRequestError, ProviderError
from .extract import tier_name, unify_usage
from .pricing import PriceTable, Usage
from .provider import AsyncStream, Batch, Item, LLMProvider, batches, closing_events
from .render import check_capabilities, resolve_config, resolve_model
from .spec import ProviderSpec
from .stream import ToolCallAssembler
from .types import (
    CallOptions,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
    ToolCall,
)

log = logging.getLogger("engine")

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
    tool_calls: list[ToolCall] = field(default_factory=list)
    thinking: list[dict[str, Any]] = field(default_factory=list)
    service_tier: str | None = None  # the tier the provider says served the call, when it prices tiers apart


@dataclass(slots=True)
class ToolCallPiece:
    """A tool call, or a piece of one, in a backend's stream: pieces with one ``index`` are one call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None  # a piece of the JSON arguments, appended
    signature: str | None = None


@dataclass(slots=True)
class BackendChunk:
    """One piece of a backend's stream: a text delta and/or metadata (later values win)."""

    delta: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    raw: Any = None
    reasoning: str | None = None
    tool_call: ToolCallPiece | None = None
    thinking: list[dict[str, Any]] | None = None  # reasoning blocks to replay, once complete
    service_tier: str | None = None


@dataclass(slots=True)
class BackendEmbedding:
    """A backend's vectors for one batch of inputs, in order."""

    vectors: list[list[float]]
    model: str | None = None
    input_tokens: int | None = None
    raw: Any = None


class Backend(ABC):
    """Base class of Python backends."""

    def __init__(self, spec: ProviderSpec, settings: Settings, config: dict[str, str]) -> None:
        self.spec, self.settings, self.config = spec, settings, config

    @abstractmethod
    async def complete(self, request: CompletionRequest, model: str) -> BackendResult:
        """One call."""

    async def stream(self, request: CompletionRequest, model: str) -> AsyncIterator[BackendChunk]:
        """A streamed call; by default the whole answer at once (its tool calls and thinking included)."""
        result = await self.complete(request, model)
        yield BackendChunk(result.content, result.model, result.finish_reason, result.usage, result.raw,
                           result.reasoning, thinking=result.thinking or None, service_tier=result.service_tier)
        for index, call in enumerate(result.tool_calls):
            yield BackendChunk(tool_call=ToolCallPiece(index, call.id, call.name, call.arguments, call.signature))

    def embedding_batch(self, model: str) -> int:
        """Most inputs one `embed` call takes for a model (the engine splits longer lists and runs the batches
        concurrently); 0 when the backend offers no embeddings."""
        return 0

    async def embed(self, request: EmbeddingRequest, model: str, inputs: list[str]) -> BackendEmbedding:
        """Vectors for one batch of ``inputs`` (``request`` holds the call's options)."""
        raise NotImplementedError

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


def _usage(value: Usage | None, warnings: list[str]) -> Usage:
    """A backend's counts, checked like those read from a body (a bad one counts as not reported)."""
    if value is None:
        return Usage()
    return unify_usage({name: getattr(value, name) for name in USAGE_FIELDS}, None, warnings)


_CALL_OPTIONS: ContextVar[CallOptions | None] = ContextVar("call_options", default=None)


def call_options() -> CallOptions | None:
    """The per-call options (timeout, max_retries) of the call a backend is running, if the caller gave any."""
    return _CALL_OPTIONS.get()


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
        # Not a ProviderError: the backend (or the SDK under it) failed in a way it did not classify. Report it
        # as a server failure, and log the traceback so that a bug is not mistaken for an outage.
        log.warning("backend of provider %r raised %s", self.name, type(exc).__name__, exc_info=exc)
        return self._failure(f"{type(exc).__name__}: {exc}", ErrorKind.SERVER, model=model, started=started,
                             content=content, values={"finish_reason": finish_reason}, raw=raw)

    def _check_options(self, options: CallOptions | None) -> None:
        if options is not None and (options.api_key or options.base_url or options.headers):
            raise ConfigError(f"provider {self.name!r} runs a Python backend: per call it takes timeout and "
                              "max_retries, not api_key, base_url or headers (set those in its config)")

    async def complete(self, request: CompletionRequest, options: CallOptions | None = None) -> CompletionResponse:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        self._check_options(options)
        if self.compiled.lifecycle and (retired := self._retired(model)) is not None:
            return self._failure(retired, ErrorKind.NOT_FOUND, model=model, started=started)
        try:
            check_capabilities(self.compiled, model, request)
        except InvalidRequestError as exc:
            return self._failure(str(exc), ErrorKind.INVALID_REQUEST, model=model, started=started)
        token = _CALL_OPTIONS.set(options)
        try:
            async with asyncio.timeout(options.timeout if options is not None else None):
                result = await self.backend.complete(request, model)
        except ConfigError:
            raise
        except TimeoutError:
            return self._failure(f"timed out after {options.timeout if options else '?'} s", ErrorKind.TIMEOUT,
                                 model=model, started=started)
        except Exception as exc:
            return self._error(exc, model, started)
        finally:
            _CALL_OPTIONS.reset(token)
        warnings: list[str] = []
        return self._finish(content=result.content, reasoning=result.reasoning, model=result.model,
                            requested=model, usage=_usage(result.usage, warnings), finish_reason=result.finish_reason,
                            started=started, status_code=None, raw=result.raw, warnings=warnings,
                            tool_calls=result.tool_calls, thinking=result.thinking,
                            service_tier=tier_name(result.service_tier))

    def stream_complete(self, request: CompletionRequest, options: CallOptions | None = None) -> AsyncStream:
        self._check_options(options)
        return AsyncStream(lambda result: self._stream(request, options, result))

    async def embed(self, request: EmbeddingRequest, options: CallOptions | None = None) -> EmbeddingResponse:
        started = time.perf_counter()
        self._check_options(options)
        models = [m for m in self.spec.models if m.kind == "embedding"]
        model = self.spec.resolve_alias(request.model) if request.model else (models[0].id if models else "")
        listed = next((m for m in self.spec.models if m.id == model), None)
        size = self.backend.embedding_batch(model) if model else 0
        why = ("it is a chat model, not an embedding model" if listed is not None and listed.kind != "embedding"
               else "its backend offers no embeddings for it" if size < 1 else None)
        if why is not None or not model:
            message = (f"{self.name}/{model or '?'} does not take embeddings ({why or 'no model given'}); "
                       "nothing was sent")
            return self._embedding_failure(message, ErrorKind.INVALID_REQUEST, model=model or None,
                                           started=started, inputs=len(request.inputs))
        gate = asyncio.Semaphore(self.settings.embed_concurrency)
        timeout = options.timeout if options is not None else None

        async def one(start: int, inputs: list[str]) -> Batch:
            batch = Batch(start, len(inputs))
            token = _CALL_OPTIONS.set(options)
            try:
                async with gate, asyncio.timeout(timeout):
                    result = await self.backend.embed(request, model, inputs)
            except ConfigError:
                raise
            except TimeoutError:
                batch.error, batch.kind = f"timed out after {timeout} s", ErrorKind.TIMEOUT
                return batch
            except Exception as exc:
                failed = self._error(exc, model, started)
                batch.error, batch.kind, batch.status_code = failed.error, failed.error_kind, failed.status_code
                return batch
            finally:
                _CALL_OPTIONS.reset(token)
            if len(result.vectors) != len(inputs):
                batch.error = f"invalid embeddings reply: sent {len(inputs)} inputs, got {len(result.vectors)} vectors"
                batch.kind = ErrorKind.INVALID_RESPONSE
                return batch
            batch.vectors, batch.model, batch.raw = result.vectors, result.model, result.raw
            batch.input_tokens = result.input_tokens
            return batch

        outcomes = await asyncio.gather(*(one(start, inputs) for start, inputs in batches(request.inputs, size)))
        return self._embeddings_result(list(outcomes), model, started)

    async def _stream(self, request: CompletionRequest, options: CallOptions | None,
                      result: AsyncStream) -> AsyncGenerator[Any, None]:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        _CALL_OPTIONS.set(options)  # this generator runs in its own context per step: set once, read by the backend
        retired = self._retired(model) if self.compiled.lifecycle else None
        if retired is not None:
            result.response = self._failure(retired, ErrorKind.NOT_FOUND, model=model, started=started)
            for item in result.emit([StreamEvent("end", response=result.response)]):
                yield item
            return
        try:
            check_capabilities(self.compiled, model, request)
        except InvalidRequestError as exc:
            result.response = self._failure(str(exc), ErrorKind.INVALID_REQUEST, model=model, started=started)
            for item in result.emit([StreamEvent("end", response=result.response)]):
                yield item
            return
        parts: list[str] = []
        thoughts: list[str] = []
        raws: list[Any] = []
        thinking: list[dict[str, Any]] = []
        calls = ToolCallAssembler()
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
                last.service_tier = chunk.service_tier or last.service_tier
                thinking += chunk.thinking or []
                events: list[Item] = []
                if chunk.reasoning:
                    thoughts.append(chunk.reasoning)
                    events.append(StreamEvent("reasoning", chunk.reasoning))
                if chunk.delta:
                    parts.append(chunk.delta)
                    events.append(chunk.delta)
                if chunk.tool_call is not None:
                    piece = chunk.tool_call
                    values = {k: v for k, v in (("id", piece.id), ("name", piece.name), ("arguments", piece.arguments),
                                                ("signature", piece.signature)) if v is not None}
                    calls.feed([(piece.index, values)], events)
                for item in result.emit(events):
                    yield item
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
                    warnings: list[str] = []
                    result.response = self._finish(
                        content="".join(parts), reasoning="".join(thoughts) or None, model=last.model,
                        requested=model, usage=_usage(last.usage, warnings), finish_reason=last.finish_reason,
                        started=started, status_code=None, raw=raws, warnings=warnings, tool_calls=calls.calls(),
                        thinking=thinking, service_tier=tier_name(last.service_tier))
                else:
                    result.response = self._failure("stream closed by the caller before its end",
                                                    ErrorKind.CONNECTION, model=model, started=started,
                                                    content="".join(parts), raw=raws)
        for item in result.emit(closing_events(result.response)):
            yield item
