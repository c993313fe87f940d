"""Send: the one place the engine talks to the network, with timeouts and retries.

Retries follow the official SDKs: connection errors, timeouts, 408, 409, 429
and 5xx, with exponential backoff and jitter, honouring ``Retry-After`` /
``retry-after-ms`` (up to a minute) and ``x-should-retry``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from dataclasses import dataclass

import httpx

from .errors import ErrorKind
from .types import HTTPRequest

log = logging.getLogger("engine")

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def backoff(self, attempt: int) -> float:
        delay = min(self.initial_delay * 2**attempt, self.max_delay)
        return delay * (1 - 0.25 * random.random())


class SendError(Exception):
    """The request got no usable HTTP response (after retries)."""

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.message, self.kind = message, kind


def new_client(timeout: float, connect_timeout: float, transport: str = "auto") -> httpx.AsyncClient:
    """The client a provider uses when the caller does not pass one (see `engine.transport`)."""
    from .transport import pool_transport

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=limits,
        transport=pool_transport(transport, limits),
        headers={"user-agent": "genai-engine/0.1"},
    )


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait, if it says so in a usable way."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else parsed.timestamp() - time.time()


def should_retry(response: httpx.Response) -> bool:
    explicit = response.headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return response.status_code in RETRY_STATUSES or response.status_code >= 500


def describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


async def send(client: httpx.AsyncClient, request: HTTPRequest, policy: RetryPolicy,
               *, stream: bool = False) -> httpx.Response:
    """Send with retries; the response may still be an HTTP error. Raises `SendError` for no response.

    With ``stream=True`` the body is not read: the caller must close the response.
    """
    attempt = 0
    while True:
        try:
            built = client.build_request(request.method, request.url, headers=request.headers,
                                         content=request.content)
            response = await client.send(built, stream=stream)
        except httpx.TimeoutException as exc:
            failure = SendError(f"timed out: {describe(exc)}", ErrorKind.TIMEOUT)
            delay = policy.backoff(attempt)
        except httpx.TransportError as exc:
            failure = SendError(f"connection failed: {describe(exc)}", ErrorKind.CONNECTION)
            delay = policy.backoff(attempt)
        else:
            if response.status_code < 400 or attempt >= policy.max_retries or not should_retry(response):
                return response
            wait = retry_after(response.headers)
            delay = wait if wait is not None and 0 <= wait <= MAX_RETRY_AFTER else policy.backoff(attempt)
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
