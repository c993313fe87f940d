"""Send: the one place the engine talks to the network, with timeouts and retries.

The retry rules (which failures, how long to wait) are `engine.retry`'s; this
module applies them to httpx requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from .errors import ErrorKind, SendError
from .limits import LimitExceeded
from .retry import RetryPolicy, log, retry_after, retryable_status
from .types import HTTPRequest

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "BodyDecoder",
    "RetryPolicy",
    "SendError",
    "UnsupportedEncoding",
    "describe",
    "new_client",
    "read_body",
    "send",
    "stream_body",
]


def new_client(settings: Settings) -> httpx.AsyncClient:
    """The client a provider uses when the caller does not pass one: the pool of ``settings.http_transport``,
    proxies from the environment (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), the engine's timeouts."""
    from .transport import client_transports

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    transport, mounts = client_transports(settings.http_transport, limits, settings.allow_link_local)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        limits=limits, transport=transport, mounts=mounts,
        headers={"user-agent": "genai-engine/0.1"},
    )


def describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


async def send(client: httpx.AsyncClient, request: HTTPRequest, policy: RetryPolicy, *,
               timeout: float | None = None) -> httpx.Response:
    """Send with retries; the response may still be an HTTP error. Raises `SendError` for no response.

    The body is not read: read it with `read_body` or `stream_body` (within the limits), then close the
    response. ``timeout`` replaces the client's read/write/pool timeouts for this call.
    """
    attempt = 0
    extensions = None
    if timeout is not None:
        connect = client.timeout.connect
        extensions = {"timeout": httpx.Timeout(timeout, connect=min(timeout, connect) if connect else timeout)
                      .as_dict()}
    headers = {**request.headers, "accept-encoding": ACCEPT_ENCODING}  # (one Headers built, not changed after)
    while True:
        try:
            built = client.build_request(request.method, request.url, headers=headers, content=request.content,
                                         extensions=extensions)
            response = await client.send(built, stream=True)
        except httpx.TimeoutException as exc:
            failure = SendError(f"timed out: {describe(exc)}", ErrorKind.TIMEOUT)
            delay = policy.backoff(attempt)
        except httpx.TransportError as exc:
            failure = SendError(f"connection failed: {describe(exc)}", ErrorKind.CONNECTION)
            delay = policy.backoff(attempt)
        else:
            status = response.status_code
            if status < 400 or attempt >= policy.max_retries or not retryable_status(status, response.headers):
                return response
            delay = policy.delay(attempt, retry_after(response.headers))
            await response.aclose()
            log.info("retrying %s after HTTP %s in %.2fs", request.method, response.status_code, delay)
            attempt += 1
            await asyncio.sleep(delay)
            continue
        if attempt >= policy.max_retries:
            raise failure
        log.info("retrying %s after %s in %.2fs", request.method, failure.message, delay)
        attempt += 1
        await asyncio.sleep(delay)


# -- reading bodies within limits --------------------------------------------------------------------------
# The engine asks for gzip or deflate only and decompresses itself, a bounded step at a time, so that a
# small compressed body can never grow past the limit in memory (a gzip bomb).
ACCEPT_ENCODING = "gzip, deflate"


class BodyDecoder:
    """Content-decoding with a cap on the decoded size; `feed` raises `LimitExceeded` past it."""

    __slots__ = ("_encoding", "_fallen_back", "_limit", "_name", "_seen", "_total", "_zlib")

    def __init__(self, content_encoding: str | None, limit: int, name: str) -> None:
        import zlib

        encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
            raise UnsupportedEncoding(f"unsupported content-encoding {content_encoding!r} (the engine asks for "
                                      f"{ACCEPT_ENCODING})")
        self._encoding = encodings[0] if encodings else None
        self._zlib: Any = None
        if self._encoding is not None:
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32 if "gzip" in self._encoding else zlib.MAX_WBITS)
        self._limit, self._name, self._total = limit, name, 0
        # deflate comes zlib-wrapped or raw: the input is kept until the first output settles which
        self._seen: bytes | None = b"" if self._encoding == "deflate" else None
        self._fallen_back = False

    def _count(self, data: bytes) -> bytes:
        self._total += len(data)
        if self._total > self._limit:
            raise LimitExceeded(self._name, self._limit, "the response body")
        return data

    def feed(self, chunk: bytes) -> bytes:
        if self._zlib is None:  # identity, the usual case: count only
            self._total += len(chunk)
            if self._total > self._limit:
                raise LimitExceeded(self._name, self._limit, "the response body")
            return chunk
        import zlib

        out: list[bytes] = []
        data = chunk
        if self._seen is not None:
            self._seen = self._seen + chunk if len(self._seen) < 1 << 20 else None  # kept while it may be replayed
        while data:
            room = self._limit - self._total + 1
            try:
                piece = self._zlib.decompress(data, room)
            except zlib.error as exc:
                if self._seen is not None and not self._fallen_back:
                    # Not zlib-wrapped: start again from the first byte as raw deflate, as some servers send.
                    self._fallen_back = True
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    data, self._seen = self._seen, None
                    continue
                raise UnsupportedEncoding(f"the {self._encoding} body does not decompress: {exc}") from exc
            if piece:
                self._seen = None  # output: the format has shown itself, nothing to replay
            out.append(self._count(piece))
            data = self._zlib.unconsumed_tail
            if self._zlib.eof and self._zlib.unused_data:  # a second gzip member
                data = self._zlib.unused_data + data
                self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)
        return b"".join(out)

    def flush(self) -> bytes:
        return self._count(self._zlib.flush()) if self._zlib is not None else b""


class UnsupportedEncoding(ValueError):
    """A body in a content-encoding the engine did not ask for, or one that does not decode."""


async def read_body(response: httpx.Response, limit: int, name: str = "max_response_bytes") -> bytes:
    """The whole decoded body, refused past ``limit`` (by Content-Length before reading, or while reading)."""
    if response.is_stream_consumed:  # built with its content (a mock transport's reply): decoded already
        if len(response.content) > limit:
            raise LimitExceeded(name, limit, "the response body")
        return response.content
    headers = response.headers
    encoding, length = headers.get("content-encoding"), headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit and not encoding:
        raise LimitExceeded(name, limit, f"the response body ({int(length):,} bytes announced)")
    decoder = BodyDecoder(encoding, limit, name)
    parts = [decoder.feed(chunk) async for chunk in response.aiter_raw()]
    parts.append(decoder.flush())
    return b"".join(parts)


def stream_body(response: httpx.Response, limit: int) -> tuple[AsyncIterator[bytes], BodyDecoder]:
    """The raw pieces of a streamed body, and the decoder that decodes them and refuses past ``limit`` bytes
    in all: ``decoder.feed(piece)`` for each, then ``decoder.flush()``. (Not a generator of its own: a
    stream of many small events pays for each layer of async iteration.)"""
    if response.is_stream_consumed:  # built with its content (a mock transport's reply): decoded already
        return _once(response.content), BodyDecoder(None, limit, "max_stream_bytes")
    return response.aiter_raw(), BodyDecoder(response.headers.get("content-encoding"), limit, "max_stream_bytes")


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content
