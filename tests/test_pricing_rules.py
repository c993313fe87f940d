"""Every pricing rule with a hand-computed cost: prompt-size tiers (both cliff rules), time windows, effective
dates, service tiers, cache lifetimes; the boundaries of each; and overrides merged field by field.

Expected costs are written as the sum a person would do, in USD per million tokens, so that a wrong rule
cannot agree with itself.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine import ProviderFileError
from engine.pricing import ModelPricing, PriceTable, Usage, cost_of
from engine.spec import Price

D = Decimal
M = D(1_000_000)
UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def pricing(*periods: dict[str, object]) -> ModelPricing:
    return ModelPricing([Price.model_validate(period) for period in periods])


# -- prompt-size tiers ---------------------------------------------------------------------------------------

GEMINI_25_PRO = pricing({"input": 1.25, "cached_input": 0.125, "output": 10,
                         "tiers": [{"above": 200_000, "input": 2.50, "cached_input": 0.25, "output": 15}]})
GROK_43 = pricing({"input": 1.25, "cached_input": 0.20, "output": 2.50,
                   "tiers": [{"at_least": 200_000, "input": 2.50, "cached_input": 0.40, "output": 5.00}]})


def test_a_prompt_past_the_tier_is_billed_whole_at_the_tier_rates() -> None:
    # The example: a 1M-token prompt, 600k of it read from the cache, 2,000 output tokens.
    usage = Usage(1_000_000, 2_000, 600_000)
    assert GEMINI_25_PRO.cost(usage) == (400_000 * D("2.50") + 600_000 * D("0.25") + 2_000 * 15) / M == D("1.18")
    assert GROK_43.cost(usage) == (400_000 * D("2.50") + 600_000 * D("0.40") + 2_000 * 5) / M == D("1.25")


def test_above_threshold_is_exclusive_at_least_is_inclusive() -> None:
    # Gemini: "prompts <= 200k" at the base rate, so exactly 200,000 is base; 200,001 is the tier.
    assert GEMINI_25_PRO.cost(Usage(200_000, 1_000)) == (200_000 * D("1.25") + 1_000 * 10) / M
    assert GEMINI_25_PRO.cost(Usage(200_001, 1_000)) == (200_001 * D("2.50") + 1_000 * 15) / M
    # xAI: a prompt that reaches 200k is billed at the higher rate.
    assert GROK_43.cost(Usage(199_999, 1_000)) == (199_999 * D("1.25") + 1_000 * D("2.50")) / M
    assert GROK_43.cost(Usage(200_000, 1_000)) == (200_000 * D("2.50") + 1_000 * 5) / M


def test_cached_and_written_tokens_count_toward_the_prompt_size() -> None:
    # 150k fresh + 60k read from the cache = 210k: past 200k, so every token is at the tier rate.
    usage = Usage(210_000, 10, cached_input_tokens=60_000)
    assert GEMINI_25_PRO.cost(usage) == (150_000 * D("2.50") + 60_000 * D("0.25") + 10 * 15) / M


def test_the_highest_tier_reached_applies_and_unset_rates_follow_input() -> None:
    price = pricing({"input": 1, "output": 2, "tiers": [{"above": 100, "input": 3}, {"above": 1000, "input": 5}]})
    # No cached price: cache reads cost the input rate in force, here the second tier's.
    assert price.cost(Usage(1001, 1, cached_input_tokens=1)) == (1000 * 5 + 1 * 5 + 1 * 2) / M
    assert price.cost(Usage(1000, 1)) == (1000 * 3 + 1 * 2) / M
    assert price.cost(Usage(100, 1)) == (100 * 1 + 1 * 2) / M


def test_tiers_must_grow_and_take_one_threshold() -> None:
    with pytest.raises(ValueError, match="smallest threshold"):
        Price.model_validate({"input": 1, "tiers": [{"above": 10, "input": 2}, {"above": 5, "input": 3}]})
    with pytest.raises(ValueError, match="one threshold"):
        Price.model_validate({"input": 1, "tiers": [{"above": 10, "at_least": 11, "input": 2}]})
    # "above 9" and "at least 10" are the same tier: refused as a duplicate.
    with pytest.raises(ValueError, match="different size"):
        Price.model_validate({"input": 1, "tiers": [{"above": 9, "input": 2}, {"at_least": 10, "input": 3}]})


# -- time windows --------------------------------------------------------------------------------------------

DEEPSEEK = pricing({"input": 0.15, "cached_input": 0.003, "output": 0.60, "windows": [
    {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": ["01:00-04:00", "06:00-10:00"],
     "input": 0.30, "cached_input": 0.006, "output": 1.20}]})
PEAK = (900_000 * D("0.30") + 100_000 * D("0.006") + 10_000 * D("1.20")) / M  # 0.2826
OFF_PEAK = (900_000 * D("0.15") + 100_000 * D("0.003") + 10_000 * D("0.60")) / M  # 0.1413
CALL = Usage(1_000_000, 10_000, 100_000)


@pytest.mark.parametrize(("start", "expected"), [
    ("2026-11-30T00:59:59+00:00", OFF_PEAK),  # Monday, a second before the first window
    ("2026-11-30T01:00:00+00:00", PEAK),      # the window's start is inside it
    ("2026-11-30T03:59:59+00:00", PEAK),
    ("2026-11-30T04:00:00+00:00", OFF_PEAK),  # its end is outside
    ("2026-11-30T06:00:00+00:00", PEAK),      # the second range
    ("2026-11-30T09:59:59.999999+00:00", PEAK),
    ("2026-11-30T10:00:00+00:00", OFF_PEAK),
    ("2026-12-04T09:00:00+00:00", PEAK),      # Friday
    ("2026-12-05T02:00:00+00:00", OFF_PEAK),  # Saturday: off-peak all day
    ("2026-12-06T07:00:00+00:00", OFF_PEAK),  # Sunday
    ("2026-11-30T09:30:00+08:00", PEAK),      # a start time in another zone is read in UTC (01:30 UTC)
    ("2026-11-30T17:30:00-08:00", PEAK),      # Monday 17:30 in Los Angeles is Tuesday 01:30 UTC
    ("2026-12-04T18:30:00-08:00", OFF_PEAK),  # Friday evening there is Saturday in UTC
])
def test_windows_pick_the_rates_by_the_utc_start_time(start: str, expected: Decimal) -> None:
    assert DEEPSEEK.cost(CALL, at=at(start)) == expected


def test_a_naive_start_time_is_utc_and_the_rule_shows() -> None:
    charge = DEEPSEEK.charge(CALL, at=datetime.datetime(2026, 11, 30, 2, 0))
    assert charge is not None and charge.cost == PEAK
    assert charge.rules == ("mon-fri 01:00-04:00, 06:00-10:00 UTC",)


def test_window_hours_are_checked() -> None:
    for hours, message in ((["22:00-02:00"], "split a range past midnight"), (["1:00-2:00"], "HH:MM-HH:MM"),
                           (["00:00-24:01"], "ends after 24:00")):
        with pytest.raises(ValueError, match=message):
            Price.model_validate({"input": 1, "windows": [{"hours": hours, "input": 2}]})
    assert DEEPSEEK.cost(CALL, at=at("2026-11-30T23:59:59+00:00")) == OFF_PEAK
    whole_day = pricing({"input": 1, "windows": [{"days": ["sun"], "hours": ["00:00-24:00"], "input": 2}]})
    assert whole_day.cost(Usage(10, 0), at=at("2026-12-06T23:59:59+00:00")) == 20 / M
    assert whole_day.cost(Usage(10, 0), at=at("2026-12-07T00:00:00+00:00")) == 10 / M


# -- effective dates -----------------------------------------------------------------------------------------

FLASH = pricing({"input": 0.75, "cached_input": 0.075, "output": 3.75, "until": datetime.date(2026, 12, 31)},
                {"input": 1.50, "cached_input": 0.15, "output": 7.50, "from": datetime.date(2027, 1, 1)})
FLASH_CALL = Usage(100_000, 10_000, 20_000)


def test_a_scheduled_price_change_takes_effect_at_midnight_utc() -> None:
    launch = (80_000 * D("0.75") + 20_000 * D("0.075") + 10_000 * D("3.75")) / M
    listed = (80_000 * D("1.50") + 20_000 * D("0.15") + 10_000 * D("7.50")) / M
    assert FLASH.cost(FLASH_CALL, at=at("2026-12-31T23:59:59.999999+00:00")) == launch == D("0.099")
    assert FLASH.cost(FLASH_CALL, at=at("2027-01-01T00:00:00+00:00")) == listed == D("0.198")
    # 2026-12-31 23:30 in New York is already 2027 in UTC.
    assert FLASH.cost(FLASH_CALL, at=at("2026-12-31T23:30:00-05:00")) == listed
    charge = FLASH.charge(FLASH_CALL, at=at("2027-06-01T00:00:00+00:00"))
    assert charge is not None and charge.rules == ("price from 2027-01-01",)


def test_an_instant_ends_a_period_exactly_and_gaps_have_no_price() -> None:
    change = at("2026-08-16T16:00:00+00:00")
    price = pricing({"input": 1, "until": change}, {"input": 2, "from": change})
    assert price.cost(Usage(10, 0), at=change - datetime.timedelta(microseconds=1)) == 10 / M
    assert price.cost(Usage(10, 0), at=change) == 20 / M
    gap = pricing({"input": 1, "until": datetime.date(2026, 1, 31)}, {"input": 2, "from": datetime.date(2026, 3, 1)})
    assert gap.cost(Usage(10, 0), at=at("2026-02-15T00:00:00+00:00")) is None
    ended = pricing({"input": 1, "until": datetime.date(2026, 1, 31)})
    assert ended.price(at("2026-02-01T00:00:00+00:00")) is None


def test_overlapping_periods_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("acme:\n  m:\n    - {input: 1, until: 2027-01-01}\n    - {input: 2, from: 2027-01-01}\n")
    with pytest.raises(ProviderFileError, match="overlap") as info:
        PriceTable(bundled_file=bad)
    assert info.value.key == "acme.m" and info.value.line == 2
    with pytest.raises(ValueError, match="'until' is before 'from'"):
        Price.model_validate({"input": 1, "from": "2027-01-02", "until": "2027-01-01"})


# -- service tiers -------------------------------------------------------------------------------------------

GPT_55 = pricing({"input": 5, "cached_input": 0.5, "output": 30,
                  "tiers": [{"above": 272_000, "input": 10, "cached_input": 1, "output": 45}],
                  "service_tiers": {"flex": {"multiplier": 0.5},
                                    "priority": {"input": 12.5, "cached_input": 1.25, "output": 75}}})


def test_service_tiers_the_reply_reports() -> None:
    small = Usage(10_000, 1_000, 4_000)
    standard = (6_000 * 5 + 4_000 * D("0.5") + 1_000 * 30) / M
    assert GPT_55.cost(small) == standard == D("0.062")
    assert GPT_55.cost(small, service_tier="default") == standard  # a tier not listed: the usual rates
    assert GPT_55.cost(small, service_tier="flex") == (6_000 * D("2.5") + 4_000 * D("0.25") + 1_000 * 15) / M
    assert GPT_55.cost(small, service_tier="priority") == (6_000 * D("12.5") + 4_000 * D("1.25") + 1_000 * 75) / M


def test_a_multiplier_scales_the_prompt_size_tier_and_own_rates_drop_it() -> None:
    long = Usage(300_000, 1_000)
    assert GPT_55.cost(long) == (300_000 * 10 + 1_000 * 45) / M == D("3.045")
    assert GPT_55.cost(long, service_tier="flex") == (300_000 * 5 + 1_000 * D("22.5")) / M
    assert GPT_55.cost(long, service_tier="priority") == (300_000 * D("12.5") + 1_000 * 75) / M
    charge = GPT_55.charge(long, service_tier="flex")
    assert charge is not None and charge.rules == ("service tier flex (x0.5)", "prompt > 272,000 tokens")


def test_service_tier_entries_are_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        Price.model_validate({"input": 1, "service_tiers": {"flex": {"multiplier": 0.5, "input": 1}}})
    with pytest.raises(ValueError, match="at least 'input' and 'output'"):
        Price.model_validate({"input": 1, "service_tiers": {"batch": {"input": 0.5}}})
    with pytest.raises(ValueError, match="less than or equal to 100"):
        Price.model_validate({"input": 1, "service_tiers": {"x": {"multiplier": 1000}}})


# -- cache lifetimes -----------------------------------------------------------------------------------------

SONNET = pricing({"input": 3, "cached_input": 0.30, "cache_write": 3.75, "cache_write_1h": 6, "output": 15})


def test_one_hour_cache_writes_cost_their_own_rate() -> None:
    # 2,000 input: 500 fresh, 500 read, 1,000 written of which 400 for an hour.
    usage = Usage(2_000, 100, cached_input_tokens=500, cache_write_tokens=1_000, cache_write_1h_tokens=400)
    expected = (500 * 3 + 500 * D("0.30") + 600 * D("3.75") + 400 * 6 + 100 * 15) / M
    assert SONNET.cost(usage) == expected == D("0.0078")
    # Only the 1-hour count reported: it is part of the writes all the same.
    only_long = Usage(2_000, 0, cache_write_1h_tokens=400)
    assert SONNET.cost(only_long) == (1_600 * 3 + 400 * 6) / M


def test_without_a_one_hour_rate_long_writes_cost_the_write_rate() -> None:
    price = pricing({"input": 3, "cache_write": 3.75, "output": 15})
    usage = Usage(1_000, 0, cache_write_tokens=1_000, cache_write_1h_tokens=1_000)
    assert price.cost(usage) == 1_000 * D("3.75") / M


# -- validation and exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", ".nan", "-1", "100000", "1e5"])
def test_non_finite_negative_or_absurd_prices_are_refused(tmp_path: Path, value: str) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text(f"acme:\n  m: {{input: 1, output: {value}}}\n")
    with pytest.raises(ProviderFileError) as info:
        PriceTable(bad)
    assert info.value.key == "acme.m.output" and info.value.line == 2


def test_an_embedding_model_has_an_input_price_only() -> None:
    embedding = Price.model_validate({"input": 0.13})
    assert embedding.output == 0
    assert cost_of(embedding, Usage(1_000_000, 0)) == D("0.13")
    assert cost_of(embedding, Usage(1_000_000, None)) is None  # counts unknown: no cost, never a guess


def test_costs_are_never_negative() -> None:
    # A server that reports more cached than input tokens: the fresh count floors at 0.
    assert SONNET.cost(Usage(10, 0, cached_input_tokens=50)) == 50 * D("0.30") / M


# -- overrides merge field by field --------------------------------------------------------------------------

BUNDLED = """\
acme:
  big: {input: 2, cached_input: 0.2, cache_write: 2.5, output: 8, source: https://acme.example/p, date: 2026-12-01}
  flash:
    - {input: 1, output: 4, until: 2026-12-31}
    - {input: 2, output: 8, from: 2027-01-01}
"""


def table(tmp_path: Path, user: str) -> PriceTable:
    bundled = tmp_path / "bundled.yaml"
    bundled.write_text(BUNDLED)
    mine = tmp_path / "mine.yaml"
    mine.write_text(user)
    return PriceTable(mine, bundled_file=bundled)


def test_a_partial_override_keeps_the_fields_it_does_not_set(tmp_path: Path) -> None:
    prices = table(tmp_path, "acme:\n  big: {input: 1.5, output: 6}\n")
    price = prices.price("acme", "big")
    assert price is not None and (price.input, price.output, price.cached_input, price.cache_write) == (
        D("1.5"), D(6), D("0.2"), D("2.5"))
    # Cache reads keep their price: 1,000 of them cost 0.2 per million, not 1.5.
    pricing_ = prices.pricing("acme", "big")
    assert pricing_ is not None and pricing_.cost(Usage(1_000, 0, 1_000)) == 1_000 * D("0.2") / M


def test_null_removes_a_field_or_the_whole_price(tmp_path: Path) -> None:
    prices = table(tmp_path, "acme:\n  big: {cached_input: null}\n  flash: null\n")
    price = prices.price("acme", "big")
    assert price is not None and price.cached_input is None and price.input == 2
    assert prices.price("acme", "flash") is None and "flash" not in prices.models("acme")


def test_a_mapping_override_applies_to_every_period_and_a_list_replaces_them(tmp_path: Path) -> None:
    prices = table(tmp_path, "acme:\n  flash: {output: 5}\n")
    flash = prices.pricing("acme", "flash")
    assert flash is not None
    assert flash.cost(Usage(0, 1_000_000), at=at("2026-12-01T00:00:00+00:00")) == 5
    assert flash.cost(Usage(1_000_000, 0), at=at("2027-02-01T00:00:00+00:00")) == 2
    prices = table(tmp_path, "acme:\n  flash: [{input: 9, output: 9}]\n")
    assert len(prices.pricing("acme", "flash").periods) == 1  # type: ignore[union-attr]


def test_an_override_that_does_not_fit_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ProviderFileError) as info:
        table(tmp_path, "acme:\n  big:\n    input: null\n")
    assert info.value.key == "acme.big.input" and info.value.line == 3 and "mine.yaml" in str(info.value.file)
    with pytest.raises(ProviderFileError) as info:
        table(tmp_path, "acme:\n  big: {tiers: [{above: 10}]}\n")
    assert info.value.key == "acme.big.tiers.0" and "at least one rate" in info.value.message


def test_a_new_model_in_the_override_file_needs_an_input_price(tmp_path: Path) -> None:
    prices = table(tmp_path, "acme:\n  new: {output: 3}\n")
    assert prices.price("acme", "new") is None  # priced nowhere else: unknown, and `genai check` says why
    assert prices.problem("acme", "new") == "input: missing required key"
    assert table(tmp_path, "acme:\n  new: {input: 3}\n").price("acme", "new").output == 0  # type: ignore[union-attr]


# -- what a reply says reaches the cost ----------------------------------------------------------------------


def _replay_with_prices(tmp_path: Path, provider: str, prices: str, body: dict[str, object], *,
                        stream_body: bytes | None = None) -> object:
    import asyncio
    import json

    from engine import CompletionRequest
    from engine.registry import Registry

    from .conftest import make_settings, replay

    user = tmp_path / "prices.yaml"
    user.write_text(prices)
    registry = Registry(make_settings(pricing_file=user))
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="m-1",
                                stream=stream_body is not None)
    if stream_body is not None:
        return asyncio.run(replay(registry, provider, request, 200, stream_body, stream=True))
    return asyncio.run(replay(registry, provider, request, 200, json.dumps(body).encode()))


ANTHROPIC_REPLY = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "m-1", "stop_reason": "end_turn",
    "content": [{"type": "text", "text": "ok"}],
    "usage": {"input_tokens": 500, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 1000,
              "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400},
              "output_tokens": 100, "service_tier": "standard"},
}


def test_anthropic_reply_reports_one_hour_writes_and_its_service_tier(tmp_path: Path) -> None:
    result = _replay_with_prices(tmp_path, "anthropic", "anthropic:\n  m-1: {input: 3, cached_input: 0.30, "
                                 "cache_write: 3.75, cache_write_1h: 6, output: 15}\n", ANTHROPIC_REPLY)
    assert result.cache_write_tokens == 1000 and result.cache_write_1h_tokens == 400  # type: ignore[attr-defined]
    assert result.service_tier == "standard"  # type: ignore[attr-defined]
    assert result.cost_usd == pytest.approx(0.0078, abs=1e-15)  # type: ignore[attr-defined]


def test_anthropic_stream_reports_one_hour_writes(tmp_path: Path) -> None:
    usage = json.dumps(ANTHROPIC_REPLY["usage"])
    body = (
        'event: message_start\ndata: {"type":"message_start","message":{"model":"m-1","usage":' + usage + '}}\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"ok"}}\n\n'
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        '"usage":{"output_tokens":100}}\n\n'
        'event: message_stop\ndata: {"type":"message_stop"}\n\n').encode()
    result = _replay_with_prices(tmp_path, "anthropic", "anthropic:\n  m-1: {input: 3, cached_input: 0.30, "
                                 "cache_write: 3.75, cache_write_1h: 6, output: 15}\n", {}, stream_body=body)
    assert result.cache_write_1h_tokens == 400 and result.service_tier == "standard"  # type: ignore[attr-defined]
    assert result.cost_usd == pytest.approx(0.0078, abs=1e-15)  # type: ignore[attr-defined]


def _openai_reply(tier: str) -> dict[str, object]:
    return {"id": "c", "object": "chat.completion", "model": "m-1", "service_tier": tier,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10_000, "completion_tokens": 1_000,
                      "prompt_tokens_details": {"cached_tokens": 4_000, "cache_write_tokens": 2_000}}}


@pytest.mark.parametrize(("tier", "expected"), [
    # 10,000 prompt tokens: 4,000 read, 2,000 written, 4,000 fresh; 1,000 output.
    ("default", (4_000 * 2 + 4_000 * D("0.2") + 2_000 * D("2.5") + 1_000 * 10) / M),
    ("flex", (4_000 * 1 + 4_000 * D("0.1") + 2_000 * D("1.25") + 1_000 * 5) / M),
    ("priority", (4_000 * 4 + 4_000 * D("0.4") + 2_000 * 5 + 1_000 * 20) / M),
])
def test_openai_reply_service_tier_and_cache_writes_reach_the_cost(tmp_path: Path, tier: str,
                                                                    expected: Decimal) -> None:
    prices = ("openai:\n  m-1:\n    {input: 2, cached_input: 0.2, cache_write: 2.5, output: 10,\n"
              "     service_tiers: {flex: {multiplier: 0.5}, priority: {multiplier: 2}}}\n")
    result = _replay_with_prices(tmp_path, "openai", prices, _openai_reply(tier))
    assert result.service_tier == tier and result.cache_write_tokens == 2_000  # type: ignore[attr-defined]
    assert result.cost_usd == pytest.approx(float(expected), abs=1e-15)  # type: ignore[attr-defined]


def test_together_cached_tokens_are_read(tmp_path: Path) -> None:
    reply = {"id": "c", "object": "chat.completion", "model": "m-1",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "eos"}],
             "usage": {"prompt_tokens": 1_000, "completion_tokens": 10, "cached_tokens": 800}}
    result = _replay_with_prices(tmp_path, "together", "together:\n  m-1: {input: 1, cached_input: 0.1, output: 2}\n",
                                 reply)
    assert result.cached_input_tokens == 800  # type: ignore[attr-defined]
    assert result.cost_usd == pytest.approx(float((200 * 1 + 800 * D("0.1") + 10 * 2) / M), abs=1e-15)  # type: ignore[attr-defined]


def test_the_price_in_effect_when_the_call_started_is_used(tmp_path: Path) -> None:
    # One period ended yesterday, the next starts today: a call now costs today's price.
    today = datetime.datetime.now(UTC).date()
    prices = (f"openai:\n  m-1:\n    - {{input: 1, output: 1, until: {today - datetime.timedelta(days=1)}}}\n"
              f"    - {{input: 3, output: 3, from: {today}}}\n")
    result = _replay_with_prices(tmp_path, "openai", prices, _openai_reply("default"))
    assert result.cost_usd == pytest.approx(float((10_000 * 3 + 1_000 * 3) / M), abs=1e-15)  # type: ignore[attr-defined]
