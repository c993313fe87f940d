"""The provider interface, the streamed-call object, and the one generic HTTP provider.

`HTTPProvider` runs any provider file: render -> send -> extract/stream -> cost.
It holds no provider-specific code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from . import lifecycle
from .auth import CachedAuth, load_hook
from .compiled import USAGE_FIELDS, CompiledProvider
from .errors import ErrorKind, InvalidRequestError, ProviderError
from .extract import (
    BadVectors,
    Failure,
    billed,
    body_snippet,
    error_details,
    extract_embeddings,
    extract_response,
    failed_envelope,
    format_error,
    http_error,
    kind_for,
    parse_body,
    scrub,
    short,
    tier_name,
    unified_finish,
    unify_usage,
)
from .jsonpath import reading_headers
from .limits import LimitExceeded
from .pricing import PriceTable, Usage, to_float
from .render import (
    Prepared,
    check_embedding_request,
    prepare,
    render,
    render_embeddings,
    resolve_embedding_model,
    resolve_model,
)
from .send import RetryPolicy, UnsupportedEncoding, describe, new_client, read_body, send, stream_body
from .spec import ProviderSpec
from .stream import StreamState
from .trust import register_secrets
from .types import (
    CallOptions,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    HTTPRequest,
    StreamEvent,
    ToolCall,
)

if TYPE_CHECKING:
    from .settings import Settings


class AsyncStream:
    """A streamed call: ``async for`` it for text deltas; ``response`` is the final result once it ends.

    ``events()`` gives every typed event instead (text, reasoning, a tool call starting, pieces of its
    arguments, usage, end), the same for every provider; text iteration and events read one stream.
    ``await stream.final()`` drains what is left and returns the final response, tool calls assembled.
    A stream that fails or is cut off ends with ``response.success == False`` and the text received so far.
    """

    def __init__(self, run: Callable[[AsyncStream], AsyncGenerator[Any, None]]) -> None:
        self.response: CompletionResponse | None = None
        # One generator serves every reader; `mode` says what it yields next (see `emit`): text deltas
        # (``async for``), typed events (`events`), or whole batches (the sync `Stream`, which crosses a
        # thread once per piece of the body). Switching mid-stream loses nothing.
        self.mode = "text"
        self._items = run(self)

    def emit(self, batch: list[Item]) -> list[Any]:
        """What the generator yields for a batch of items (text deltas as plain str, other events typed)."""
        mode = self.mode
        if mode == "text":
            return [item for item in batch if type(item) is str]
        if mode == "events":
            return [StreamEvent("text", item) if type(item) is str else item for item in batch]
        return [batch]

    def __aiter__(self) -> AsyncIterator[str]:
        self.mode = "text"
        return self._items

    async def __anext__(self) -> str:
        self.mode = "text"
        return await self._items.__anext__()  # type: ignore[no-any-return]

    def events(self) -> AsyncIterator[StreamEvent]:
        """The stream's typed events, ending with one of type ``end`` that holds the final response."""
        self.mode = "events"
        return self._items

    def batches(self) -> AsyncIterator[list[Item]]:
        """Every item, a batch per piece of the body (for the sync `Stream`)."""
        self.mode = "batches"
        return self._items

    async def final(self) -> CompletionResponse:
        """Read the rest of the stream and return the final response."""
        self.mode = "batches"
        async for _ in self._items:
            pass
        assert self.response is not None
        return self.response

    async def aclose(self) -> None:
        """Stop reading; the connection is released."""
        await self._items.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def now() -> datetime.datetime:
    """The current UTC time (one place, so that tests can fix the clock that picks time-dependent prices)."""
    return datetime.datetime.now(datetime.UTC)


Item = StreamEvent | str  # an item of a stream batch: a text delta as a plain str, else a typed event


@dataclasses.dataclass(slots=True)
class Batch:
    """One request of an embeddings call: its inputs' place in the call, and what came back."""

    start: int
    size: int
    vectors: list[list[float]] | None = None
    model: str | None = None
    input_tokens: int | None = None
    raw: Any = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    kind: ErrorKind | None = None
    status_code: int | None = None
    error_message: str | None = None
    error_code: str | None = None
    request_id: str | None = None


