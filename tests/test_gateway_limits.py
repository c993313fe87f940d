"""Budgets, rate limits and cooldowns, the same tests for both backends: the replica's SQLite file and a real Redis
server. Admission is atomic: concurrent calls in one process and in several processes admit exactly as many as
the budget holds."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ErrorKind
from engine.gateway import limits as limits_module
from engine.gateway.config import Budget
from engine.gateway.keys import GatewayKey
from engine.gateway.ledger import Entry, Ledger
from engine.gateway.limits import Limits, LocalLimits, estimate, nano, period
from engine.gateway.problems import Problem
from engine.router import Cooldown

from .gateway_support import ROOT, RedisServer, child_env

BACKENDS = ("sqlite", "redis")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    pytest.importorskip("redis", reason="the [redis] extra (installed by [dev])")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def make_limits(backend: str, folder: Path, request: pytest.FixtureRequest) -> Limits:
    ledger = Ledger(folder / "ledger.db")
    if backend == "sqlite":
        return LocalLimits(ledger)
    from engine.gateway.redis_state import RedisLimits

    server: RedisServer = request.getfixturevalue("redis_server")
    server.command("FLUSHALL")
    return RedisLimits(server.url, ledger)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def key(name: str = "k", **limits: Any) -> GatewayKey:
    return GatewayKey(name, "0" * 64, ("*",), **limits)


def entry(rid: str, key_name: str = "k", cost: float | None = None, tokens: tuple[int, int] = (0, 0)) -> Entry:
    return Entry(id=rid, ts=time.time(), key=key_name, api="openai", model="openai/gpt-4o", stream=False, status=200,
                 cost_usd=cost, input_tokens=tokens[0], output_tokens=tokens[1])


def run(backend: str, tmp_path: Path, request: pytest.FixtureRequest, body: Any) -> Any:
    async def go() -> Any:
        limits = make_limits(backend, tmp_path, request)
        try:
            return await body(limits)
        finally:
            await limits.close()

    return asyncio.run(go())


def test_requests_per_minute(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    k = key(rpm=3)

    async def body(limits: Limits) -> tuple[list[bytes], Problem]:
        remaining = []
        for i in range(3):
            admission = await limits.admit(k, f"r{i}", 0)
            remaining.append(dict(admission.headers)[b"x-ratelimit-remaining-requests"])
        with pytest.raises(Problem) as refused:
            await limits.admit(k, "r3", 0)
        return remaining, refused.value

    remaining, refused = run(backend, tmp_path, request, body)
    assert remaining == [b"2", b"1", b"0"]
    assert refused.kind == ErrorKind.RATE_LIMIT and refused.status == 429 and "(rpm)" in refused.message
    assert 55 < (refused.retry_after or 0) <= 60 and refused.retry is True


def test_tokens_per_minute_count_when_calls_end(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    k = key(tpm=100)

    async def body(limits: Limits) -> Problem:
        first = await limits.admit(k, "a", 0)
        await limits.finish(entry("a", tokens=(50, 30)), k, first)
        second = await limits.admit(k, "b", 0)  # 80 < 100
        await limits.finish(entry("b", tokens=(20, 10)), k, second)
        with pytest.raises(Problem) as refused:
            await limits.admit(k, "c", 0)  # 110 >= 100
        return refused.value

    refused = run(backend, tmp_path, request, body)
    assert "(tpm)" in refused.message and 0 < (refused.retry_after or 0) <= 61


def test_a_budget_counts_spend_and_the_holds_of_calls_in_flight(backend: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    k = key(budget=Budget(usd=10_000 / 1e9, period="day"))  # 10,000 nano-USD

    async def body(limits: Limits) -> list[Any]:
        seen: list[Any] = []
        a = await limits.admit(k, "a", 4000)
        await limits.admit(k, "b", 4000)
        await limits.admit(k, "c", 4000)  # held 8,000 < 10,000: admitted
        with pytest.raises(Problem) as refused:
            await limits.admit(k, "d", 4000)  # held 12,000
        seen.append((refused.value.kind, refused.value.status, refused.value.retry))
        await limits.finish(entry("a", cost=1000 / 1e9), k, a)  # a's hold of 4,000 is released, 1,000 spent
        seen.append(await limits.spent(k))
        await limits.admit(k, "e", 0)  # 1,000 spent + 8,000 held < 10,000
        return seen

    assert run(backend, tmp_path, request, body) == [("budget", 429, False), 1000 / 1e9]


def test_a_budget_that_is_spent_refuses_every_call(backend: str, tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    k = key(budget=Budget(usd=0.001, period="month"))

    async def body(limits: Limits) -> tuple[float, str]:
        admission = await limits.admit(k, "a", 0)
        await limits.finish(entry("a", cost=0.0015), k, admission)  # the last call may pass the budget
        with pytest.raises(Problem) as refused:
            await limits.admit(k, "b", 0)
        return await limits.spent(k), refused.value.message

    spent, message = run(backend, tmp_path, request, body)
    assert spent == 0.0015 and "spent its budget" in message


def test_concurrent_admissions_never_slip_past_the_budget(backend: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    k = key(budget=Budget(usd=10_000 / 1e9, period="day"), rpm=1000)

    async def body(limits: Limits) -> int:
        async def one(i: int) -> bool:
            try:
                await limits.admit(k, f"r{i}", 1000)
                return True
            except Problem:
                return False

        return sum(await asyncio.gather(*(one(i) for i in range(50))))

    assert run(backend, tmp_path, request, body) == 10


def test_holds_of_a_process_that_died_expire(backend: str, tmp_path: Path, request: pytest.FixtureRequest,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits_module, "HOLD_SECONDS", 0.3)
    if backend == "redis":
        from engine.gateway import redis_state

        monkeypatch.setattr(redis_state, "HOLD_SECONDS", 0.3)
    k = key(budget=Budget(usd=1000 / 1e9, period="day"))

    async def body(limits: Limits) -> bool:
        await limits.admit(k, "lost", 5000)  # never finished: its process died
        with pytest.raises(Problem):
            await limits.admit(k, "b", 0)
        await asyncio.sleep(0.4)
        await limits.admit(k, "c", 0)
        return True

    assert run(backend, tmp_path, request, body)


def test_a_call_without_limits_is_only_recorded(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    async def body(limits: Limits) -> set[str]:
        await limits.finish(entry("plain", cost=0.5), key(), None)
        return limits.ledger.ids()  # type: ignore[attr-defined,no-any-return]

    assert run(backend, tmp_path, request, body) == {"plain"}


def test_cooldowns(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    policy = Cooldown(fails=2, window=10, seconds=0.3)

    async def body(limits: Limits) -> list[Any]:
        cooldowns = limits.cooldowns
        seen: list[Any] = [await cooldowns.failed("dep-a", ErrorKind.SERVER, policy)]
        seen.append(sorted(await cooldowns.cooling(["dep-a", "dep-b"])))
        seen.append(await cooldowns.failed("dep-a", ErrorKind.TIMEOUT, policy))
        seen.append(sorted(await cooldowns.cooling(["dep-a", "dep-b"])))  # seen at once by this process
        seen.append(await cooldowns.failed("dep-b", ErrorKind.RATE_LIMIT, policy))
        await asyncio.sleep(0.35)
        seen.append(sorted(await cooldowns.cooling(["dep-a", "dep-b"])))
        return seen

    assert run(backend, tmp_path, request, body) == [0.0, [], 0.3, ["dep-a"], 0.3, []]


RACE = """
import asyncio, sys
from engine.gateway.config import Budget
from engine.gateway.keys import GatewayKey
from engine.gateway.ledger import Ledger
from engine.gateway.problems import Problem

