"""The httpcore2 connection pool under httpx, and its exceptions mapped onto httpx's."""

from __future__ import annotations

import asyncio
import socket

import httpcore2
import httpx
import pytest

from engine.errors import ConfigError
from engine.testing import FakeServer
from engine.transport import Httpcore2Transport, _as_httpx_errors, client_transports

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)
PROXY_VARIABLES = [f"{name}_proxy" for name in ("http", "https", "all", "no")]


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy settings play no part."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_the_pool_is_chosen_by_setting() -> None:
    transport, mounts = client_transports("httpcore2", LIMITS)
    assert isinstance(transport, Httpcore2Transport) and mounts is None
    assert client_transports("httpx", LIMITS) == (None, None)


def test_proxies_from_the_environment_are_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    _, mounts = client_transports("httpcore2", LIMITS)
    assert mounts is not None and set(mounts) == {"https://", "all://localhost"}
    assert isinstance(mounts["https://"], Httpcore2Transport) and mounts["all://localhost"] is None
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.test:1080")
    with pytest.raises(ConfigError, match="not an HTTP proxy"):
        client_transports("httpcore2", LIMITS)


@pytest.mark.parametrize(("core_class", "httpx_class"), [
    (httpcore2.ConnectTimeout, httpx.ConnectTimeout), (httpcore2.ReadTimeout, httpx.ReadTimeout),
    (httpcore2.WriteTimeout, httpx.WriteTimeout), (httpcore2.PoolTimeout, httpx.PoolTimeout),
    (httpcore2.TimeoutException, httpx.TimeoutException),
    (httpcore2.ConnectError, httpx.ConnectError), (httpcore2.ReadError, httpx.ReadError),
    (httpcore2.WriteError, httpx.WriteError), (httpcore2.NetworkError, httpx.NetworkError),
    (httpcore2.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore2.LocalProtocolError, httpx.LocalProtocolError), (httpcore2.ProtocolError, httpx.ProtocolError),
    (httpcore2.ProxyError, httpx.ProxyError), (httpcore2.UnsupportedProtocol, httpx.UnsupportedProtocol),
])
def test_each_httpcore2_error_becomes_its_httpx_class(core_class: type[Exception],
                                                      httpx_class: type[Exception]) -> None:
    original = core_class("boom")
    with pytest.raises(httpx.TransportError) as info, _as_httpx_errors():
        raise original
    assert type(info.value) is httpx_class
    assert str(info.value) == "boom" and info.value.__cause__ is original


@pytest.mark.parametrize("error", [httpcore2.ConnectionNotAvailable(), KeyError("x"), httpx.ReadError("already")])
def test_other_exceptions_pass_through_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as info, _as_httpx_errors():
        raise error
    assert info.value is error


def test_no_exception_no_change() -> None:
    with _as_httpx_errors():
        value = 1
    assert value == 1


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=Httpcore2Transport(LIMITS), timeout=5.0) as client:
        response = await client.get(url)
        await response.aread()
        return response


def test_a_request_through_the_pool(local_server: FakeServer) -> None:
    response = asyncio.run(_get(local_server.base_url + "/health?x=1"))
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert local_server.requests[-1].path == "/health" and local_server.requests[-1].query == "x=1"


def test_link_local_addresses_are_refused_before_connecting() -> None:
    with pytest.raises(httpx.ConnectError, match="link-local"):
        asyncio.run(_get("http://169.254.169.254/latest/meta-data/"))


def test_a_refused_connection_is_an_httpx_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        asyncio.run(_get(f"http://127.0.0.1:{port}/"))


class _CountingStream:
    def __init__(self) -> None:
        self.probes = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable":
            self.probes += 1
            return False
        return "other"


def test_a_connections_readability_probe_is_reused_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import transport

    clock = [100.0]
    monkeypatch.setattr(transport.time, "monotonic", lambda: clock[0])
    inner = _CountingStream()
    stream = transport._ProbedStream(inner)
    assert [stream.get_extra_info("is_readable") for _ in range(128)] == [False] * 128
    assert inner.probes == 1  # one probe for a burst of pool passes
    clock[0] += transport.PROBE_SECONDS + 0.001
    stream.get_extra_info("is_readable")
    assert inner.probes == 2 and stream.get_extra_info("server_addr") == "other"


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """A keep-alive server that drops idle connections after 0.1 s: the next request, later, opens a new one."""
    connections = 0

    async def main() -> list[int]:
        nonlocal connections

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            try:
                while True:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.1)
                    assert head.startswith(b"GET ")
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                    await writer.drain()
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        statuses = []
        async with server, httpx.AsyncClient(transport=Httpcore2Transport(LIMITS), timeout=5.0) as client:
            for pause in (0, 0, 0.3, 0, 0.3):
                await asyncio.sleep(pause)
                statuses.append((await client.get(f"http://127.0.0.1:{port}/")).status_code)
        return statuses

    assert asyncio.run(main()) == [200] * 5
    assert connections == 3  # reused back to back, replaced after each idle close
