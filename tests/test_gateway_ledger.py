"""The ledger: one row per request in a real SQLite file, usage summed over several replicas' files, and writes
that wait for another worker's lock without blocking the event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from engine.gateway.ledger import Entry, Ledger, usage

DAY1 = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp()
DAY2 = dt.datetime(2026, 12, 2, 23, 30, tzinfo=dt.UTC).timestamp()


def entry(rid: str, ts: float, key: str, provider: str, model: str, cost: float | None, *, status: int = 200,
          error: str | None = None, tokens: tuple[int, int] = (10, 5)) -> Entry:
    return Entry(id=rid, ts=ts, key=key, api="openai", model=f"{provider}/{model}", stream=False, status=status,
                 provider=provider, served_model=model, error_kind=error, input_tokens=tokens[0],
                 output_tokens=tokens[1], cost_usd=cost, latency_ms=12.5)


def fill(path: Path, entries: list[Entry]) -> None:
    async def go() -> None:
        ledger = Ledger(path)
        for item in entries:
            await ledger.add(item)
        ledger.close()

    asyncio.run(go())


@pytest.fixture
def replicas(tmp_path: Path) -> list[Path]:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    fill(a, [entry("1", DAY1, "team", "openai", "gpt-4o", 0.01), entry("2", DAY1, "team", "openai", "gpt-4o", 0.02),
             entry("3", DAY2, "ci", "anthropic", "claude-haiku-4-5", 0.005),
             entry("4", DAY2, "ci", "openai", "gpt-4o", None, status=429, error="budget", tokens=(0, 0))])
    fill(b, [entry("5", DAY2, "team", "openai", "gpt-4o", 0.03),
             entry("6", DAY2, "team", "ollama", "llama3.2", None)])
    return [a, b]


def test_usage_by_key_over_several_files(replicas: list[Path]) -> None:
    assert usage(replicas, ["key"]) == [
        {"key": "ci", "requests": 2, "errors": 1, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.005,
         "unpriced": 0},
        {"key": "team", "requests": 4, "errors": 0, "input_tokens": 40, "output_tokens": 20, "cost_usd": 0.06,
         "unpriced": 1},
    ]


def test_usage_by_provider_model_and_day_with_filters(replicas: list[Path]) -> None:
    rows = usage(replicas, ["day", "provider", "model"], since=dt.date(2026, 12, 2))
    assert [(r["day"], r["provider"], r["model"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("2026-12-02", "anthropic", "claude-haiku-4-5", 1, 0.005),
        ("2026-12-02", "ollama", "llama3.2", 1, 0.0),
        ("2026-12-02", "openai", "gpt-4o", 2, 0.03)]
    assert usage(replicas, [], until=dt.date(2026, 12, 1)) == [
        {"requests": 2, "errors": 0, "input_tokens": 20, "output_tokens": 10, "cost_usd": 0.03, "unpriced": 0}]
    assert [r["requests"] for r in usage(replicas, ["day"], key="team")] == [2, 2]
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        usage(replicas, ["colour"])


def test_a_row_holds_what_the_request_was_and_no_messages_unless_asked(tmp_path: Path) -> None:
    fill(tmp_path / "l.db", [entry("r1", DAY1, "team", "openai", "gpt-4o", 0.01)])
    db = sqlite3.connect(tmp_path / "l.db")
    db.row_factory = sqlite3.Row
    row = dict(db.execute("SELECT * FROM requests").fetchone())
    assert row["id"] == "r1" and row["day"] == "2026-12-01" and row["key"] == "team" and row["status"] == 200
    assert row["messages"] is None and row["reply"] is None
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_write_waits_for_another_workers_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    Ledger(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker in the middle of a write

    async def go() -> tuple[int, bool]:
        ledger = Ledger(path)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.ensure_future(tick())
        write = asyncio.ensure_future(ledger.add(entry("w", DAY1, "team", "openai", "gpt-4o", 0.01)))
        await asyncio.sleep(0.2)
        waiting = not write.done()
        other.execute("COMMIT")
        await asyncio.wait_for(write, 5)
        ticker.cancel()
        found = "w" in ledger.ids()
        ledger.close()
        assert found
        return ticks, waiting

    ticks, waiting = asyncio.run(go())
    assert waiting and ticks >= 20  # the loop ran on while the write waited
