"""Prices and costs: exact arithmetic, cached tokens counted once, precedence of pricing sources."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from engine import ProviderFileError, Settings, get_provider
from engine.pricing import PriceTable, Usage, cost_of
from engine.registry import Registry
from engine.spec import Price

from .conftest import FIXTURES, make_settings, replay
from .test_loader import MINIMAL, write


def test_seed_example_groq_llama_cost() -> None:
    provider = get_provider("groq", make_settings())
    assert provider.calculate_cost("llama-3.3-70b-versatile", 1000, 500) == pytest.approx(0.000985, abs=1e-15)


def test_cost_is_exact_decimal_arithmetic() -> None:
    price = Price(input="0.59", output="0.79")  # type: ignore[arg-type]
    assert cost_of(price, Usage(1000, 500)) == Decimal("0.000985")
    assert Price.model_validate({"input": 0.1, "output": 0.2}).input == Decimal("0.1")


def test_cached_tokens_are_priced_at_the_cached_rate_and_not_twice() -> None:
    price = Price(input=Decimal("2"), output=Decimal("10"), cached_input=Decimal("0.5"), cache_write=Decimal("2.5"))
    # 1000 input in all: 600 read from cache, 100 written to it, 300 fresh.
    usage = Usage(input_tokens=1000, output_tokens=10, cached_input_tokens=600, cache_write_tokens=100)
    assert cost_of(price, usage) == (300 * 2 + 600 * Decimal("0.5") + 100 * Decimal("2.5") + 10 * 10) / Decimal(10**6)


def test_unknown_token_counts_give_no_cost() -> None:
    assert cost_of(Price(input=Decimal(1), output=Decimal(1)), Usage(None, 5)) is None


def test_model_without_price_costs_none_and_the_call_still_succeeds() -> None:
    registry = Registry(make_settings())
    body = (FIXTURES / "openai" / "response.json").read_bytes()
    from engine import CompletionRequest

    request = CompletionRequest(messages=[{"role": "user", "content": "x"}], model="gpt-9-unreleased")
    result = asyncio.run(replay(registry, "openai", request, 200, body))
    # Neither the requested model nor the dated snapshot the response names has a price.
    assert result.success and result.cost_usd is None and result.input_tokens == 1117


def test_local_providers_cost_zero() -> None:
    assert get_provider("ollama", make_settings()).calculate_cost("anything", 10**6, 10**6) == 0.0


def test_precedence_provider_file_then_bundled_then_user_file(tmp_path: Path) -> None:
    folder = tmp_path / "providers"
    write(folder, "example", MINIMAL.format(name="example"))  # its own pricing block: 1.0 / 2.0
    bundled = tmp_path / "bundled.yaml"
    user = tmp_path / "user.yaml"
    spec = Registry(Settings(providers_path=[folder])).spec("example")

    table = PriceTable(bundled_file=bundled)
    assert table.price("example", "example-1", spec.pricing).input == Decimal("1.0")  # type: ignore[union-attr]

    bundled.write_text("example:\n  example-1: {input: 3, output: 4}\n")
    table = PriceTable(bundled_file=bundled)
    assert table.price("example", "example-1", spec.pricing).input == Decimal(3)  # type: ignore[union-attr]

    user.write_text("example:\n  example-1: {input: 5, output: 6}\n")
    table = PriceTable(user, bundled_file=bundled)
    assert table.price("example", "example-1", spec.pricing).input == Decimal(5)  # type: ignore[union-attr]
    assert table.models("example", spec.pricing)["example-1"].output == Decimal(6)


def test_editing_a_pricing_file_changes_costs_with_no_code_change(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    code = ("import engine; p = engine.get_provider('groq');"
            "print(p.calculate_cost('llama-3.3-70b-versatile', 1_000_000, 0))")
    env = {"GENAI_PRICING_FILE": str(prices), "GROQ_API_KEY": "gsk-123456", "PATH": ""}

    def cost() -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, check=True).stdout.strip()

    prices.write_text("groq:\n  llama-3.3-70b-versatile: {input: 1.25, output: 2}\n")
    assert cost() == "1.25"
    prices.write_text("groq:\n  llama-3.3-70b-versatile: {input: 0.5, output: 2}\n")
    assert cost() == "0.5"


def test_broken_pricing_file_names_file_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("groq:\n  llama:\n    input: 1\n    output: cheap\n")
    with pytest.raises(ProviderFileError) as info:
        PriceTable(bad)
    assert info.value.key == "groq.llama.output" and info.value.line == 4


def test_unknown_price_key_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("groq:\n  llama: {input: 1, output: 2, cache_reed: 1}\n")
    with pytest.raises(ProviderFileError, match="cache_reed"):
        PriceTable(bad)
