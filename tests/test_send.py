"""Sending one HTTP request with retries, against an in-process transport."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import signal
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from engine.errors import ErrorKind, SendError
from engine.limits import LimitExceeded
from engine.retry import RetryPolicy
from engine.send import BodyDecoder, UnsupportedEncoding, describe, read_body, send
from engine.types import HTTPRequest

POLICY = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)
REQUEST = HTTPRequest("POST", "https://api.example.com/v1/chat", {"content-type": "application/json"}, b'{"a":1}')
Handler = Callable[[httpx.Request], httpx.Response]


def run(handler: Handler, policy: RetryPolicy = POLICY) -> tuple[httpx.Response, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
            return await send(client, REQUEST, policy)

    return asyncio.run(go()), seen


def statuses(*codes: int, headers: dict[str, str] | None = None) -> Handler:
    queue = list(codes)
    return lambda request: httpx.Response(queue.pop(0), headers=headers, json={"n": len(queue)})


def test_success_is_sent_once_with_method_url_headers_and_body() -> None:
    response, seen = run(statuses(200))
    assert response.status_code == 200 and len(seen) == 1
    sent = seen[0]
    assert (sent.method, str(sent.url), sent.content) == ("POST", REQUEST.url, b'{"a":1}')
    assert sent.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_status_is_retried_then_the_last_response_returned(status: int) -> None:
    response, seen = run(statuses(status, status, status, 200))
    assert len(seen) == 3  # one try plus max_retries
    assert response.status_code == status and response.json() == {"n": 1}


def test_a_retry_that_succeeds_returns_the_success() -> None:
    response, seen = run(statuses(503, 200))
    assert response.status_code == 200 and len(seen) == 2


def test_x_should_retry_false_stops_retries() -> None:
    response, seen = run(statuses(503, 200, headers={"x-should-retry": "false"}))
    assert response.status_code == 503 and len(seen) == 1


def test_client_error_is_returned_at_once() -> None:
    response, seen = run(statuses(400, 200))
    assert response.status_code == 400 and len(seen) == 1


def test_no_retries_policy() -> None:
    response, seen = run(statuses(500, 200), RetryPolicy(max_retries=0))
    assert response.status_code == 500 and len(seen) == 1


@pytest.mark.parametrize(("exc", "kind", "prefix"), [
    (httpx.ConnectError("refused"), ErrorKind.CONNECTION, "connection failed: refused"),
    (httpx.ReadTimeout("slow"), ErrorKind.TIMEOUT, "timed out: slow"),
    (httpx.ConnectTimeout(""), ErrorKind.TIMEOUT, "timed out: ConnectTimeout"),
    (httpx.RemoteProtocolError("peer closed"), ErrorKind.CONNECTION, "connection failed: peer closed"),
])
def test_transport_errors_become_send_errors_after_retries(exc: Exception, kind: ErrorKind, prefix: str) -> None:
    attempts = 0

    def failing(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise exc

    with pytest.raises(SendError) as info:
        run(failing)
    assert attempts == 3
    assert info.value.kind is kind and info.value.status_code is None
    assert str(info.value) == prefix


def test_a_transport_error_then_a_response() -> None:
    outcomes: list[Exception | int] = [httpx.ConnectError("refused"), 200]

    def flaky(request: httpx.Request) -> httpx.Response:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome)

    response, seen = run(flaky)
    assert response.status_code == 200 and len(seen) == 2


def test_describe_falls_back_to_the_class_name() -> None:
    assert describe(httpx.ReadError("socket closed")) == "socket closed"
    assert describe(httpx.ReadError("")) == "ReadError"
    assert describe(ValueError()) == "ValueError"


TEXT = b"hello world " * 50


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def decode(encoding: str | None, body: bytes, size: int, limit: int = 10**6) -> bytes:
    decoder = BodyDecoder(encoding, limit, "max_response_bytes")
    parts = [decoder.feed(body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + decoder.flush()


@pytest.mark.parametrize("size", [2, 3, 7, 10_000])
@pytest.mark.parametrize(("encoding", "body"), [
    (None, TEXT), ("identity", TEXT), ("gzip", gzip.compress(TEXT)), ("x-gzip", gzip.compress(TEXT)),
    ("gzip", gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])),  # two gzip members
    ("deflate", zlib.compress(TEXT)), ("deflate", raw_deflate(TEXT)),  # zlib-wrapped and raw deflate
])
def test_bodies_decode_at_any_chunk_size(encoding: str | None, body: bytes, size: int) -> None:
    assert decode(encoding, body, size) == TEXT


def test_a_decoded_body_is_refused_past_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(LimitExceeded, match="max_response_bytes"):
        decode("gzip", bomb, len(bomb), limit=1_000_000)
    with pytest.raises(LimitExceeded):
        decode(None, TEXT, 7, limit=len(TEXT) - 1)
    assert decode(None, TEXT, 7, limit=len(TEXT)) == TEXT


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, deflate"])
def test_unrequested_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding, match="unsupported content-encoding"):
        BodyDecoder(encoding, 100, "max_response_bytes")


def test_a_gzip_body_that_does_not_decompress() -> None:
    with pytest.raises(UnsupportedEncoding, match="does not decompress"):
        decode("gzip", b"plain text, not gzip", 100)


def test_read_body_refuses_an_announced_length_past_the_limit() -> None:
    response = httpx.Response(200, headers={"content-length": "5000"}, stream=httpx.ByteStream(b"x" * 5000))
    with pytest.raises(LimitExceeded, match="5,000 bytes announced"):
        asyncio.run(read_body(response, 100))
    small = httpx.Response(200, stream=httpx.ByteStream(gzip.compress(b"ok")), headers={"content-encoding": "gzip"})
    assert asyncio.run(read_body(small, 100)) == b"ok"


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `TimeoutError` in a block that runs too long: a decoder that never returns must not hang the run."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_deflate_body_that_does_not_decompress_is_an_error_not_a_hang() -> None:
    with time_limit(2), pytest.raises(UnsupportedEncoding):
        decode("deflate", b"plain text, not deflate", 100)


def test_raw_deflate_split_after_its_first_byte() -> None:
    with time_limit(2):
        assert decode("deflate", raw_deflate(TEXT), 1) == TEXT
