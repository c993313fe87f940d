"""Budgets and rate limits per gateway key, and the cooldowns of route deployments: the rules, and their SQLite
backend (one replica; its workers share the ledger file). `engine.gateway.redis_state` is the Redis backend
(every replica shares one Redis).

Admission is one atomic step (a SQLite write transaction here, a Lua script in Redis) that checks every limit of
the key and, when all pass, records the request:

- ``rpm``: requests in the last 60 seconds (a sliding log), counted at admission;
- ``tpm``: input + output tokens in the last 60 seconds, counted when a call ends (a call is admitted while the
  last minute's tokens are under the limit);
- ``budget``: a call is admitted while the period's spend plus the *holds* of calls in flight is under the
  budget. A hold is the call's estimated cost (its input at the model's price, plus ``max_tokens`` of output when
  given), taken at admission and released when the call's real cost is charged; so concurrent calls cannot all
  slip under the limit at once, and the spend can pass the budget by at most what calls in flight add beyond
  their estimates. Holds of a process that died expire after `HOLD_SECONDS`.

Spend is counted in nano-USD integers (exact sums). Periods are UTC calendar days, ISO weeks and months.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..errors import ErrorKind
from ..router import Cooldown, Cooldowns
from .problems import BUDGET, Problem

if TYPE_CHECKING:
    from .keys import GatewayKey
    from .ledger import Entry, Ledger

HOLD_SECONDS = 900.0
WINDOW = 60.0
NANO = 1_000_000_000


def nano(usd: float | None) -> int:
    return 0 if usd is None or not usd > 0 else round(usd * NANO)


def period(kind: str, now: float) -> tuple[str, float | None]:
    """The id of the budget period holding ``now`` and when it ends (unix seconds; ``None`` for ``total``)."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date()
    if kind == "day":
        start, end = day, day + dt.timedelta(days=1)
        name = day.isoformat()
    elif kind == "week":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
        year, week, _ = day.isocalendar()
        name = f"{year}-W{week:02d}"
    elif kind == "month":
        start = day.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
        name = start.strftime("%Y-%m")
    else:
        return "total", None
    del start
    return name, dt.datetime.combine(end, dt.time(), dt.UTC).timestamp()


@dataclass(slots=True)
class Admission:
    """An admitted call: what it holds against the budget, and the rate-limit headers to send back."""

    key: str
    rid: str
    period: str | None = None
    period_end: float | None = None
    hold: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def refused(kind: str, limit: str, retry_after: float | None, key: str) -> Problem:
    if kind == BUDGET:
        return Problem(BUDGET, f"key {key!r} has spent its budget for this period", code="budget_exceeded",
                       retry=False)
    what = "requests" if limit == "rpm" else "tokens"
    return Problem(str(ErrorKind.RATE_LIMIT), f"key {key!r} reached its rate limit of {what} per minute ({limit})",
                   code="rate_limit_exceeded", retry_after=max(retry_after or 0.0, 0.001), retry=True)


def ratelimit_headers(key: GatewayKey, used_requests: int) -> list[tuple[bytes, bytes]]:
    if key.rpm is None:
        return []
    return [(b"x-ratelimit-limit-requests", b"%d" % key.rpm),
            (b"x-ratelimit-remaining-requests", b"%d" % max(key.rpm - used_requests, 0))]


class Limits(Protocol):
    """Where budgets and rate limits live."""

    cooldowns: Cooldowns

    async def admit(self, key: GatewayKey, rid: str, hold: int) -> Admission:
        """Check every limit of ``key`` and record the call, atomically; raises `Problem` when one is reached."""

    async def finish(self, entry: Entry, key: GatewayKey | None, admission: Admission | None) -> None:
        """Commit the ledger entry, charge its cost and tokens, release the hold."""

    async def spent(self, key: GatewayKey) -> float:
        """What ``key`` has spent in its current budget period, in USD."""

    async def close(self) -> None:
        ...