def batches(inputs: list[str], size: int) -> list[tuple[int, list[str]]]:
    """The inputs in order, ``size`` at a time, each with its first index."""
    return [(start, inputs[start:start + size]) for start in range(0, len(inputs), size)]


def _whole(response: CompletionResponse) -> list[Item]:
    """The events of a reply that arrived whole (a provider that cannot stream, or a backend's single answer)."""
    events: list[Item] = [response.content] if response.content else []
    for index, call in enumerate(response.tool_calls):
        events.append(StreamEvent("tool_call", index=index, id=call.id, name=call.name))
        events.append(StreamEvent("tool_arguments", text=call.arguments, index=index))
    return [*events, *closing_events(response)]


def closing_events(response: CompletionResponse) -> list[Item]:
    """The events that end a stream: usage (when counted) and end."""
    usage: list[Item] = [StreamEvent("usage", response=response)] if response.input_tokens is not None or \
        response.output_tokens is not None else []
    return [*usage, StreamEvent("end", response=response)]


class LLMProvider(ABC):
    """What every provider offers, HTTP or Python-backed. Use it as an async context manager."""

    spec: ProviderSpec
    prices: PriceTable
    compiled: CompiledProvider
    settings: Settings

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    async def complete(self, request: CompletionRequest, options: CallOptions | None = None) -> CompletionResponse:
        """One call; never raises for provider or network failures. ``options``: per-call engine settings."""

    @abstractmethod
    def stream_complete(self, request: CompletionRequest, options: CallOptions | None = None) -> AsyncStream:
        """A streamed call: an async iterator of text deltas with the final response after."""

    async def embed(self, request: EmbeddingRequest, options: CallOptions | None = None) -> EmbeddingResponse:
        """Vectors for ``request.inputs``, in order; never raises for provider or network failures."""
        started = time.perf_counter()
        return self._embedding_failure(f"provider {self.name!r} has no embeddings (its provider file has no "
                                       "embeddings section); nothing was sent", ErrorKind.INVALID_REQUEST,
                                       model=request.model, started=started, inputs=len(request.inputs))

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def __aenter__(self) -> LLMProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def calculate_cost(self, model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
                       cache_write_tokens: int = 0, *, cache_write_1h_tokens: int = 0,
                       at: datetime.datetime | None = None, service_tier: str | None = None) -> float | None:
        """Cost in USD of the given token counts (``input_tokens`` includes cached ones); ``None`` if unpriced.

        ``at``: when the request started (default: now); ``service_tier``: the tier the reply reports."""
        usage = Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                      cache_write_1h_tokens=cache_write_1h_tokens)
        return to_float(self.prices.quote(self.spec, model).cost(usage, at, service_tier))

    def _cost(self, models: tuple[str | None, ...], usage: Usage, started: float,
              service_tier: str | None) -> float | None:
        """Cost in USD of a call; the first of ``models`` (reported, requested) that has a price is used, at the
        price in effect when the request started."""
        for model in models:
            if model is not None:
                quote = self.prices.quote(self.spec, model)
                if quote.known:
                    at = None
                    if quote.pricing is not None and quote.pricing.reads_time:
                        # The wall-clock time the call started, from its monotonic start.
                        at = now() - datetime.timedelta(seconds=time.perf_counter() - started)
                    return to_float(quote.cost(usage, at, service_tier))
        return None

    def _retired(self, model: str) -> str | None:
        """Why a call to a retired model must not be sent, or ``None`` (see `engine.lifecycle`)."""
        info = self.compiled.lifecycle.get(model)
        if info is None:
            return None
        return lifecycle.notice(self.name, info, self.settings.allow_retired)[1]

    def _lifecycle_warning(self, model: str) -> str | None:
        info = self.compiled.lifecycle.get(model)
        return None if info is None else lifecycle.notice(self.name, info, self.settings.allow_retired)[0]

    def _failure(self, message: str, kind: ErrorKind | None, *, model: str | None, started: float,
                 status_code: int | None = None, raw: Any = None, content: str = "",
                 values: Mapping[str, Any] | None = None, error_message: str | None = None,
                 error_code: str | None = None, request_id: str | None = None) -> CompletionResponse:
        """A ``success=False`` response."""
        native = short(values.get("finish_reason")) if values else None
        return CompletionResponse(
            content=content, model=model, provider=self.name, success=False, error=message, error_kind=kind,
            status_code=status_code, latency_ms=(time.perf_counter() - started) * 1000, raw_response=raw,
            finish_reason=unified_finish(self.compiled, native, False), native_finish_reason=native,
            error_message=error_message, error_code=error_code, request_id=request_id,
        )

    def _embedding_failure(self, message: str, kind: ErrorKind, *, model: str | None, started: float,
                           inputs: int) -> EmbeddingResponse:
        """A ``success=False`` embeddings response for a call that sent nothing."""
        return EmbeddingResponse(vectors=[None] * inputs, failed=list(range(inputs)), model=model,
                                 provider=self.name, success=False, error=message, error_kind=kind,
                                 latency_ms=(time.perf_counter() - started) * 1000)

    def _embeddings_result(self, outcomes: list[Batch], model: str, started: float) -> EmbeddingResponse:
        """One response from the batches of a call: vectors in input order, ``None`` where a batch failed."""
        vectors: list[list[float] | None] = []
        failed: list[int] = []
        failures = [b for b in outcomes if b.error is not None]
        tokens = [b.input_tokens for b in outcomes if b.error is None and b.input_tokens is not None]
        for batch in outcomes:
            if batch.vectors is None:
                vectors += [None] * batch.size
                failed += range(batch.start, batch.start + batch.size)
            else:
                vectors += batch.vectors
        reported = next((b.model for b in outcomes if b.model), None)
        input_tokens = sum(tokens) if tokens else None
        cost = None if input_tokens is None else self._cost((reported, model), Usage(input_tokens, 0), started, None)
        raws = [b.raw for b in outcomes]
        response = EmbeddingResponse(
            vectors=vectors, model=reported or model, provider=self.name, success=not failures,
            input_tokens=input_tokens, cost_usd=cost, latency_ms=(time.perf_counter() - started) * 1000,
            raw_response=raws[0] if len(raws) == 1 else raws, failed=failed, batches=len(outcomes),
            warnings=[w for b in outcomes for w in b.warnings],
            request_id=next((b.request_id for b in outcomes if b.request_id), None),
        )
        if failures:
            first = failures[0]
            if len(outcomes) == 1:
                error = first.error
            else:
                shown = "; ".join(f"inputs {b.start}-{b.start + b.size - 1}: {b.error}" for b in failures[:3])
                more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
                error = f"{len(failures)} of {len(outcomes)} batches failed: {shown}{more}"
            response.error, response.error_kind, response.status_code = error, first.kind, first.status_code
            response.error_message, response.error_code = first.error_message, first.error_code
        return response

    def _finish(self, *, content: str, model: str | None, requested: str, usage: Usage, finish_reason: Any,
                started: float, status_code: int | None, raw: Any, reasoning: str | None = None,
                billed: float | None = None, warnings: list[str] | None = None,
                tool_calls: list[ToolCall] | None = None, thinking: list[dict[str, Any]] | None = None,
                request_id: str | None = None, service_tier: str | None = None) -> CompletionResponse:
        """A successful response, costed: the provider's billed cost if it reports one, else the price table."""
        native = short(finish_reason)
        if self.compiled.lifecycle and (notice := self._lifecycle_warning(requested)) is not None:
            warnings = [notice, *(warnings or [])]
        return CompletionResponse(
            content=content, reasoning=reasoning, model=model or requested, provider=self.name, success=True,
            status_code=status_code, finish_reason=unified_finish(self.compiled, native, bool(tool_calls)),
            native_finish_reason=native, tool_calls=tool_calls or [], thinking=thinking or [], request_id=request_id,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens, cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
            service_tier=service_tier,
            cost_usd=billed if billed is not None else self._cost((model, requested), usage, started, service_tier),
            latency_ms=(time.perf_counter() - started) * 1000, raw_response=raw, warnings=warnings or [],
        )


