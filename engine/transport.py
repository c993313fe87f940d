"""The connection pool under the engine's ``httpx.AsyncClient``.

httpx's own pool (httpcore 1.x) keeps too few connections busy when many tasks
call at once: at 64 concurrent calls it used ~2.3 ms of client CPU per request
and fell below the openai SDK's throughput (bench/README.md). httpcore2 is the
maintained fork of that pool (the one httpx2, and so the openai SDK, runs on):
the same design and exception names, without the contention. The engine keeps
httpx's client API and plugs httpcore2's pool in as its transport; set
``GENAI_HTTP_TRANSPORT=httpx`` (``Settings(http_transport="httpx")``) to use
httpx's own pool instead, as tests that mock httpx with respx must.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

import httpx


@cache
def _error_map() -> tuple[tuple[type[Exception], type[httpx.TransportError]], ...]:
    """httpcore2's exception classes and the httpx classes the engine catches, most specific first."""
    import httpcore2 as core

    return (
        (core.ConnectTimeout, httpx.ConnectTimeout), (core.ReadTimeout, httpx.ReadTimeout),
        (core.WriteTimeout, httpx.WriteTimeout), (core.PoolTimeout, httpx.PoolTimeout),
        (core.TimeoutException, httpx.TimeoutException),
        (core.ConnectError, httpx.ConnectError), (core.ReadError, httpx.ReadError),
        (core.WriteError, httpx.WriteError), (core.NetworkError, httpx.NetworkError),
        (core.RemoteProtocolError, httpx.RemoteProtocolError), (core.LocalProtocolError, httpx.LocalProtocolError),
        (core.ProtocolError, httpx.ProtocolError), (core.ProxyError, httpx.ProxyError),
        (core.UnsupportedProtocol, httpx.UnsupportedProtocol),
    )


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore2 raises its own classes; the engine catches httpx's."""
    try:
        yield
    except Exception as exc:
        for core_class, httpx_class in _error_map():
            if isinstance(exc, core_class):
                raise httpx_class(str(exc)) from exc
        raise  # ConnectionNotAvailable (the pool's internal retry signal) and anything unexpected


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        with _as_httpx_errors():
            await self._stream.aclose()


class Httpcore2Transport(httpx.AsyncBaseTransport):
    """An httpx transport over ``httpcore2.AsyncConnectionPool``, verifying TLS like httpx does."""

    def __init__(self, limits: httpx.Limits) -> None:
        import httpcore2

        self._core = httpcore2
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core, url = self._core, request.url
        core_request = core.Request(
            method=request.method,
            url=core.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]
            extensions=request.extensions,  # carries httpx's timeouts
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(response.status, headers=response.headers, stream=_Body(response.stream),
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


def pool_transport(kind: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport for ``GENAI_HTTP_TRANSPORT``: httpcore2's pool, or ``None`` for httpx's own."""
    return Httpcore2Transport(limits) if kind == "httpcore2" else None
