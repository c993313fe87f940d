"""The provider interface, the streamed-call object, and the one generic HTTP provider.

`HTTPProvider` runs any provider file: render -> send -> extract/stream -> cost.
It holds no provider-specific code.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from .compiled import USAGE_FIELDS, CompiledProvider
from .errors import ErrorKind
from .extract import error_details, extract_response, http_error, kind_for, number, scrub, unify_usage
from .pricing import PriceTable, Usage, to_float
from .render import prepare, render, resolve_model
from .send import RetryPolicy, SendError, describe, new_client, send
from .spec import ProviderSpec
from .stream import StreamState
from .types import CompletionRequest, CompletionResponse, HTTPRequest

if TYPE_CHECKING:
    from .settings import Settings


class AsyncStream:
    """A streamed call: ``async for`` it for text deltas; ``response`` is the final result once it ends.

    ``await stream.final()`` drains what is left and returns that result. A stream
    that fails or is cut off ends with ``response.success == False`` and the text
    received so far.
    """

    def __init__(self, run: Callable[[AsyncStream], AsyncIterator[str]]) -> None:
        self.response: CompletionResponse | None = None
        self._deltas = run(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas

    async def __anext__(self) -> str:
        return await self._deltas.__anext__()

    async def final(self) -> CompletionResponse:
        """Read the rest of the stream and return the final response."""
        async for _ in self._deltas:
            pass
        assert self.response is not None
        return self.response

    async def aclose(self) -> None:
        """Stop reading; the connection is released."""
        await self._deltas.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class LLMProvider(ABC):
    """What every provider offers, HTTP or Python-backed. Use it as an async context manager."""

    spec: ProviderSpec
    prices: PriceTable

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One call; never raises for provider or network failures."""

    @abstractmethod
    def stream_complete(self, request: CompletionRequest) -> AsyncStream:
        """A streamed call: an async iterator of text deltas with the final response after."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def __aenter__(self) -> LLMProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def calculate_cost(self, model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
                       cache_write_tokens: int = 0) -> float | None:
        """Cost in USD of the given token counts (``input_tokens`` includes cached ones); ``None`` if unpriced."""
        usage = Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)
        return to_float(self.prices.quote(self.spec, model).cost(usage))

    def _cost(self, models: tuple[str | None, ...], usage: Usage) -> float | None:
        """Cost in USD of a call; the first of ``models`` (reported, requested) that has a price is used."""
        for model in models:
            if model is not None:
                quote = self.prices.quote(self.spec, model)
                if quote.known:
                    return to_float(quote.cost(usage))
        return None

    def _failure(self, message: str, kind: ErrorKind | None, *, model: str | None, started: float,
                 status_code: int | None = None, raw: Any = None, content: str = "",
                 values: Mapping[str, Any] | None = None) -> CompletionResponse:
        """A ``success=False`` response."""
        return CompletionResponse(
            content=content, model=model, provider=self.name, success=False, error=message, error_kind=kind,
            status_code=status_code, latency_ms=(time.perf_counter() - started) * 1000, raw_response=raw,
            finish_reason=_str(values.get("finish_reason")) if values else None,
        )

    def _finish(self, *, content: str, model: str | None, requested: str, usage: Usage, finish_reason: Any,
                started: float, status_code: int | None, raw: Any, reasoning: str | None = None,
                billed: float | None = None) -> CompletionResponse:
        """A successful response, costed: the provider's billed cost if it reports one, else the price table."""
        return CompletionResponse(
            content=content, reasoning=reasoning, model=model or requested, provider=self.name, success=True,
            status_code=status_code, finish_reason=_str(finish_reason),
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens, cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=billed if billed is not None else self._cost((model, requested), usage),
            latency_ms=(time.perf_counter() - started) * 1000, raw_response=raw,
        )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


