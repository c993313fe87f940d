"""The retry policy: which failures are retried, how long to wait, and the retry loop."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from engine.errors import ErrorKind, ProviderError
from engine.retry import RetryPolicy, retry_after, retryable, retryable_status

FAST = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.002)


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "3"}, 3.0),
    ({"retry-after": "0.5"}, 0.5),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # ms is more precise and wins
    ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),  # an unusable ms value falls back
])
def test_retry_after_seconds_and_milliseconds(headers: dict[str, str], seconds: float) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after({"retry-after": later})
    assert wait is not None and 28 <= wait <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert (retry_after({"retry-after": past}) or 0) < 0


@pytest.mark.parametrize("headers", [{}, {"retry-after": ""}, {"retry-after": "whenever"},
                                     {"retry-after": "Mon, 99 Foo"}])
def test_retry_after_unusable(headers: dict[str, str]) -> None:
    assert retry_after(headers) is None


@pytest.mark.parametrize(("status", "expected"), [
    (408, True), (409, True), (429, True), (500, True), (503, True), (529, True),
    (400, False), (401, False), (404, False), (422, False),
])
def test_retryable_status(status: int, expected: bool) -> None:
    assert retryable_status(status) is expected
    assert retryable_status(status, {}) is expected


def test_x_should_retry_overrides_the_status_rule() -> None:
    assert retryable_status(503, {"x-should-retry": "false"}) is False
    assert retryable_status(400, {"x-should-retry": "true"}) is True
    assert retryable_status(400, {"x-should-retry": "maybe"}) is False


@pytest.mark.parametrize(("kind", "status", "expected"), [
    (ErrorKind.TIMEOUT, None, True), (ErrorKind.CONNECTION, None, True),
    (ErrorKind.SERVER, None, False), (ErrorKind.AUTH, None, False),
    (ErrorKind.RATE_LIMIT, 429, True), (ErrorKind.SERVER, 502, True),
    (ErrorKind.AUTH, 401, False), (ErrorKind.TIMEOUT, 400, False),  # a status decides when there is one
])
def test_retryable_provider_error(kind: ErrorKind, status: int | None, expected: bool) -> None:
    assert retryable(ProviderError("x", kind, status_code=status)) is expected


@pytest.mark.parametrize("attempt", [0, 1, 2, 3])
def test_backoff_is_exponential_with_up_to_25_percent_jitter(attempt: int) -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=100.0)
    full = 0.5 * 2**attempt
    delays = [policy.backoff(attempt) for _ in range(200)]
    assert all(0.75 * full <= d <= full for d in delays)
    assert len(set(delays)) > 1


def test_backoff_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=3.0)
    assert all(2.25 <= policy.backoff(10) <= 3.0 for _ in range(100))


@pytest.mark.parametrize("server_wait", [0.0, 2.5, 60.0])
def test_delay_honours_a_sane_server_wait(server_wait: float) -> None:
    assert RetryPolicy(initial_delay=100.0, max_delay=100.0).delay(0, server_wait) == server_wait


@pytest.mark.parametrize("server_wait", [None, -1.0, 60.5, 3600.0])
def test_delay_ignores_a_missing_negative_or_huge_server_wait(server_wait: float | None) -> None:
    assert 0.75 <= RetryPolicy(initial_delay=1.0, max_delay=8.0).delay(0, server_wait) <= 1.0


def run_failing(policy: RetryPolicy, errors: list[ProviderError], value: str = "ok") -> tuple[str, int]:
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if errors:
            raise errors.pop(0)
        return value

    return asyncio.run(policy.run(call, "test")), calls


def test_run_returns_the_value_on_success() -> None:
    assert run_failing(FAST, []) == ("ok", 1)


def test_run_retries_then_succeeds() -> None:
    failures = [ProviderError("busy", ErrorKind.RATE_LIMIT, status_code=429, retry_after=0.001)] * 2
    assert run_failing(FAST, list(failures)) == ("ok", 3)


def test_run_gives_up_after_max_retries() -> None:
    failures = [ProviderError(f"down {i}", ErrorKind.SERVER, status_code=503) for i in range(4)]
    with pytest.raises(ProviderError) as info:
        run_failing(FAST, failures)
    assert info.value.message == "down 2"  # the third attempt's error: 1 try + 2 retries
    assert [e.message for e in failures] == ["down 3"]


def test_run_does_not_retry_a_non_retryable_error() -> None:
    failures = [ProviderError("bad key", ErrorKind.AUTH, status_code=401), ProviderError("never")]
    with pytest.raises(ProviderError, match="bad key"):
        run_failing(FAST, failures)
    assert len(failures) == 1


def test_run_with_no_retries_raises_at_once() -> None:
    failures = [ProviderError("t", ErrorKind.TIMEOUT), ProviderError("never")]
    with pytest.raises(ProviderError, match=r"^t$"):
        run_failing(RetryPolicy(max_retries=0), failures)
    assert len(failures) == 1
