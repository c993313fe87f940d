"""The one retry policy, shared by the HTTP path and Python backends.

It follows the official SDKs: connection errors, timeouts, 408, 409, 429 and
5xx are retried with exponential backoff and jitter; a server's
``Retry-After`` / ``retry-after-ms`` (up to a minute) is honoured and
``x-should-retry`` overrides the status rule.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .errors import ErrorKind, ProviderError

log = logging.getLogger("engine")

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0
T = TypeVar("T")


def retryable_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """Whether an HTTP error status is worth another attempt (``x-should-retry`` decides when sent)."""
    explicit = headers.get("x-should-retry") if headers is not None else None
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in RETRY_STATUSES or status >= 500


def retryable(error: ProviderError) -> bool:
    """Whether a failure is worth another attempt: timeouts, connection failures and retryable statuses."""
    if error.status_code is None:
        return error.kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION)
    return retryable_status(error.status_code)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait, if it says so in a usable way (seconds, ms or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return parsed.timestamp() - time.time()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with up to 25% jitter, capped at ``max_delay``."""
        delay = min(self.initial_delay * 2**attempt, self.max_delay)
        return delay * (1 - 0.25 * random.random())

    def delay(self, attempt: int, server_wait: float | None) -> float:
        """The wait before the next attempt: the server's, when sane, else the backoff."""
        if server_wait is not None and 0 <= server_wait <= MAX_RETRY_AFTER:
            return server_wait
        return self.backoff(attempt)

    async def run(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Await ``call()`` until it succeeds, raises a non-retryable `ProviderError`, or attempts run out."""
        attempt = 0
        while True:
            try:
                return await call()
            except ProviderError as error:
                if attempt >= self.max_retries or not retryable(error):
                    raise
                wait = self.delay(attempt, error.retry_after)
                log.info("retrying %s after %s in %.2fs", what, error.message, wait)
                attempt += 1
                await asyncio.sleep(wait)
