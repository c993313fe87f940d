"""Prices per model and the cost of a call, computed exactly.

Precedence, lowest to highest: a provider file's own ``pricing:`` block, the
bundled ``pricing.yaml``, then the user's file (``GENAI_PRICING_FILE``).
Prices are USD per million tokens. A model with no known price costs ``None``,
never an invented number; a local provider costs 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import ProviderFileError
from .loader import ProviderSource, bundled_path, line_of, read_yaml
from .spec import Price, ProviderSpec

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, unified: ``input_tokens`` includes cached and cache-write tokens."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


def cost_of(price: Price, usage: Usage) -> Decimal | None:
    """The exact cost in USD, or ``None`` if input or output tokens are unknown."""
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    fresh = max(usage.input_tokens - cached - written, 0)
    total = (
        fresh * price.input
        + cached * (price.cached_input if price.cached_input is not None else price.input)
        + written * (price.cache_write if price.cache_write is not None else price.input)
        + usage.output_tokens * price.output
    )
    return total / MILLION


def load_pricing_file(path: Path) -> dict[str, dict[str, Price]]:
    """Read a pricing file: ``{provider: {model: {input, output, ...}}}``; errors name file, key and line."""
    data, text = read_yaml(path)
    source = ProviderSource("<pricing>", path, data if isinstance(data, dict) else {}, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProviderFileError("a pricing file maps provider names to models", file=str(path), line=1)
    table: dict[str, dict[str, Price]] = {}
    for provider, models in data.items():
        if not isinstance(models, dict):
            raise ProviderFileError("must map model ids to prices", file=str(path), key=str(provider),
                                    line=line_of(source, [provider]))
        table[str(provider)] = {}
        for model, entry in models.items():
            try:
                table[str(provider)][str(model)] = Price.model_validate(entry)
            except ValidationError as exc:
                error = exc.errors()[0]
                key_path = [provider, model, *error["loc"]]
                raise ProviderFileError(error["msg"], file=str(path), key=".".join(map(str, key_path)),
                                        line=line_of(source, key_path)) from exc
    return table


@dataclass(frozen=True, slots=True)
class Quote:
    """What calls to one model cost: its price (``None`` when unknown) or free, for a local provider."""

    provider: str
    model: str
    price: Price | None
    local: bool = False

    @property
    def known(self) -> bool:
        return self.local or self.price is not None

    def cost(self, usage: Usage) -> Decimal | None:
        """The exact cost of a call's usage: 0 when local, ``None`` when the price or the counts are unknown."""
        if self.local:
            return Decimal(0)
        return None if self.price is None else cost_of(self.price, usage)


class PriceTable:
    """Prices from every source, merged in precedence order."""

    def __init__(self, user_file: Path | None = None, bundled_file: Path | None = None) -> None:
        self.bundled_file = bundled_file or bundled_path("pricing.yaml")
        self.user_file = user_file
        self._bundled = load_pricing_file(self.bundled_file) if self.bundled_file.exists() else {}
        self._user = load_pricing_file(user_file) if user_file is not None else {}

    def price(self, provider: str, model: str, file_prices: Mapping[str, Price] | None = None) -> Price | None:
        """The price of a model, or ``None`` when no source lists it."""
        for table in (self._user.get(provider, {}), self._bundled.get(provider, {}), file_prices or {}):
            if model in table:
                return table[model]
        return None

    def quote(self, spec: ProviderSpec, model: str) -> Quote:
        """The price of a provider's model (aliases resolved): the one lookup every caller uses."""
        model = spec.resolve_alias(model)
        price = None if spec.local else self.price(spec.name, model, spec.pricing)
        return Quote(spec.name, model, price, spec.local)

    def models(self, provider: str, file_prices: Mapping[str, Price] | None = None) -> dict[str, Price]:
        """Every priced model of a provider, after precedence."""
        merged = dict(file_prices or {})
        merged.update(self._bundled.get(provider, {}))
        merged.update(self._user.get(provider, {}))
        return merged

    def providers(self) -> set[str]:
        return set(self._bundled) | set(self._user)


def to_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def describe(price: Price) -> dict[str, Any]:
    return price.model_dump(exclude_none=True, mode="json")