STREAM_TYPES = {"sse": ("text/event-stream",),
                "ndjson": ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
                           "application/jsonlines", "application/json-seq", "application/stream+json",
                           "application/x-json-stream", "application/json", "text/plain")}


class HTTPProvider(LLMProvider):
    """Runs any HTTP provider file. Pass ``http_client`` to share a pool or use a mock transport."""

    def __init__(self, compiled: CompiledProvider, settings: Settings, prices: PriceTable, *,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.compiled, self.spec, self.settings, self.prices = compiled, compiled.spec, settings, prices
        self.prepared = prepare(compiled, settings)
        self.limits = self.prepared.limits
        self.policy = RetryPolicy(settings.max_retries, settings.retry_initial_delay, settings.retry_max_delay)
        self._client = http_client
        self._owns_client = http_client is None
        self._overridden: dict[tuple[str | None, str | None], Prepared] = {}
        self._auth: CachedAuth | None = None
        if self.spec.auth.type == "hook":
            hook = load_hook(self.spec, compiled.file, settings, self.prepared.config)
            self._auth = CachedAuth(hook, self.name)
        stream = compiled.stream
        rules = [*(stream.events.values() if stream else ()), *([stream.chunk] if stream and stream.chunk else [])]
        self._stream_usage = {name for rule in rules for name, _ in rule.fields if name in USAGE_FIELDS}

    def __repr__(self) -> str:
        return f"HTTPProvider(name={self.name!r}, base_url={self.prepared.base_url!r})"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.settings)
        return self._client

    def render(self, request: CompletionRequest, stream: bool | None = None) -> HTTPRequest:
        """The exact HTTP request this call would send."""
        return render(self.prepared, request, stream)

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._auth is not None:
            await self._auth.hook.close()

    async def _authorize(self, prepared: Prepared, request: HTTPRequest) -> Prepared:
        """Put the auth hook's credentials on the request (replacing the shown placeholder); returns the prepared
        provider with them counted as secrets. Raises `ProviderError` (``auth``) when the hook fails."""
        if self._auth is None:
            return prepared
        credentials = await self._auth.credentials()
        request.headers.pop(self.spec.auth.header, None)
        request.headers.update(credentials.headers)
        if credentials.query:
            from urllib.parse import urlencode

            request.url += ("&" if "?" in request.url else "?") + urlencode(credentials.query)
        request.secret_headers = request.secret_headers | {k.lower() for k in credentials.headers}
        request.secret_params = request.secret_params | set(credentials.query)
        new = tuple(s for s in credentials.secrets if s not in prepared.secrets)
        if not new:
            return prepared
        register_secrets(new)
        return dataclasses.replace(prepared, secrets=prepared.secrets + new)

    # -- per call ------------------------------------------------------------------------------------------
    def _call(self, request: CompletionRequest, options: CallOptions | None,
              stream: bool) -> tuple[Prepared, HTTPRequest, RetryPolicy, float | None]:
        """What one call sends: the prepared provider (with a per-call key or base URL), the request, the retry
        policy and the timeout."""
        prepared, policy, timeout = self.prepared, self.policy, None
        if options is not None:
            if options.api_key is not None or options.base_url is not None:
                prepared = self._prepared_for(options.api_key, options.base_url)
            if options.max_retries is not None:
                policy = RetryPolicy(options.max_retries, policy.initial_delay, policy.max_delay)
            timeout = options.timeout
        http_request = render(prepared, request, stream)
        if options is not None and options.headers:
            http_request.headers.update(options.headers)
        return prepared, http_request, policy, timeout

    def _prepared_for(self, api_key: str | None, base_url: str | None) -> Prepared:
        key = (api_key, base_url)
        if key not in self._overridden:
            update: dict[str, Any] = {}
            if api_key is not None:
                update["api_keys"] = {**self.settings.api_keys, self.name: SecretStr(api_key)}
            if base_url is not None:
                update["base_urls"] = {**self.settings.base_urls, self.name: base_url}
            if len(self._overridden) >= 16:
                self._overridden.pop(next(iter(self._overridden)))
            self._overridden[key] = prepare(self.compiled, self.settings.model_copy(update=update))
        return self._overridden[key]

    def _fail(self, prepared: Prepared, message: str, kind: ErrorKind | None, model: str, started: float,
              **details: Any) -> CompletionResponse:
        return self._failure(scrub(message, prepared.secrets), kind, model=model, started=started, **details)

    def _request_id(self, payload: Any, headers: httpx.Headers) -> str | None:
        """The provider's request id (body or header path in ``errors.request_id``)."""
        if self.compiled.request_id is None:
            return None
        with reading_headers(headers):
            return short(self.compiled.request_id.value(payload))

    def _reported(self, prepared: Prepared, failure: Failure, model: str, started: float, status: int,
                  headers: httpx.Headers) -> CompletionResponse:
        return self._fail(prepared, failure.error, failure.kind, model, started, status_code=status,
                          raw=failure.payload, error_message=failure.message, error_code=failure.code,
                          request_id=self._request_id(failure.payload, headers))

    async def _read_error(self, prepared: Prepared, response: httpx.Response, model: str,
                          started: float) -> CompletionResponse:
        status = response.status_code
        try:
            body = await read_body(response, self.limits.max_response_bytes)
        except (LimitExceeded, UnsupportedEncoding) as exc:
            return self._fail(prepared, f"HTTP {status}: {exc}", kind_for(self.compiled, None, status), model,
                              started, status_code=status)
        except httpx.TransportError as exc:
            return self._fail(prepared, f"HTTP {status}, then the connection failed while reading the error body: "
                                        f"{describe(exc)}", kind_for(self.compiled, None, status), model, started,
                              status_code=status)
        failure = http_error(self.compiled, status, body, prepared.secrets, self.limits)
        if failure.kind is ErrorKind.AUTH and self._auth is not None:
            self._auth.forget()  # a token the API refuses (revoked, expired early): fetch a new one next time
        return self._reported(prepared, failure, model, started, status, response.headers)

    async def complete(self, request: CompletionRequest, options: CallOptions | None = None) -> CompletionResponse:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        if self.compiled.lifecycle and (retired := self._retired(model)) is not None:
            return self._failure(retired, ErrorKind.NOT_FOUND, model=model, started=started)
        try:
            prepared, http_request, policy, timeout = self._call(request, options, stream=False)
        except InvalidRequestError as exc:
            return self._failure(str(exc), ErrorKind.INVALID_REQUEST, model=model, started=started)
        try:
            prepared = await self._authorize(prepared, http_request)
            response = await send(self.client, http_request, policy, timeout=timeout)
        except ProviderError as exc:  # SendError, or an auth hook that failed
            return self._fail(prepared, exc.message, exc.kind, model, started)
        try:
            if response.status_code >= 300:
                return await self._read_error(prepared, response, model, started)
            status = response.status_code
            try:
                body = await read_body(response, self.limits.max_response_bytes)
                payload = parse_body(body, self.limits, prepared.secrets)
            except (LimitExceeded, UnsupportedEncoding) as exc:
                return self._fail(prepared, str(exc), ErrorKind.INVALID_RESPONSE, model, started, status_code=status)
            except httpx.TimeoutException as exc:
                return self._fail(prepared, f"timed out reading the body: {describe(exc)}", ErrorKind.TIMEOUT,
                                  model, started, status_code=status)
            except httpx.TransportError as exc:
                return self._fail(prepared, f"connection lost reading the body: {describe(exc)}",
                                  ErrorKind.CONNECTION, model, started, status_code=status)
            except ValueError:
                return self._fail(prepared, f"response is not valid JSON: {body_snippet(body)!r}",
                                  ErrorKind.INVALID_RESPONSE, model, started, status_code=status,
                                  raw=scrub(body[:10_000].decode("utf-8", "replace"), prepared.secrets))
        finally:
            await response.aclose()
        headers = response.headers
        if self.compiled.reads_headers:
            with reading_headers(headers):
                extracted = extract_response(self.compiled, payload)
        else:
            extracted = extract_response(self.compiled, payload)
        failure = failed_envelope(self.compiled, payload, status) if self.compiled.failed_when else None
        if failure is None and not extracted.content_found and not extracted.tool_calls:
            message, error_type = error_details(self.compiled, payload)
            if message:  # a 2xx with no content and an error message: the call failed
                failure = Failure(format_error(status, message, error_type),
                                  kind_for(self.compiled, error_type, None, message), payload, message, error_type)
            else:
                paths = " or ".join(self.compiled.response["content"].expressions)
                return self._fail(prepared, f"response has no content at {paths}", ErrorKind.INVALID_RESPONSE,
                                  model, started, status_code=status, raw=payload,
                                  request_id=self._request_id(payload, headers))
        if failure is not None:
            return self._reported(prepared, failure, model, started, status, headers)
        return self._finish(content=extracted.content or "", reasoning=extracted.reasoning, model=extracted.model,
                            requested=model, usage=extracted.usage, finish_reason=extracted.finish_reason,
                            started=started, billed=extracted.cost, status_code=status, raw=payload,
                            warnings=extracted.warnings, tool_calls=extracted.tool_calls,
                            thinking=extracted.thinking, request_id=self._request_id(payload, headers),
                            service_tier=extracted.service_tier)

    def stream_complete(self, request: CompletionRequest, options: CallOptions | None = None) -> AsyncStream:
        return AsyncStream(lambda result: self._stream(request, options, result))

    def render_embeddings(self, request: EmbeddingRequest) -> list[HTTPRequest]:
        """The exact HTTP requests an embeddings call would send, one per batch."""
        model = resolve_embedding_model(self.compiled, request.model)
        check_embedding_request(self.compiled, model, request)
        return [render_embeddings(self.prepared, request, inputs, model)
                for _, inputs in batches(request.inputs, self._batch_size(model))]

    def _batch_size(self, model: str) -> int:
        embeddings = self.spec.embeddings
        assert embeddings is not None
        return embeddings.model_max_batch.get(model, embeddings.max_batch)

    async def embed(self, request: EmbeddingRequest, options: CallOptions | None = None) -> EmbeddingResponse:
        started = time.perf_counter()
        if self.spec.embeddings is None:
            return await super().embed(request, options)
        try:
            model = resolve_embedding_model(self.compiled, request.model)
            check_embedding_request(self.compiled, model, request)
        except InvalidRequestError as exc:
            return self._embedding_failure(str(exc), ErrorKind.INVALID_REQUEST, model=request.model,
                                           started=started, inputs=len(request.inputs))
        prepared, policy, timeout = self.prepared, self.policy, None
        if options is not None:
            if options.api_key is not None or options.base_url is not None:
                prepared = self._prepared_for(options.api_key, options.base_url)
            if options.max_retries is not None:
                policy = RetryPolicy(options.max_retries, policy.initial_delay, policy.max_delay)
            timeout = options.timeout
        gate = asyncio.Semaphore(self.settings.embed_concurrency)

        async def one(start: int, inputs: list[str]) -> Batch:
            async with gate:
                return await self._embed_batch(prepared, request, model, start, inputs, policy, timeout, options)

        outcomes = await asyncio.gather(*(one(start, inputs)
                                          for start, inputs in batches(request.inputs, self._batch_size(model))))
        return self._embeddings_result(list(outcomes), model, started)

    async def _embed_batch(self, prepared: Prepared, request: EmbeddingRequest, model: str, start: int,
                           inputs: list[str], policy: RetryPolicy, timeout: float | None,
                           options: CallOptions | None) -> Batch:
        batch = Batch(start, len(inputs))
        try:
            http_request = render_embeddings(prepared, request, inputs, model)
            if options is not None and options.headers:
                http_request.headers.update(options.headers)
            prepared = await self._authorize(prepared, http_request)
            response = await send(self.client, http_request, policy, timeout=timeout)
        except InvalidRequestError as exc:
            batch.error, batch.kind = str(exc), ErrorKind.INVALID_REQUEST
            return batch
        except ProviderError as exc:  # SendError, or an auth hook that failed
            batch.error, batch.kind = scrub(exc.message, prepared.secrets), exc.kind
            return batch
        batch.status_code = status = response.status_code
        try:
            body = await read_body(response, self.limits.max_response_bytes)
        except (LimitExceeded, UnsupportedEncoding) as exc:
            batch.error, batch.kind = str(exc), ErrorKind.INVALID_RESPONSE
            return batch
        except httpx.TransportError as exc:
            batch.error, batch.kind = f"connection lost reading the body: {describe(exc)}", ErrorKind.CONNECTION
            return batch
        finally:
            await response.aclose()
        batch.request_id = self._request_id(None, response.headers)
        if status >= 300:
            failure = http_error(self.compiled, status, body, prepared.secrets, self.limits)
            if failure.kind is ErrorKind.AUTH and self._auth is not None:
                self._auth.forget()
            batch.error, batch.kind, batch.raw = failure.error, failure.kind, failure.payload
            batch.error_message, batch.error_code = failure.message, failure.code
            return batch
        try:
            payload = parse_body(body, self.limits, prepared.secrets)
        except (ValueError, LimitExceeded) as exc:
            batch.error = str(exc) if isinstance(exc, LimitExceeded) else \
                f"response is not valid JSON: {body_snippet(body)!r}"
            batch.kind = ErrorKind.INVALID_RESPONSE
            return batch
        batch.raw = payload
        refused = failed_envelope(self.compiled, payload, status) if self.compiled.failed_when else None
        if refused is not None:
            batch.error, batch.kind = refused.error, refused.kind
            batch.error_message, batch.error_code = refused.message, refused.code
            return batch
        try:
            if self.compiled.reads_headers:
                with reading_headers(response.headers):
                    found = extract_embeddings(self.compiled, payload, len(inputs))
            else:
                found = extract_embeddings(self.compiled, payload, len(inputs))
        except BadVectors as exc:
            message, error_type = error_details(self.compiled, payload)
            if message:  # a 2xx with no vectors but an error message: the call failed
                batch.error = format_error(status, message, error_type)
                batch.kind = kind_for(self.compiled, error_type, None, message)
                batch.error_message, batch.error_code = message, error_type
            else:
                batch.error, batch.kind = f"invalid embeddings reply: {exc}", ErrorKind.INVALID_RESPONSE
            return batch
        batch.vectors, batch.model, batch.input_tokens = found.vectors, found.model, found.input_tokens
        batch.warnings = found.warnings
        return batch

    async def _stream(self, request: CompletionRequest, options: CallOptions | None,
                      result: AsyncStream) -> AsyncGenerator[Any, None]:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        if self.compiled.stream is None:  # the provider cannot stream: one delta with the whole text
            result.response = await self.complete(request, options)
            for item in result.emit(_whole(result.response)):
                yield item
            return
        retired = self._retired(model) if self.compiled.lifecycle else None
        if retired is not None:
            result.response = self._failure(retired, ErrorKind.NOT_FOUND, model=model, started=started)
            for item in result.emit([StreamEvent("end", response=result.response)]):
                yield item
            return
        try:
            prepared, http_request, policy, timeout = self._call(request, options, stream=True)
        except InvalidRequestError as exc:
            result.response = self._failure(str(exc), ErrorKind.INVALID_REQUEST, model=model, started=started)
            for item in result.emit([StreamEvent("end", response=result.response)]):
                yield item
            return
        try:
            prepared = await self._authorize(prepared, http_request)
            response = await send(self.client, http_request, policy, timeout=timeout)
        except ProviderError as exc:  # SendError, or an auth hook that failed
            result.response = self._fail(prepared, exc.message, exc.kind, model, started)
            for item in result.emit([StreamEvent("end", response=result.response)]):
                yield item
            return
        status = response.status_code
        if status >= 300 or not self._is_stream(response):
            try:
                result.response = await self._not_a_stream(prepared, response, model, started)
            finally:
                await response.aclose()
            for item in result.emit([StreamEvent("end", response=result.response)]):
                yield item
            return
        state = StreamState(self.compiled.stream, self.compiled.error_kinds, self.limits, prepared.secrets,
                            response.headers if self.compiled.stream.reads_headers else None)
        closed_early = True
        try:
            try:
                pieces, decoder = stream_body(response, self.limits.max_stream_bytes)
                async for piece in pieces:
                    chunk = decoder.feed(piece)
                    if state.ended or not chunk:
                        continue  # read to the end of the body so the connection goes back to the pool
                    batch = state.feed(chunk)
                    if batch:
                        if result.mode == "text" and len(batch) == 1 and type(batch[0]) is str:
                            yield batch[0]  # the usual piece: one text delta
                        else:
                            for item in result.emit(batch):
                                yield item
                    if state.error is not None:
                        break
                else:
                    tail = decoder.flush()
                    batch = (state.feed(tail) if tail and not state.ended else []) + state.close()
                    for item in result.emit(batch):
                        yield item
            except (LimitExceeded, UnsupportedEncoding) as exc:
                state.fail(str(exc), ErrorKind.INVALID_RESPONSE)
            except httpx.TimeoutException as exc:
                state.fail(f"timed out mid-stream: {describe(exc)}", ErrorKind.TIMEOUT)
            except httpx.TransportError as exc:
                state.fail(f"connection lost mid-stream: {describe(exc)}", ErrorKind.CONNECTION)
            closed_early = False
        finally:
            await response.aclose()
            if closed_early and not state.finished:
                state.fail("stream closed by the caller before its end", ErrorKind.CONNECTION)
            result.response = self._stream_result(prepared, state, model, started, status,
                                                  self._request_id(None, response.headers))
        for item in result.emit(closing_events(result.response)):
            yield item

    def _is_stream(self, response: httpx.Response) -> bool:
        """Whether a 2xx answer to a stream request is a stream of the provider's format (no type: assume so)."""
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        assert self.compiled.stream is not None
        return not content_type or content_type in STREAM_TYPES[self.compiled.stream.format]

    async def _not_a_stream(self, prepared: Prepared, response: httpx.Response, model: str,
                            started: float) -> CompletionResponse:
        """A stream request answered with an error status or a plain body: an error body is read as an error
        whatever its status; anything else is ``invalid_response`` saying what came back."""
        status = response.status_code
        if status >= 300:
            return await self._read_error(prepared, response, model, started)
        failed = await self._read_error(prepared, response, model, started)
        if failed.raw_response is not None and not isinstance(failed.raw_response, str) and \
                error_details(self.compiled, failed.raw_response)[0]:
            return failed  # a JSON error body on a 200
        content_type = response.headers.get("content-type", "(none)")
        assert self.compiled.stream is not None
        expected = STREAM_TYPES[self.compiled.stream.format][0]
        detail = (failed.error or "").removeprefix(f"HTTP {status}: ")
        return self._fail(prepared, f"expected a stream ({expected}) but got {content_type}: {detail}",
                          ErrorKind.INVALID_RESPONSE, model, started, status_code=status, raw=failed.raw_response)

    def _stream_result(self, prepared: Prepared, state: StreamState, model: str, started: float,
                       status: int, request_id: str | None = None) -> CompletionResponse:
        values = state.values
        if state.error is None and not state.ended:
            if state.bytes_seen == 0:
                state.fail("the stream body was empty", ErrorKind.INVALID_RESPONSE)
            elif not state.events:
                state.fail(f"no events in the stream body: {body_snippet(state.head)!r}", ErrorKind.INVALID_RESPONSE)
            else:
                state.fail("stream ended before its end marker (cut off)", ErrorKind.CONNECTION)
        if state.error is not None:
            message = values.get("error_message")
            return self._fail(prepared, state.error, state.error_kind, model, started, status_code=status,
                              raw=state.events, content=state.content, values=values,
                              error_message=scrub(message, prepared.secrets) if isinstance(message, str) else None,
                              error_code=short(values.get("error_type")), request_id=request_id)
        warnings: list[str] = []
        usage = unify_usage({name: values.get(name) for name in self._stream_usage}, self.spec.response, warnings)
        reported = values.get("model")
        return self._finish(content=state.content, reasoning="".join(state.reasoning) or None,
                            model=reported if isinstance(reported, str) else None,
                            requested=model, usage=usage, finish_reason=values.get("finish_reason"),
                            billed=billed(values.get("cost"), warnings), warnings=warnings,
                            started=started, status_code=status, raw=state.events,
                            tool_calls=state.tool_calls(), thinking=state.thinking(), request_id=request_id,
                            service_tier=tier_name(values.get("service_tier")))
