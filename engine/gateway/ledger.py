"""The ledger: one SQLite file per replica holding a row per request (key, model, tokens, cost, status, time).

A request's row is committed before the last byte of its reply is sent, so a request a client saw complete is
in the ledger even if the process is killed a moment later (WAL, ``synchronous=NORMAL``: a killed process loses
nothing committed; ``durable: true`` makes every commit an fsync, for power loss). Message content is kept only
when the config asks (``state.log_messages``). Without Redis the same file also holds budgets, rate limits and
cooldowns (`engine.gateway.limits`), shared by the replica's worker processes.

Writes never block the event loop on a lock another worker holds: a busy database is retried with an
``asyncio.sleep`` in between. `usage` sums rows by key, provider, model and day, over one or many files
(``genai usage``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    key TEXT NOT NULL,
    api TEXT NOT NULL,
    model TEXT NOT NULL,
    route TEXT,
    provider TEXT,
    served_model TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error_kind TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cached_input_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost_usd REAL,
    latency_ms REAL,
    messages TEXT,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS requests_day ON requests (day, key);
CREATE TABLE IF NOT EXISTS spend (key TEXT NOT NULL, period TEXT NOT NULL, nano INTEGER NOT NULL,
                                  PRIMARY KEY (key, period));
CREATE TABLE IF NOT EXISTS holds (id TEXT PRIMARY KEY, key TEXT NOT NULL, nano INTEGER NOT NULL,
                                  expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS holds_key ON holds (key, expires);
CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS hits_key ON hits (key, t);
CREATE TABLE IF NOT EXISTS tokens (key TEXT NOT NULL, t REAL NOT NULL, n INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_key ON tokens (key, t);
CREATE TABLE IF NOT EXISTS cooldowns (id TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failures (id TEXT NOT NULL, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_id ON failures (id, t);
"""

COLUMNS = ("id", "ts", "day", "key", "api", "model", "route", "provider", "served_model", "stream", "status",
           "error_kind", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost_usd",
           "latency_ms", "messages", "reply")
INSERT = f"INSERT OR REPLACE INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
GROUPS = {"key": "key", "provider": "provider", "model": "served_model", "day": "day", "route": "route",
          "api": "api"}
BUSY_SECONDS = 30.0


@dataclass(slots=True)
class Entry:
    """One request as the ledger keeps it."""

    id: str
    ts: float
    key: str
    api: str
    model: str
    stream: bool
    status: int
    route: str | None = None
    provider: str | None = None
    served_model: str | None = None
    error_kind: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    messages: str | None = None
    reply: str | None = None

    def row(self) -> tuple[Any, ...]:
        day = time.strftime("%Y-%m-%d", time.gmtime(self.ts))
        return (self.id, self.ts, day, self.key, self.api, self.model, self.route, self.provider, self.served_model,
                int(self.stream), self.status, self.error_kind, self.input_tokens, self.output_tokens,
                self.cached_input_tokens, self.reasoning_tokens, self.cost_usd, self.latency_ms, self.messages,
                self.reply)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Ledger:
    """The replica's SQLite file. Use one instance per process (and per event loop)."""

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # timeout=0: a lock held by another worker is waited for with asyncio.sleep, never by blocking the loop.
        self.db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        self._retry(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._retry(lambda: self.db.executescript(SCHEMA))

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run a statement at start-up, waiting out another worker's lock (blocking is fine before serving)."""
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction (``BEGIN IMMEDIATE``); a busy database is retried without blocking."""
        db = self.db
        delay, deadline = 0.0005, time.monotonic() + BUSY_SECONDS
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    async def add(self, entry: Entry, then: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Commit an entry (and ``then``'s statements in the same transaction)."""
        row = entry.row()

        def run(db: sqlite3.Connection) -> None:
            db.execute(INSERT, row)
            if then is not None:
                then(db)

        await self.write(run)

    def close(self) -> None:
        self.db.close()

    def ids(self) -> set[str]:
        """Every request id in the ledger (tests and audits)."""
        return {row[0] for row in self.db.execute("SELECT id FROM requests")}


def usage(paths: Iterable[str | Path], by: Sequence[str] = ("key",), *, since: dt.date | None = None,
          until: dt.date | None = None, key: str | None = None) -> list[dict[str, Any]]:
    """Requests, tokens, errors and cost summed by ``by`` (``key``, ``provider``, ``model``, ``day``, ``route``,
    ``api``) over ledger files; ``since``/``until`` are UTC days, both included."""
    unknown = [name for name in by if name not in GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {unknown[0]!r}: choose from {', '.join(GROUPS)}")
    columns = [GROUPS[name] for name in by]
    where, params = [], []
    if since is not None:
        where.append("day >= ?")
        params.append(since.isoformat())
    if until is not None:
        where.append("day <= ?")
        params.append(until.isoformat())
    if key is not None:
        where.append("key = ?")
        params.append(key)
    select = ", ".join(columns) + ", " if columns else ""
    sql = (f"SELECT {select}COUNT(*), SUM(error_kind IS NOT NULL), COALESCE(SUM(input_tokens), 0), "
           f"COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0), SUM(cost_usd IS NULL AND status = 200) "
           f"FROM requests{' WHERE ' + ' AND '.join(where) if where else ''}"
           f"{' GROUP BY ' + ', '.join(columns) if columns else ''}")
    totals: dict[tuple[Any, ...], list[float]] = {}
    for path in paths:
        db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=5)
        try:
            for row in db.execute(sql, params):
                group, figures = tuple(row[:len(columns)]), row[len(columns):]
                total = totals.setdefault(group, [0, 0, 0, 0, 0.0, 0])
                for i, value in enumerate(figures):
                    total[i] += value or 0
        finally:
            db.close()
    rows = []
    for group, (requests, errors, tokens_in, tokens_out, cost, unpriced) in totals.items():
        rows.append({**dict(zip(by, group, strict=True)), "requests": int(requests), "errors": int(errors),
                     "input_tokens": int(tokens_in), "output_tokens": int(tokens_out), "cost_usd": round(cost, 9),
                     "unpriced": int(unpriced)})
    rows.sort(key=lambda r: (*(str(r[name]) for name in by),))
    return rows
