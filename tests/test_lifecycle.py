"""Model lifecycle: past `deprecated` a call warns, past `retired` it fails before sending unless the provider
still answers (`retired_calls: warn`) or the user allows it; the catalog's cost examples from the issue."""

from __future__ import annotations

import asyncio
import datetime
import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine import CompletionRequest, ErrorKind
from engine.lifecycle import notice, status
from engine.pricing import Usage
from engine.registry import Registry
from engine.spec import ModelInfo

from .conftest import make_settings, replay

D = Decimal
M = D(1_000_000)
DAY = datetime.date


def test_the_lifecycle_rule_by_date() -> None:
    info = ModelInfo(id="gpt-5", deprecated=DAY(2026, 6, 11), retired=DAY(2026, 12, 11), replacement="gpt-6.1-sol",
                     notice="https://developers.openai.com/api/docs/deprecations")
    assert notice("openai", info, False, DAY(2026, 6, 10)) == (None, None)
    warning, error = notice("openai", info, False, DAY(2026, 6, 11))
    assert error is None and warning is not None
    assert "deprecated since 2026-06-11 and retires on 2026-12-11; use gpt-6.1-sol" in warning
    warning, error = notice("openai", info, False, DAY(2026, 12, 11))  # the retirement day itself
    assert warning is None and error is not None and "was retired on 2026-12-11" in error
    warning, error = notice("openai", info, True, DAY(2026, 12, 11))  # GENAI_ALLOW_RETIRED
    assert error is None and warning is not None
    assert status(info, DAY(2026, 12, 1)) == "deprecated 2026-06-11, retires 2026-12-11 (use gpt-6.1-sol)"
    assert status(info, DAY(2027, 1, 1)) == "retired 2026-12-11 (use gpt-6.1-sol)"
    with pytest.raises(ValueError, match="'retired' is before 'deprecated'"):
        ModelInfo(id="x", deprecated=DAY(2026, 2, 1), retired=DAY(2026, 1, 1))


def _reply() -> bytes:
    return json.dumps({"id": "msg", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                       "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                       "usage": {"input_tokens": 10, "output_tokens": 2}}).encode()


@pytest.mark.parametrize("stream", [False, True])
def test_a_retired_model_fails_before_anything_is_sent(stream: bool) -> None:
    # claude-sonnet-4-5 retired on 2026-11-30: the replayed server would answer, so a failure means nothing went out.
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="claude-sonnet-4-5",
                                stream=stream)
    result = asyncio.run(replay(Registry(make_settings()), "anthropic", request, 200, _reply(), stream=stream)) \
        if not stream else _stream_failure(request)
    assert not result.success and result.error_kind is ErrorKind.NOT_FOUND
    assert "anthropic/claude-sonnet-4-5 was retired on 2026-11-30; use claude-sonnet-5-5" in (result.error or "")


def _stream_failure(request: CompletionRequest) -> object:
    async def run() -> object:
        provider = Registry(make_settings()).create("anthropic")
        stream = provider.stream_complete(request)
        assert [delta async for delta in stream] == []
        return stream.response

    return asyncio.run(run())


def test_allow_retired_sends_the_call_with_a_warning() -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="claude-sonnet-4-5")
    result = asyncio.run(replay(Registry(make_settings(allow_retired=True)), "anthropic", request, 200, _reply()))
    assert result.success and result.warnings[0].startswith("anthropic/claude-sonnet-4-5 was retired on 2026-11-30")


def test_a_model_the_provider_still_answers_after_retirement_warns(tmp_path: Path) -> None:
    # gemini-2.5-pro: Google routes it to gemini-3.8-flash; the reply names that model, and it is priced.
    body = json.dumps({"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"},
                                       "finishReason": "STOP"}],
                       "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 100},
                       "modelVersion": "gemini-3.8-flash"}).encode()
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="gemini-2.5-pro")
    result = asyncio.run(replay(Registry(make_settings()), "gemini", request, 200, body))
    assert result.success and "gemini/gemini-2.5-pro was retired on 2026-12-01" in result.warnings[0]
    assert result.model == "gemini-3.8-flash"
    today = datetime.datetime.now(datetime.UTC).date()
    rates = (D("0.75"), D("3.75")) if today <= DAY(2026, 12, 31) else (D("1.50"), D("7.50"))
    assert result.cost_usd == pytest.approx(float((1000 * rates[0] + 100 * rates[1]) / M), abs=1e-15)


