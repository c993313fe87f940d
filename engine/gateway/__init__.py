"""The gateway: every provider behind one OpenAI- and Anthropic-compatible HTTP server (``genai serve``).

One module per concept: `config` (the YAML file), `keys` (hashed gateway keys), `calls`, `openai_api` and
`anthropic_api` (each API's requests and replies, pure), `problems` (errors and their status codes), `limits`
(budgets, rate limits, cooldowns; the SQLite backend), `redis_state` (the Redis backend), `ledger` (the SQLite
ledger and ``genai usage``), `metrics`, `logs`, `state` (putting the parts together), `app` (the ASGI app) and
`serve` (uvicorn, workers). Routing, fallbacks and cooldowns are the library's own `engine.router`.

Starlette, uvicorn and prometheus_client (the ``server`` extra) and redis (the ``redis`` extra) are imported only
when a gateway starts; importing this package or reading a config does not need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "GatewayConfig": "config", "load_config": "config",
    "Gateway": "app", "create_app": "app",
    "serve": "serve",
    "hash_key": "keys", "new_key": "keys",
    "usage": "ledger",
}
__all__ = ["Gateway", "GatewayConfig", "create_app", "hash_key", "load_config", "new_key", "serve", "usage"]

if TYPE_CHECKING:
    from .app import Gateway, create_app
    from .config import GatewayConfig, load_config
    from .keys import hash_key, new_key
    from .ledger import usage
    from .serve import serve


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
