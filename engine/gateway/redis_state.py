"""Budgets, rate limits and cooldowns in Redis, shared by every gateway replica (``GENAI_REDIS_URL``).

The rules are those of `engine.gateway.limits`; here each step is one Lua script, so it is atomic across
replicas: admission checks ``rpm``, ``tpm`` and the budget and records the call in one step; settling charges
the cost and tokens and releases the hold in one step. Time is the Redis server's (``TIME``), so replicas'
clocks do not matter. Every key of one gateway key shares a hash tag (``genai:{name}:...``), so the scripts also
run on Redis Cluster.

Keys: ``genai:{name}:spend:<period>`` (nano-USD, expires a week after its period), ``genai:{name}:holds`` and
``:holdexp`` (calls in flight and when their holds lapse), ``genai:{name}:rpm`` (a sorted set of admissions),
``genai:{name}:tpm`` (tokens per second, last minute), ``genai:cool:<deployment>`` and ``genai:fail:<deployment>``.

The ledger stays in each replica's SQLite file; ``genai usage`` reads several files at once.

When Redis cannot be reached, admission fails closed (503: a budget or limit that cannot be checked is not
skipped) while calls of keys without limits go on; a cost that cannot be charged after a call is logged (the
call is in the ledger); cooldowns fail open (every deployment is tried). Commands time out after a few seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ErrorKind
from ..router import Cooldown, Cooldowns
from .limits import BUDGET, HOLD_SECONDS, NANO, Admission, CachedCooldowns, nano, period, ratelimit_headers, refused
from .problems import Problem

if TYPE_CHECKING:
    from .keys import GatewayKey
    from .ledger import Entry, Ledger

NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: spend, holds, holdexp, rpm, tpm. ARGV: budget nano (-1: none), rpm (-1), tpm (-1), hold nano, id, hold ms.
ADMIT = NOW + """
local budget, rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local hold, id, ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local used = 0
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 60000)
  used = redis.call('ZCARD', KEYS[4])
  if used >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {'rate_limit', 'rpm', tostring(tonumber(oldest[2]) + 60000 - now), used}
  end
end
if tpm >= 0 then
  local buckets = redis.call('HGETALL', KEYS[5])
  local stale, tokens, oldest = {}, 0, nil
  for i = 1, #buckets, 2 do
    local second = tonumber(buckets[i])
    if second * 1000 <= now - 60000 then
      table.insert(stale, buckets[i])
    else
      tokens = tokens + tonumber(buckets[i + 1])
      if oldest == nil or second < oldest then oldest = second end
    end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[5], unpack(stale)) end
  if tokens >= tpm then return {'rate_limit', 'tpm', tostring(oldest * 1000 + 61000 - now), used} end
end
if budget >= 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  for _, old in ipairs(expired) do
    local v = redis.call('HGET', KEYS[2], old)
    if v then
      redis.call('HINCRBY', KEYS[2], '_sum', -tonumber(v))
      redis.call('HDEL', KEYS[2], old)
    end
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
  local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
  local held = tonumber(redis.call('HGET', KEYS[2], '_sum') or '0')
  if spent + held >= budget then return {'budget', 'budget', '-1', used} end
  if hold > 0 then
    redis.call('HSET', KEYS[2], id, hold)
    redis.call('HINCRBY', KEYS[2], '_sum', hold)
    redis.call('ZADD', KEYS[3], now + ttl, id)
    redis.call('PEXPIRE', KEYS[2], ttl + 60000)
    redis.call('PEXPIRE', KEYS[3], ttl + 60000)
  end
end
if rpm >= 0 then
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('PEXPIRE', KEYS[4], 61000)
end
return {'ok', '', '0', used + 1}
"""

# KEYS: spend, holds, holdexp, tpm. ARGV: cost nano, id, tokens, spend expiry (unix s, -1: none).
SETTLE = NOW + """
local cost, id, tokens, expire = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if cost > 0 then
  redis.call('INCRBY', KEYS[1], cost)
  if expire > 0 then redis.call('EXPIREAT', KEYS[1], expire) end
end
local v = redis.call('HGET', KEYS[2], id)
if v then
  redis.call('HINCRBY', KEYS[2], '_sum', -tonumber(v))
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
if tokens > 0 then
  redis.call('HINCRBY', KEYS[4], tostring(math.floor(now / 1000)), tokens)
  redis.call('PEXPIRE', KEYS[4], 61000)
end
return 1
"""

# KEYS: fail, cool. ARGV: fails, window ms, cooldown ms, rate_limit (1/0), a unique member. Returns the cooldown
# ms started.
FAILED = NOW + """
local fails, window, seconds, at_once = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], window)
if seconds > 0 and (at_once or redis.call('ZCARD', KEYS[1]) >= fails) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', seconds)
  return seconds