class HTTPProvider(LLMProvider):
    """Runs any HTTP provider file. Pass ``http_client`` to share a pool or use a mock transport."""

    def __init__(self, compiled: CompiledProvider, settings: Settings, prices: PriceTable, *,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.compiled, self.spec, self.settings, self.prices = compiled, compiled.spec, settings, prices
        self.prepared = prepare(compiled, settings)
        self.policy = RetryPolicy(settings.max_retries, settings.retry_initial_delay, settings.retry_max_delay)
        self._client = http_client
        self._owns_client = http_client is None
        stream = compiled.stream
        rules = [*(stream.events.values() if stream else ()), *([stream.chunk] if stream and stream.chunk else [])]
        self._stream_usage = {name for rule in rules for name, _ in rule.fields if name in USAGE_FIELDS}

    def __repr__(self) -> str:
        return f"HTTPProvider(name={self.name!r}, base_url={self.prepared.base_url!r})"

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.settings.timeout, self.settings.connect_timeout,
                                      self.settings.http_transport)
        return self._client

    def render(self, request: CompletionRequest, stream: bool | None = None) -> HTTPRequest:
        """The exact HTTP request this call would send."""
        return render(self.prepared, request, stream)

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _error_response(self, response: httpx.Response, model: str, started: float,
                              content: str = "") -> CompletionResponse:
        body = await response.aread()
        message, kind, payload = http_error(self.compiled, response.status_code, body, self.prepared.api_key)
        return self._failure(message, kind, model=model, started=started, status_code=response.status_code,
                            raw=self._scrub_raw(payload, body), content=content)

    def _scrub_raw(self, payload: Any, body: bytes) -> Any:
        key = self.prepared.api_key
        if key and len(key) >= 4 and key.encode() in body and not isinstance(payload, str):
            return json.loads(scrub(body.decode("utf-8", "replace"), key))
        return payload

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        http_request = render(self.prepared, request, stream=False)
        try:
            response = await send(self.client, http_request, self.policy)
        except SendError as exc:
            return self._failure(scrub(exc.message, self.prepared.api_key), exc.kind, model=model, started=started)
        if response.status_code >= 300:
            return await self._error_response(response, model, started)
        body = response.content
        try:
            payload = json.loads(body)
        except ValueError:
            return self._failure(f"response is not valid JSON: {body[:200].decode('utf-8', 'replace')!r}",
                                ErrorKind.INVALID_RESPONSE, model=model, started=started,
                                status_code=response.status_code, raw=body.decode("utf-8", "replace"))
        extracted = extract_response(self.compiled, payload)
        if not extracted.content_found:
            message, error_type = error_details(self.compiled, payload)
            if message:  # some servers answer 200 with an error body
                return self._failure(f"HTTP {response.status_code}: {message}",
                                    kind_for(self.compiled, error_type, None), model=model, started=started,
                                    status_code=response.status_code, raw=payload)
            paths = " or ".join(self.compiled.response["content"].expressions)
            return self._failure(f"response has no content at {paths}", ErrorKind.INVALID_RESPONSE, model=model,
                                started=started, status_code=response.status_code, raw=payload)
        return self._finish(content=extracted.content or "", reasoning=extracted.reasoning, model=extracted.model,
                           requested=model,
                           usage=extracted.usage, finish_reason=extracted.finish_reason, started=started,
                           billed=extracted.cost,
                           status_code=response.status_code, raw=payload)

    def stream_complete(self, request: CompletionRequest) -> AsyncStream:
        return AsyncStream(lambda result: self._stream(request, result))

    async def _stream(self, request: CompletionRequest, result: AsyncStream) -> AsyncIterator[str]:
        started = time.perf_counter()
        model = resolve_model(self.compiled, request.model)
        if self.compiled.stream is None:  # the provider cannot stream: one delta with the whole text
            result.response = await self.complete(request)
            if result.response.content:
                yield result.response.content
            return
        http_request = render(self.prepared, request, stream=True)
        try:
            response = await send(self.client, http_request, self.policy, stream=True)
        except SendError as exc:
            result.response = self._failure(scrub(exc.message, self.prepared.api_key), exc.kind, model=model,
                                           started=started)
            return
        if response.status_code >= 300:
            try:
                result.response = await self._error_response(response, model, started)
            finally:
                await response.aclose()
            return
        state = StreamState(self.compiled.stream, self.spec.errors.kinds)
        closed_early = True
        try:
            try:
                async for chunk in response.aiter_bytes():
                    if state.ended:
                        continue  # read to the end of the body so the connection goes back to the pool
                    for delta in state.feed(chunk):
                        yield delta
                    if state.error is not None:
                        break
                else:
                    for delta in state.close():
                        yield delta
            except httpx.TimeoutException as exc:
                state.fail(f"timed out mid-stream: {describe(exc)}", ErrorKind.TIMEOUT)
            except httpx.TransportError as exc:
                state.fail(f"connection lost mid-stream: {describe(exc)}", ErrorKind.CONNECTION)
            closed_early = False
        finally:
            await response.aclose()
            if closed_early and not state.finished:
                state.fail("stream closed by the caller before its end", ErrorKind.CONNECTION)
            result.response = self._stream_result(state, model, started, response.status_code)

    def _stream_result(self, state: StreamState, model: str, started: float, status: int) -> CompletionResponse:
        values = state.values
        if state.error is None and not state.ended:
            state.fail("stream ended before its end marker (cut off)", ErrorKind.CONNECTION)
        if state.error is not None:
            return self._failure(scrub(state.error, self.prepared.api_key), state.error_kind, model=model,
                                started=started, status_code=status, raw=state.events, content=state.content,
                                values=values)
        usage = unify_usage({name: values.get(name) for name in self._stream_usage}, self.spec.response)
        reported = values.get("model")
        return self._finish(content=state.content, reasoning="".join(state.reasoning) or None,
                           model=reported if isinstance(reported, str) else None,
                           requested=model, usage=usage, finish_reason=values.get("finish_reason"),
                           billed=number(values.get("cost")),
                           started=started, status_code=status, raw=state.events)