class LocalLimits:
    """Budgets, rate limits and cooldowns in the ledger's SQLite file: exact for every worker of one replica."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.cooldowns: Cooldowns = CachedCooldowns(SQLiteCooldowns(ledger))

    async def admit(self, key: GatewayKey, rid: str, hold: int) -> Admission:
        now = time.time()
        admission = Admission(key.name, rid)
        if key.budget is not None:
            admission.period, admission.period_end = period(key.budget.period, now)
            admission.hold = hold

        def run(db: sqlite3.Connection) -> Problem | int:
            used = 0
            if key.rpm is not None:
                db.execute("DELETE FROM hits WHERE key = ? AND t <= ?", (key.name, now - WINDOW))
                used, oldest = db.execute("SELECT COUNT(*), MIN(t) FROM hits WHERE key = ?", (key.name,)).fetchone()
                if used >= key.rpm:
                    return refused("rate_limit", "rpm", oldest + WINDOW - now, key.name)
            if key.tpm is not None:
                db.execute("DELETE FROM tokens WHERE key = ? AND t <= ?", (key.name, now - WINDOW))
                tokens, oldest = db.execute("SELECT COALESCE(SUM(n), 0), MIN(t) FROM tokens WHERE key = ?",
                                            (key.name,)).fetchone()
                if tokens >= key.tpm:
                    return refused("rate_limit", "tpm", oldest + WINDOW - now, key.name)
            if key.budget is not None:
                db.execute("DELETE FROM holds WHERE key = ? AND expires <= ?", (key.name, now))
                row = db.execute("SELECT nano FROM spend WHERE key = ? AND period = ?",
                                 (key.name, admission.period)).fetchone()
                held = db.execute("SELECT COALESCE(SUM(nano), 0) FROM holds WHERE key = ?", (key.name,)).fetchone()[0]
                if (row[0] if row else 0) + held >= nano(key.budget.usd):
                    return refused(BUDGET, "budget", None, key.name)
                if hold > 0:
                    db.execute("INSERT OR REPLACE INTO holds VALUES (?, ?, ?, ?)",
                               (rid, key.name, hold, now + HOLD_SECONDS))
            if key.rpm is not None:
                db.execute("INSERT INTO hits VALUES (?, ?)", (key.name, now))
            return used + 1

        result = await self.ledger.write(run)
        if isinstance(result, Problem):
            raise result
        admission.headers = ratelimit_headers(key, result)
        return admission

    async def finish(self, entry: Entry, key: GatewayKey | None, admission: Admission | None) -> None:
        if admission is None or key is None:
            await self.ledger.add(entry)
            return
        cost, tokens = nano(entry.cost_usd), (entry.input_tokens or 0) + (entry.output_tokens or 0)

        def charge(db: sqlite3.Connection) -> None:
            if admission.period is not None:
                if cost:
                    db.execute("INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (key, period) DO UPDATE SET "
                               "nano = nano + excluded.nano", (admission.key, admission.period, cost))
                if admission.hold:
                    db.execute("DELETE FROM holds WHERE id = ?", (admission.rid,))
            if key.tpm is not None and tokens:
                db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (admission.key, time.time(), tokens))

        await self.ledger.add(entry, charge)

    async def spent(self, key: GatewayKey) -> float:
        if key.budget is None:
            return 0.0
        name, _ = period(key.budget.period, time.time())
        row = self.ledger.db.execute("SELECT nano FROM spend WHERE key = ? AND period = ?", (key.name, name)).fetchone()
        return (row[0] if row else 0) / NANO

    async def close(self) -> None:
        pass


class SQLiteCooldowns:
    """Cooldowns in the ledger file, shared by the replica's workers."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def cooling(self, ids: Sequence[str]) -> dict[str, float]:
        now = time.time()
        marks = ", ".join("?" * len(ids))
        rows = self.ledger.db.execute(f"SELECT id, until FROM cooldowns WHERE until > ? AND id IN ({marks})",
                                      (now, *ids)).fetchall()
        return {id_: until - now for id_, until in rows}

    async def failed(self, id: str, kind: ErrorKind, policy: Cooldown) -> float:
        now = time.time()

        def run(db: sqlite3.Connection) -> float:
            db.execute("DELETE FROM failures WHERE id = ? AND t <= ?", (id, now - policy.window))
            db.execute("INSERT INTO failures VALUES (?, ?)", (id, now))
            count = db.execute("SELECT COUNT(*) FROM failures WHERE id = ?", (id,)).fetchone()[0]
            if policy.seconds > 0 and (kind is ErrorKind.RATE_LIMIT or count >= policy.fails):
                db.execute("DELETE FROM failures WHERE id = ?", (id,))
                db.execute("INSERT OR REPLACE INTO cooldowns VALUES (?, ?)", (id, now + policy.seconds))
                return policy.seconds
            return 0.0

        return await self.ledger.write(run)


class CachedCooldowns:
    """Reads of a shared cooldown store, kept for ``refresh`` seconds (a route's calls do not each ask); a cooldown
    this process starts is seen at once, one another replica starts within ``refresh``."""

    def __init__(self, inner: Cooldowns, refresh: float = 0.5) -> None:
        self.inner, self.refresh = inner, refresh
        self._seen: dict[tuple[str, ...], tuple[float, dict[str, float]]] = {}  # ids -> (when read, id -> until)

    async def cooling(self, ids: Sequence[str]) -> dict[str, float]:
        now = time.monotonic()
        group = tuple(sorted(ids))
        seen = self._seen.get(group)
        if seen is None or now - seen[0] > self.refresh:
            left = await self.inner.cooling(list(group))
            seen = (now, {id_: now + seconds for id_, seconds in left.items()})
            self._seen[group] = seen
        return {id_: until - now for id_, until in seen[1].items() if until > now}

    async def failed(self, id: str, kind: ErrorKind, policy: Cooldown) -> float:
        seconds = await self.inner.failed(id, kind, policy)
        if seconds > 0:
            until = time.monotonic() + seconds
            for group, (_, marks) in self._seen.items():
                if id in group:
                    marks[id] = until
        return seconds


def estimate(price_in: float | None, price_out: float | None, size: int, max_tokens: int | None) -> int:
    """A call's estimated cost in nano-USD: its input (about 4 characters a token) and ``max_tokens`` of output, at
    USD-per-million-token prices."""
    tokens_in = math.ceil(size / 4)
    usd = tokens_in * (price_in or 0) / 1e6 + (max_tokens or 0) * (price_out or 0) / 1e6
    return nano(usd)