# -- the examples, on the bundled catalog -------------------------------------------------------------

REGISTRY = Registry(make_settings())
NOON = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def cost(provider: str, model: str, usage: Usage, at: datetime.datetime = NOON, tier: str | None = None) -> Decimal:
    quote = REGISTRY.prices.quote(REGISTRY.spec(provider), model)
    value = quote.cost(usage, at, tier)
    assert value is not None
    return value


@pytest.mark.parametrize(("provider", "model", "expected"), [
    # A 1M-token prompt, 600k of it from the cache, 2k output: the undercharged examples.
    ("gemini", "gemini-2.5-pro", (400_000 * D("2.50") + 600_000 * D("0.25") + 2_000 * 15) / M),       # 1.18
    ("anthropic", "claude-sonnet-4-5", (400_000 * 6 + 600_000 * D("0.60") + 2_000 * D("22.50")) / M),  # 2.805
    ("xai", "grok-4.3", (400_000 * D("2.50") + 600_000 * D("0.40") + 2_000 * 5) / M),                 # 1.25
])
def test_long_prompts_cost_what_the_bill_says(provider: str, model: str, expected: Decimal) -> None:
    assert cost(provider, model, Usage(1_000_000, 2_000, 600_000)) == expected
    assert expected in (D("1.18"), D("2.805"), D("1.25"))


def test_cache_reads_of_the_models_that_had_no_cached_price() -> None:
    usage = Usage(100_000, 0, 80_000)
    assert cost("gemini", "gemini-3.5-flash-lite", usage) == (20_000 * D("0.30") + 80_000 * D("0.03")) / M
    assert cost("together", "Qwen/Qwen3.5-397B-A17B", usage) == (20_000 * D("0.60") + 80_000 * D("0.35")) / M


def test_deepseek_weekends_are_off_peak_and_gemini_launch_prices_end() -> None:
    usage = Usage(1_000_000, 10_000)
    saturday_peak_hour = datetime.datetime(2026, 12, 5, 2, 0, tzinfo=datetime.UTC)
    monday_peak_hour = datetime.datetime(2026, 12, 7, 2, 0, tzinfo=datetime.UTC)
    off_peak, peak = (1_000_000 * D("0.15") + 10_000 * D("0.60")) / M, (1_000_000 * D("0.30") + 10_000 * D("1.20")) / M
    assert cost("deepseek", "deepseek-flash", usage, saturday_peak_hour) == off_peak
    assert cost("deepseek", "deepseek-flash", usage, monday_peak_hour) == peak
    last = datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
    first = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    assert cost("gemini", "gemini-3.7-flash", usage, last) == (1_000_000 * D("0.75") + 10_000 * D("3.75")) / M
    assert cost("gemini", "gemini-3.7-flash", usage, first) == (1_000_000 * D("1.50") + 10_000 * D("7.50")) / M


def test_openai_service_tiers_and_anthropic_one_hour_writes_on_the_catalog() -> None:
    usage = Usage(10_000, 1_000, 4_000)
    assert cost("openai", "gpt-6-sol", usage, tier="flex") == (6_000 * 1 + 4_000 * D("0.1") + 1_000 * 5) / M
    assert cost("openai", "gpt-6-sol", usage, tier="priority") == (6_000 * 4 + 4_000 * D("0.4") + 1_000 * 20) / M
    writes = Usage(2_000, 100, 500, cache_write_tokens=1_000, cache_write_1h_tokens=400)
    assert cost("anthropic", "claude-sonnet-5-5", writes) == (
        500 * 2 + 500 * D("0.10") + 600 * D("2.50") + 400 * 4 + 100 * 10) / M
