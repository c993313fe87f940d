"""Property-based tests (hypothesis), bounded for CI: stream decoders on arbitrary bytes at arbitrary splits,
extraction over arbitrary JSON, rendering of arbitrary message content.

Invariants: nothing raises; a rendered body is valid JSON holding the user's content verbatim; a cost is
finite and >= 0; token counts are sane or absent.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import CompletionRequest
from engine.extract import extract_response, http_error
from engine.registry import Registry
from engine.stream import NDJSONDecoder, SSEDecoder, StreamState

from .conftest import make_settings

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PROVIDERS = ["openai", "anthropic", "gemini", "cohere", "ollama", "openai-responses"]

REGISTRY = Registry(make_settings())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_decoders_take_any_bytes_at_any_split(data: bytes, cuts: list[int]) -> None:
    for decoder_class in (SSEDecoder, NDJSONDecoder):
        whole = decoder_class()
        expected = whole.feed(data) + whole.close()
        pieces = decoder_class()
        got = [event for piece in splits(data, cuts) for event in pieces.feed(piece)] + pieces.close()
        assert got == expected  # where the chunks break never changes the events


@FAST
@given(st.sampled_from(PROVIDERS), st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_stream_state_never_raises_on_any_bytes(provider: str, data: bytes, cuts: list[int]) -> None:
    compiled = REGISTRY.compiled(provider)
    assert compiled.stream is not None
    state = StreamState(compiled.stream, compiled.spec.errors.kinds, secret="sk-test-SECRET")
    deltas = [d for piece in splits(data, cuts) for d in state.feed(piece)] + state.close()
    assert "".join(d for d in deltas if isinstance(d, str)) == state.content  # text deltas are plain strings


@FAST
@given(st.sampled_from(PROVIDERS), st.lists(json_values, max_size=3))
def test_stream_state_never_raises_on_any_json_events(provider: str, events: list[Any]) -> None:
    compiled = REGISTRY.compiled(provider)
    assert compiled.stream is not None
    body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
    state = StreamState(compiled.stream, compiled.spec.errors.kinds)
    state.feed(body)
    state.close()
    assert isinstance(state.content, str)


@FAST
@given(st.sampled_from(PROVIDERS), json_values)
def test_extraction_over_any_json(provider: str, payload: Any) -> None:
    compiled = REGISTRY.compiled(provider)
    extracted = extract_response(compiled, payload)
    assert extracted.content is None or isinstance(extracted.content, str)
    for count in (extracted.usage.input_tokens, extracted.usage.output_tokens, extracted.usage.cached_input_tokens):
        assert count is None or (isinstance(count, int) and count >= 0)
    assert extracted.cost is None or (math.isfinite(extracted.cost) and extracted.cost >= 0)
    http_error(compiled, 400, json.dumps(payload).encode(), "sk-test-SECRET")


@FAST
@given(st.sampled_from(PROVIDERS), st.dictionaries(
    st.sampled_from(["prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "cost",
                     "cached_tokens"]),
    st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5), max_size=5))
def test_any_usage_numbers_give_a_finite_non_negative_cost(provider: str, usage: dict[str, Any]) -> None:
    import asyncio

    from engine.testing import replay_client

    bodies = {
        "openai": {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}], "usage": usage},
        "anthropic": {"content": [{"type": "text", "text": "x"}], "stop_reason": "end_turn", "usage": usage},
        "gemini": {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}],
                   "usageMetadata": usage},
        "cohere": {"message": {"content": [{"text": "x"}]}, "finish_reason": "COMPLETE",
                   "usage": {"billed_units": usage}},
        "ollama": {"message": {"content": "x"}, "done": True, **usage},
        "openai-responses": {"status": "completed", "output": [{"type": "message", "content": [
            {"type": "output_text", "text": "x"}]}], "usage": {**usage, "input_tokens_details": usage}},
    }

    async def go() -> Any:
        client, _ = replay_client(200, json.dumps(bodies[provider]).encode())
        async with client, REGISTRY.create(provider, http_client=client) as instance:
            return await instance.complete(CompletionRequest(messages=[{"role": "user", "content": "x"}],
                                                             model="gpt-4o" if provider == "openai" else None))

    response = asyncio.run(go())
    assert response.success
    assert response.cost_usd is None or (math.isfinite(response.cost_usd) and response.cost_usd >= 0)


@FAST
@given(st.sampled_from(PROVIDERS), st.text(max_size=200), st.text(max_size=50))
def test_rendering_keeps_any_content_verbatim(provider: str, content: str, system: str) -> None:
    request = CompletionRequest(messages=[{"role": "system", "content": system or "s"},
                                          {"role": "user", "content": content}],
                                model=None if provider != "openai" else "gpt-4o")
    rendered = REGISTRY.create(provider).render(request)  # type: ignore[attr-defined]
    body = json.loads(rendered.content)  # always valid JSON, lone surrogates included
    assert content in set(strings_in(body))  # the user's text is one of the body's values, unchanged


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "{{ 7*7 }}", "\x00\x1f\u2028", '"}, "model": "x'])
def test_rendering_hard_strings(text: str) -> None:
    rendered = REGISTRY.create("openai").render(  # type: ignore[attr-defined]
        CompletionRequest(messages=[{"role": "user", "content": text}], model="gpt-4o"))
    assert json.loads(rendered.content)["messages"][0]["content"] == text