end
return 0
"""


def client(url: str) -> Any:
    """An asyncio Redis client; the missing extra is named."""
    try:
        import redis.asyncio as redis
    except ImportError:
        raise ConfigError("GENAI_REDIS_URL is set but the redis package is not installed: "
                          "pip install 'genai-engine[redis]'") from None
    return redis.from_url(url, decode_responses=True, health_check_interval=30, socket_connect_timeout=2,
                          socket_timeout=5)


log = logging.getLogger("genai.gateway")


def _unreachable(exc: Exception) -> bool:
    """Whether ``exc`` is Redis being unreachable or failing (not a bug of ours)."""
    from redis.exceptions import RedisError

    return isinstance(exc, (RedisError, OSError, TimeoutError))


def unavailable() -> Problem:
    return Problem(str(ErrorKind.SERVER), "the gateway's shared state (Redis) is unreachable, so this key's limits "
                                          "cannot be checked; try again", status=503, retry=True)


def _keys(name: str) -> tuple[str, str, str, str, str]:
    tag = f"genai:{{{name}}}"
    return f"{tag}:spend", f"{tag}:holds", f"{tag}:holdexp", f"{tag}:rpm", f"{tag}:tpm"


class RedisLimits:
    """Budgets, rate limits and cooldowns in one Redis, for any number of replicas."""

    def __init__(self, url: str, ledger: Ledger) -> None:
        self.url = url
        self.redis = client(url)
        self.ledger = ledger
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(SETTLE)
        self.cooldowns: Cooldowns = CachedCooldowns(RedisCooldowns(self.redis))

    async def ping(self) -> None:
        await self.redis.ping()

    async def admit(self, key: GatewayKey, rid: str, hold: int) -> Admission:
        admission = Admission(key.name, rid)
        spend, holds, holdexp, rpm, tpm = _keys(key.name)
        budget = -1
        if key.budget is not None:
            admission.period, admission.period_end = period(key.budget.period, time.time())
            admission.hold = hold
            budget = nano(key.budget.usd)
            spend = f"{spend}:{admission.period}"
        try:
            result = await self._admit(keys=[spend, holds, holdexp, rpm, tpm], args=[
                budget, key.rpm if key.rpm is not None else -1, key.tpm if key.tpm is not None else -1,
                hold if key.budget is not None else 0, rid, int(HOLD_SECONDS * 1000)])
        except Exception as exc:
            if not _unreachable(exc):
                raise
            log.error({"event": "redis_unreachable", "id": rid, "step": "admit",
                       "error": f"{type(exc).__name__}: {exc}"})
            raise unavailable() from None
        verdict, limit, wait_ms, used = result
        if verdict != "ok":
            raise refused(BUDGET if verdict == "budget" else "rate_limit", limit,
                          float(wait_ms) / 1000 if float(wait_ms) >= 0 else None, key.name)
        admission.headers = ratelimit_headers(key, int(used))
        return admission

    async def finish(self, entry: Entry, key: GatewayKey | None, admission: Admission | None) -> None:
        await self.ledger.add(entry)  # the ledger first: a request that completed is on record whatever follows
        if admission is None or key is None:
            return
        cost, tokens = nano(entry.cost_usd), (entry.input_tokens or 0) + (entry.output_tokens or 0)
        if admission.period is None and not (key.tpm is not None and tokens):
            return
        spend, holds, holdexp, _, tpm = _keys(key.name)
        expire = -1 if admission.period_end is None else int(admission.period_end + 7 * 86400)
        try:
            await self._settle(keys=[f"{spend}:{admission.period}", holds, holdexp, tpm],
                               args=[cost if admission.period is not None else 0, admission.rid,
                                     tokens if key.tpm is not None else 0, expire])
        except Exception as exc:  # the call is done and in the ledger: its reply still goes out
            if not _unreachable(exc):
                raise
            log.error({"event": "redis_unreachable", "id": admission.rid, "step": "settle", "key": key.name,
                       "cost_usd": entry.cost_usd, "error": f"{type(exc).__name__}: {exc}"})

    async def spent(self, key: GatewayKey) -> float:
        if key.budget is None:
            return 0.0
        name, _ = period(key.budget.period, time.time())
        value = await self.redis.get(f"{_keys(key.name)[0]}:{name}")
        return int(value or 0) / NANO

    async def close(self) -> None:
        await self.redis.aclose()


class RedisCooldowns:
    """Deployment cooldowns in Redis: a key with an expiry per cooling deployment."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._failed = redis.register_script(FAILED)

    async def cooling(self, ids: Sequence[str]) -> dict[str, float]:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for id_ in ids:
                    pipe.pttl(f"genai:cool:{id_}")
                left = await pipe.execute()
        except Exception as exc:  # fail open: every deployment is tried
            if not _unreachable(exc):
                raise
            log.error({"event": "redis_unreachable", "step": "cooling", "error": f"{type(exc).__name__}: {exc}"})
            return {}
        return {id_: ms / 1000 for id_, ms in zip(ids, left, strict=True) if ms and ms > 0}

    async def failed(self, id: str, kind: ErrorKind, policy: Cooldown) -> float:
        try:
            ms = await self._failed(keys=[f"genai:fail:{id}", f"genai:cool:{id}"], args=[
                policy.fails, int(policy.window * 1000), int(policy.seconds * 1000),
                1 if kind is ErrorKind.RATE_LIMIT else 0, uuid.uuid4().hex])
        except Exception as exc:
            if not _unreachable(exc):
                raise
            log.error({"event": "redis_unreachable", "step": "failed", "error": f"{type(exc).__name__}: {exc}"})
            return 0.0
        return int(ms) / 1000
