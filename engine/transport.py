"""The connection pool under the engine's ``httpx.AsyncClient``.

httpx's own pool (httpcore 1.x) keeps too few connections busy when many tasks
call at once: at 64 concurrent calls it used ~2.3 ms of client CPU per request
and fell below the openai SDK's throughput (bench/README.md). httpcore2 is the
maintained fork of that pool (the one httpx2, and so the openai SDK, runs on):
the same design and exception names, without the contention. The engine keeps
httpx's client API and plugs httpcore2's pool in as its transport; set
``GENAI_HTTP_TRANSPORT=httpx`` to use httpx's own pool instead (the default,
``auto``, does so by itself in a process that has loaded respx).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore2 raises its own classes; the engine catches httpx's, which have the same names."""
    import httpcore2

    try:
        yield
    except httpcore2.ConnectionNotAvailable:  # the pool's internal retry signal
        raise
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "httpcore2":
            raise
        mapped = getattr(httpx, type(exc).__name__, None)
        if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
            raise mapped(str(exc)) from exc
        raise httpx.TransportError(str(exc)) from exc


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
    """The transport for ``GENAI_HTTP_TRANSPORT``; ``None`` means httpx's own.

    ``auto`` is httpcore2, except in a process that has loaded respx: respx mocks
    httpx's own pool, and a test suite mocking the engine's calls must just work.
    """
    if kind == "auto":
        kind = "httpx" if "respx" in sys.modules else "httpcore2"
    return Httpcore2Transport(limits) if kind == "httpcore2" else None
