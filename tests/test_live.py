"""Real calls to real providers, one per bundled HTTP provider; each runs only when it is configured.

A hosted provider runs when its API key is set (e.g. ``GROQ_API_KEY``); a local server (ollama, vllm,
llama.cpp, LM Studio) when ``GENAI_<NAME>_BASE_URL`` points at a running one; Azure OpenAI when its key,
``AZURE_OPENAI_RESOURCE`` and ``GENAI_LIVE_AZURE_OPENAI_MODEL`` (a deployment name) are set; a provider signed in by
an auth hook (vertex-*, azure-openai-entra) when its required config is set (``GENAI_VERTEX_GEMINI_PROJECT``, ...)
and the hook finds credentials (Application Default Credentials, ``az login``, or a ``..._ACCESS_TOKEN``).
``GENAI_LIVE_<NAME>_MODEL`` picks another model than the provider's default.

    GROQ_API_KEY=... pytest -m live tests/test_live.py
"""

from __future__ import annotations

import pytest

from engine import Engine, Settings
from engine.registry import Registry
from engine.spec import env_name

REGISTRY = Registry(Settings())
HTTP = [name for name in REGISTRY.names() if REGISTRY.spec(name).backend is None]


def live_model(provider: str) -> str | None:
    """The model to call, or None when the provider is not configured for live calls here."""
    settings, spec = Settings(), REGISTRY.spec(provider)
    if spec.local or spec.auth.type == "none":
        if not settings.env(env_name(provider, "BASE_URL")):
            return None
    elif spec.auth.type == "hook":
        pass  # configured when its required config is (below); the hook finds the credentials
    elif settings.api_key(provider, spec.key_env) is None:
        return None
    if any(var.required and not settings.env(env_name(provider, key)) and not any(settings.env(e) for e in var.env)
           for key, var in spec.config.items()):
        return None
    return settings.env(f"GENAI_LIVE_{env_name(provider, 'MODEL')[6:]}") or spec.default_model


@pytest.mark.live
@pytest.mark.parametrize("provider", HTTP)
def test_real_call(provider: str) -> None:
    model = live_model(provider)
    if model is None:
        spec = REGISTRY.spec(provider)
        how = " or ".join(spec.key_env) if not spec.local else env_name(provider, "BASE_URL")
        if spec.auth.type == "hook":
            how = " and ".join(env_name(provider, key) for key, var in spec.config.items() if var.required)
        pytest.skip(f"not configured for live calls: set {how} (see this module's docstring)")
    with Engine() as engine:
        reply = engine.complete(f"{provider}/{model}", "Reply with the single word: pong", max_tokens=400,
                                temperature=0)
        assert reply.success, reply.error
        assert "pong" in reply.content.lower()
        assert reply.input_tokens and reply.output_tokens
        stream = engine.stream(f"{provider}/{model}", "Count from 1 to 5, digits separated by spaces.",
                               max_tokens=400)
        text = "".join(stream)
        assert stream.response is not None and stream.response.success, stream.response
        assert "3" in text and stream.response.content == text


@pytest.mark.live
def test_seed_groq_example() -> None:
    if live_model("groq") is None:
        pytest.skip("set GROQ_API_KEY to run")
    with Engine() as engine:
        reply = engine.complete("groq/llama-3.3-70b-versatile", "Say hello.", max_tokens=20)
        assert reply.success and reply.cost_usd is not None and reply.cost_usd > 0