async def main(backend, path, url):
    ledger = Ledger(path)
    if backend == "sqlite":
        from engine.gateway.limits import LocalLimits
        limits = LocalLimits(ledger)
    else:
        from engine.gateway.redis_state import RedisLimits
        limits = RedisLimits(url, ledger)
    key = GatewayKey("shared", "0" * 64, ("*",), Budget(usd=30_000 / 1e9, period="day"), rpm=45)
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()  # start together
    async def one(i):
        try:
            await limits.admit(key, f"{id(limits)}-{i}", 1000)
            return 1
        except Problem as problem:
            return 0
    print(sum(await asyncio.gather(*(one(i) for i in range(40)))))
    await limits.close()

asyncio.run(main(*sys.argv[1:]))
"""


def test_several_processes_share_one_budget_and_one_rate_limit(backend: str, tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    url = ""
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.command("FLUSHALL")
        url = server.url
    script = tmp_path / "race.py"
    script.write_text(textwrap.dedent(RACE), encoding="utf-8")
    # With Redis each process has its own SQLite ledger (as replicas do); on one host they share the file.
    procs = [subprocess.Popen([sys.executable, str(script), backend,
                               str(tmp_path / ("ledger.db" if backend == "sqlite" else f"ledger-{i}.db")), url],
                              cwd=ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for i in range(3)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        counts = [int(proc.communicate(timeout=60)[0].strip()) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert sum(counts) == 30, counts  # 120 attempts, 3 processes: the budget admits 30 (rpm 45 would admit 45)


def test_periods_are_utc_calendar_periods() -> None:
    at = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    assert period("day", at) == ("2026-12-31", dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp())
    assert period("month", at) == ("2026-12", dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp())
    assert period("week", at) == ("2026-W53", dt.datetime(2027, 1, 4, tzinfo=dt.UTC).timestamp())
    assert period("total", at) == ("total", None)
    assert period("month", dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp())[0] == "2026-02"


def test_estimates_and_nano_dollars() -> None:
    # 4,000 characters ~ 1,000 input tokens at $2.50/M, plus 100 output tokens at $10/M
    assert estimate(2.5, 10.0, 4000, 100) == nano(0.0025 + 0.001) == 3_500_000
    assert estimate(None, None, 4000, 100) == 0  # no known price: nothing held
    assert nano(None) == nano(-1.0) == 0


def test_when_redis_goes_away_limits_fail_closed_and_the_rest_goes_on(tmp_path: Path) -> None:
    pytest.importorskip("redis", reason="the [redis] extra (installed by [dev])")
    from engine.gateway.redis_state import RedisLimits

    server = RedisServer(tmp_path / "redis")
    k = key(rpm=5, tpm=1000)

    async def body() -> tuple[Problem, dict[str, float], float]:
        limits = RedisLimits(server.url, Ledger(tmp_path / "ledger.db"))
        try:
            admission = await limits.admit(k, "a", 0)
            server.stop()
            await limits.finish(entry("a", tokens=(10, 5)), k, admission)  # its tokens cannot be charged: logged
            with pytest.raises(Problem) as refused:
                await limits.admit(k, "b", 0)
            cooling = await limits.cooldowns.cooling(["openai/gpt-4o"])
            cooled = await limits.cooldowns.failed("openai/gpt-4o", ErrorKind.RATE_LIMIT, Cooldown())
            return refused.value, cooling, cooled
        finally:
            await limits.close()

    try:
        refused, cooling, cooled = asyncio.run(asyncio.wait_for(body(), 30))
    finally:
        server.stop()
    assert refused.status == 503 and refused.retry is True and "Redis" in refused.message  # a limit is never skipped
    assert cooling == {} and cooled == 0.0  # cooldowns fail open: every deployment is tried
    rows = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT id FROM requests").fetchall()
    assert rows == [("a",)]  # the finished call is on record
