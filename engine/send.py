"""Send: the one place the engine talks to the network, with timeouts and retries.

The retry rules (which failures, how long to wait) are `engine.retry`'s; this
module applies them to httpx requests.
"""

from __future__ import annotations

import asyncio

import httpx

from .errors import ErrorKind, SendError
from .retry import RetryPolicy, log, retry_after, retryable_status
from .types import HTTPRequest

__all__ = ["RetryPolicy", "SendError", "describe", "new_client", "send"]


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
