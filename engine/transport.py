"""The connection pool under the engine's ``httpx.AsyncClient``.

httpx's own pool (httpcore 1.x) keeps too few connections busy when many tasks
call at once: at 64 concurrent calls it used ~2.3 ms of client CPU per request
and fell below the openai SDK's throughput (bench/README.md). httpcore2 is the
maintained fork of that pool (the one httpx2, and so the openai SDK, runs on):
the same design and exception names, without the contention. The engine keeps
httpx's client API and plugs httpcore2's pool in as its transport; set
``GENAI_HTTP_TRANSPORT=httpx`` (``Settings(http_transport="httpx")``) to use
httpx's own pool instead, as tests that mock httpx with respx must.

Every time a request joins or leaves the pool, httpcore2 asks each idle kept-alive
connection whether its socket is readable (the server closed it). With 64 idle
connections that is 128 socket probes per request, a quarter of a busy gateway's
CPU. Here a connection's answer is reused for `PROBE_SECONDS`: a server that closes
an idle connection is still noticed before the next request but one that arrives
within that time, whose send then fails as a connection error (which the engine's
retry policy retries, as it does the same race at any instant).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

import httpx

from .trust import refused_address


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


PROBE_SECONDS = 0.05  # how long a connection's "closed by the server?" probe is trusted


class _ProbedStream:
    """A network stream whose readability probe (`get_extra_info("is_readable")`) is reused for `PROBE_SECONDS`;
    reads and writes go straight to the stream."""

    __slots__ = ("_checked", "_readable", "_stream", "aclose", "read", "write")

    def __init__(self, stream: Any) -> None:
        self._stream, self.read, self.write, self.aclose = stream, stream.read, stream.write, stream.aclose
        self._checked, self._readable = -PROBE_SECONDS, False

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> _ProbedStream:
        return _ProbedStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info != "is_readable":
            return self._stream.get_extra_info(info)
        now = time.monotonic()
        if now - self._checked >= PROBE_SECONDS:
            self._readable, self._checked = self._stream.get_extra_info(info), now
        return self._readable


class _Backend:
    """httpcore2's network backend, its streams probed at most every `PROBE_SECONDS`; with ``guard``, connections
    to link-local and metadata addresses are refused after DNS."""

    def __init__(self, guard: bool = True) -> None:
        from httpcore2._backends.auto import AutoBackend

        self._inner = AutoBackend()
        self._guard = guard

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> Any:
        if self._guard:
            await self._check(host, port)
        return _ProbedStream(await self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                           socket_options=socket_options))

    async def _check(self, host: str, port: int) -> None:
        import asyncio
        import socket

        import httpcore2

        reason = refused_address(host)
        if reason is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:
                infos = []  # let the real connect report the failure
            reason = next((f"{host} resolves to {info[4][0]}, a link-local or metadata address" for info in infos
                           if refused_address(str(info[4][0]))), None)
        if reason is not None:
            raise httpcore2.ConnectError(f"refused: {reason} (set GENAI_ALLOW_LINK_LOCAL=true to allow)")

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        return _ProbedStream(await self._inner.connect_unix_socket(path, timeout=timeout,
                                                                   socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class Httpcore2Transport(httpx.AsyncBaseTransport):
    """An httpx transport over httpcore2's pool (or its HTTP proxy), verifying TLS like httpx does."""

    def __init__(self, limits: httpx.Limits, *, proxy: str | None = None, guard: bool = True) -> None:
        import httpcore2

        self._core = httpcore2
        options: dict[str, Any] = {
            "ssl_context": httpx.create_ssl_context(),
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
        }
        options["network_backend"] = _Backend(guard)
        if proxy is None:
            self._pool: Any = httpcore2.AsyncConnectionPool(**options)
        else:
            url = httpx.URL(proxy)
            auth = (url.username, url.password) if url.username else None
            self._pool = httpcore2.AsyncHTTPProxy(proxy_url=str(url.copy_with(username=None, password=None)),
                                                  proxy_auth=auth, **options)

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


def environment_proxies() -> dict[str, str | None]:
    """Proxy URL patterns from ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case),
    as httpx reads them: ``{"http://": url, "all://*example.com": None, ...}`` (``None``: connect directly)."""
    import ipaddress
    from urllib.request import getproxies_environment

    found = getproxies_environment()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        url = found.get(scheme)
        if url:
            mounts[f"{scheme}://"] = url if "://" in url else f"http://{url}"
    for host in (h.strip() for h in found.get("no", "").split(",")):
        if not host:
            continue
        if host == "*":
            return {}
        if "://" in host:
            mounts[host] = None
            continue
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            mounts[f"all://{host}" if host.lower() == "localhost" else f"all://*{host.lstrip('.')}"] = None
        else:
            mounts[f"all://[{address}]" if address.version == 6 else f"all://{address}"] = None
    return mounts


def client_transports(kind: str, limits: httpx.Limits, allow_link_local: bool = False) -> tuple[
        httpx.AsyncBaseTransport | None, dict[str, httpx.AsyncBaseTransport | None] | None]:
    """The transport and proxy mounts for ``GENAI_HTTP_TRANSPORT``: httpcore2's pool, or ``(None, None)`` for
    httpx's own (which reads the proxy variables itself). Raises `ConfigError` for a proxy it cannot use."""
    if kind != "httpcore2":
        return None, None
    from .errors import ConfigError

    guard = not allow_link_local
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for pattern, proxy in environment_proxies().items():
        if proxy is not None and not proxy.lower().startswith(("http://", "https://")):
            raise ConfigError(f"the proxy {httpx.URL(proxy).copy_with(password=None)} is not an HTTP proxy; "
                              "the httpcore2 pool takes http:// and https:// proxies (for SOCKS set "
                              "GENAI_HTTP_TRANSPORT=httpx and install httpx[socks])")
        mounts[pattern] = None if proxy is None else Httpcore2Transport(limits, proxy=proxy, guard=guard)
    return Httpcore2Transport(limits, guard=guard), mounts or None
