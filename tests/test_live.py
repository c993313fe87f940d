"""Real calls to real providers, one per bundled HTTP provider; each runs only when its API key is set.

    GROQ_API_KEY=... pytest -m live tests/test_live.py
"""

from __future__ import annotations

import pytest

from engine import Engine, Settings
from engine.registry import Registry

REGISTRY = Registry(Settings())
PAID = [n for n in REGISTRY.names() if not REGISTRY.spec(n).local and REGISTRY.spec(n).backend is None
        and REGISTRY.spec(n).default_model and REGISTRY.spec(n).auth.type != "none"]


def key_is_set(name: str) -> bool:
    settings = Settings()
    return settings.api_key(name, REGISTRY.spec(name).key_env) is not None


@pytest.mark.live
@pytest.mark.parametrize("provider", PAID)
def test_real_call(provider: str) -> None:
    if not key_is_set(provider):
        pytest.skip(f"set {' or '.join(REGISTRY.spec(provider).key_env)} to run")
    with Engine() as engine:
        reply = engine.complete(provider, "Reply with the single word: pong", max_tokens=400, temperature=0)
        assert reply.success, reply.error
        assert "pong" in reply.content.lower()
        assert reply.input_tokens and reply.output_tokens
        stream = engine.stream(provider, "Count from 1 to 5, digits separated by spaces.", max_tokens=400)
        text = "".join(stream)
        assert stream.response is not None and stream.response.success, stream.response
        assert "3" in text and stream.response.content == text


@pytest.mark.live
def test_seed_groq_example() -> None:
    if not key_is_set("groq"):
        pytest.skip("set GROQ_API_KEY to run")
    with Engine() as engine:
        reply = engine.complete("groq/llama-3.3-70b-versatile", "Say hello.", max_tokens=20)
        assert reply.success and reply.cost_usd is not None and reply.cost_usd > 0
