"""httpx transports the engine could use under concurrency, keeping its httpx-based design.

The engine talks to ``httpx.AsyncClient`` only; its transport is the seam. These are the
candidates the benchmark measures against httpx's own pool (httpcore 1.x):

- `tuned_client`: httpx's pool with keep-alive as large as the connection limit;
- httpcore2's connection pool (the maintained fork that httpx2, and so the openai SDK, uses): the
  engine's default since this benchmark, in ``engine/transport.py``;
- ``httpx_aiohttp.AiohttpTransport`` (a small third-party package): aiohttp's connector.

httpx_aiohttp is optional (the ``bench`` extra); nothing imports it unless asked.
"""

from __future__ import annotations

from typing import Any

import httpx

MAX_CONNECTIONS = 1000
KEEPALIVE = 100


def default_limits() -> httpx.Limits:
    """The limits the engine's own client uses (engine.send.new_client) and the openai SDK's."""
    return httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=KEEPALIVE)


def tuned_client(**kw: Any) -> httpx.AsyncClient:
    """httpx with every connection kept alive: no close/reopen churn when many tasks finish at once."""
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    return httpx.AsyncClient(limits=limits, **kw)


def aiohttp_client(**kw: Any) -> httpx.AsyncClient:
    from httpx_aiohttp import AiohttpTransport

    return httpx.AsyncClient(transport=AiohttpTransport(limits=default_limits()), **kw)
