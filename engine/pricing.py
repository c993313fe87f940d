"""Prices per model and the cost of a call, computed exactly.

Precedence, lowest to highest: a provider file's own ``pricing:`` block, the
bundled ``pricing.yaml``, then the user's file (``GENAI_PRICING_FILE``). Each
source merges into the one below it field by field; ``null`` removes a field,
and a model set to ``null`` has no price. Prices are USD per million tokens.
A model with no known price costs ``None``, never an invented number; a local
provider costs 0.

What a call costs depends on more than its token counts: the price in effect
when the request started (``from``/``until``), the hours of the week
(``windows``), the prompt size (``tiers``, billed as a cliff), the service tier
the reply reports, and how much was written to the cache for an hour rather
than the default lifetime. Each model's rules are compiled once
(`ModelPricing`); a call only picks among them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import ProviderFileError
from .loader import ProviderSource, bundled_path, line_of, read_yaml
from .spec import (
    WEEKDAYS,
    Price,
    PriceEntry,
    PriceTier,
    PriceWindow,
    ProviderSpec,
    ServiceTierPrice,
    check_schedule,
    hour_range,
)

MILLION = Decimal(1_000_000)
UTC = datetime.UTC


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, unified: ``input_tokens`` includes cached and cache-write tokens;
    ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written with a one-hour lifetime."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_1h_tokens: int | None = None


# -- compiled rules -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rates:
    """One complete set of rates, USD per million tokens, defaults filled in."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal

    @classmethod
    def of(cls, given: Mapping[str, Decimal]) -> Rates:
        """The rates a price gives, the others at their defaults: cache reads and writes at ``input``, one-hour
        writes at ``cache_write``, output at 0."""
        rate = given["input"]
        write = given.get("cache_write", rate)
        return cls(input=rate, output=given.get("output", Decimal(0)), cached_input=given.get("cached_input", rate),
                   cache_write=write, cache_write_1h=given.get("cache_write_1h", write))

    def times(self, factor: Decimal) -> Rates:
        return Rates(self.input * factor, self.output * factor, self.cached_input * factor,
                     self.cache_write * factor, self.cache_write_1h * factor)

    def cost(self, usage: Usage) -> Decimal | None:
        """The exact cost of a call's counts at these rates, or ``None`` if input or output tokens are unknown."""
        if usage.input_tokens is None or usage.output_tokens is None:
            return None
        cached = usage.cached_input_tokens or 0
        long_writes = usage.cache_write_1h_tokens or 0
        written = max(usage.cache_write_tokens or 0, long_writes)  # the 1-hour writes are part of all writes
        fresh = max(usage.input_tokens - cached - written, 0)
        total = (fresh * self.input + cached * self.cached_input + (written - long_writes) * self.cache_write
                 + long_writes * self.cache_write_1h + usage.output_tokens * self.output)
        return total / MILLION


@dataclass(frozen=True, slots=True)
class _Tier:
    threshold: int  # the smallest prompt that reaches it
    rates: Rates
    label: str


@dataclass(frozen=True, slots=True)
class _Window:
    days: frozenset[int]  # Monday is 0
    seconds: tuple[tuple[int, int], ...]  # [start, end) seconds of the UTC day
    rates: Rates
    label: str

    def holds(self, at: datetime.datetime) -> bool:
        if at.weekday() not in self.days:
            return False
        second = at.hour * 3600 + at.minute * 60 + at.second
        return any(start <= second < end for start, end in self.seconds)


@dataclass(frozen=True, slots=True)
class _Rules:
    """One period's price, compiled: base rates, then windows or prompt-size tiers."""

    base: Rates
    tiers: tuple[_Tier, ...] = ()  # largest threshold first
    windows: tuple[_Window, ...] = ()
    label: str = ""  # the service tier, when these are its rules

    def pick(self, usage: Usage, at: datetime.datetime) -> tuple[Rates, list[str]]:
        rules = [self.label] if self.label else []
        prompt = usage.input_tokens or 0
        for tier in self.tiers:
            if prompt >= tier.threshold:
                return tier.rates, [*rules, tier.label]
        for window in self.windows:
            if window.holds(at):
                return window.rates, [*rules, window.label]
        return self.base, rules

    def times(self, factor: Decimal, label: str) -> _Rules:
        return _Rules(self.base.times(factor),
                      tuple(_Tier(t.threshold, t.rates.times(factor), t.label) for t in self.tiers),
                      tuple(_Window(w.days, w.seconds, w.rates.times(factor), w.label) for w in self.windows),
                      label)


def _tier_label(tier: PriceTier) -> str:
    return f"prompt > {tier.above:,} tokens" if tier.above is not None else f"prompt >= {tier.at_least:,} tokens"


def _days_label(days: Sequence[str]) -> str:
    indexes = sorted(WEEKDAYS.index(day) for day in set(days))
    if len(indexes) > 2 and indexes == list(range(indexes[0], indexes[-1] + 1)):
        return f"{WEEKDAYS[indexes[0]]}-{WEEKDAYS[indexes[-1]]}"
    return ",".join(WEEKDAYS[i] for i in indexes)


# A tier or window lists only the rates that change, over the rates the price gives; a rate the price leaves
# to its default follows it (a tier that doubles `input` doubles an unset `cached_input` too).
Given = Mapping[str, Decimal]


def _compile_tiers(given: Given, tiers: list[PriceTier]) -> tuple[_Tier, ...]:
    compiled = [_Tier(t.threshold, Rates.of({**given, **t.rates()}), _tier_label(t)) for t in tiers]
    return tuple(sorted(compiled, key=lambda t: -t.threshold))


def _compile_window(given: Given, window: PriceWindow) -> _Window:
    label = f"{_days_label(window.days)} {', '.join(window.hours)} UTC"
    return _Window(frozenset(WEEKDAYS.index(day) for day in window.days),
                   tuple(hour_range(text) for text in window.hours), Rates.of({**given, **window.rates()}), label)


def _compile_rules(price: Price) -> tuple[_Rules, dict[str, _Rules]]:
    given = price.rates()
    rules = _Rules(Rates.of(given), _compile_tiers(given, price.tiers),
                   tuple(_compile_window(given, window) for window in price.windows))
    service: dict[str, _Rules] = {}
    for name, tier in price.service_tiers.items():
        service[name] = _service_rules(rules, name, tier)
    return rules, service


def _service_rules(rules: _Rules, name: str, tier: ServiceTierPrice) -> _Rules:
    if tier.multiplier is not None:
        return rules.times(tier.multiplier, f"service tier {name} (x{tier.multiplier})")
    given = tier.rates()
    return _Rules(Rates.of(given), _compile_tiers(given, tier.tiers), (), f"service tier {name}")


@dataclass(frozen=True, slots=True)
class _Period:
    starts: datetime.datetime | None
    ends: datetime.datetime | None
    price: Price
    rules: _Rules
    service: dict[str, _Rules]

    def holds(self, at: datetime.datetime) -> bool:
        return (self.starts is None or at >= self.starts) and (self.ends is None or at < self.ends)

    @property
    def label(self) -> str:
        if self.starts is None and self.ends is None:
            return ""
        if self.ends is None:
            return f"price from {_shown(self.price.from_)}"
        if self.starts is None:
            return f"price until {_shown(self.price.until)}"
        return f"price from {_shown(self.price.from_)} until {_shown(self.price.until)}"


def _shown(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one call costs, and why: the rates used and the rules that chose them."""

    cost: Decimal | None
    rates: Rates
    rules: tuple[str, ...]
    price: Price


class ModelPricing:
    """A model's price, every period of it compiled once, ready to cost calls."""

    __slots__ = ("_only", "periods")

    def __init__(self, periods: list[Price]) -> None:
        compiled = []
        for price in check_schedule(list(periods)):
            rules, service = _compile_rules(price)
            compiled.append(_Period(price.starts, price.ends, price, rules, service))
        self.periods: tuple[_Period, ...] = tuple(compiled)
        # The usual price: one period, no rule that reads the time (nothing to choose per call by date).
        only = compiled[0] if len(compiled) == 1 and compiled[0].starts is None and compiled[0].ends is None \
            else None
        self._only = only

    def period(self, at: datetime.datetime | None = None) -> _Period | None:
        if self._only is not None:
            return self._only
        at = _utc(at)
        return next((period for period in self.periods if period.holds(at)), None)

    def price(self, at: datetime.datetime | None = None) -> Price | None:
        """The price in effect at ``at`` (default: now), or ``None`` between or after its periods."""
        period = self.period(at)
        return None if period is None else period.price

    def charge(self, usage: Usage, at: datetime.datetime | None = None,
               service_tier: str | None = None) -> Charge | None:
        """The cost of a call that started at ``at`` (default: now) and that the reply says ran in
        ``service_tier``; ``None`` when no period of the price covers ``at``."""
        if self._only is not None and not self._only.rules.windows:
            period: _Period | None = self._only
            at = at or _EPOCH
        else:
            at = _utc(at)
            period = self.period(at)
        if period is None:
            return None
        rules = period.service.get(service_tier, period.rules) if service_tier else period.rules
        rates, applied = rules.pick(usage, at)
        if period.label:
            applied = [period.label, *applied]
        return Charge(rates.cost(usage), rates, tuple(applied), period.price)

    def cost(self, usage: Usage, at: datetime.datetime | None = None,
             service_tier: str | None = None) -> Decimal | None:
        charge = self.charge(usage, at, service_tier)
        return None if charge is None else charge.cost

    @property
    def reads_time(self) -> bool:
        """Whether the cost depends on when the request started (periods or windows)."""
        return self._only is None or bool(self._only.rules.windows)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)  # any instant: the price does not read it


def _utc(at: datetime.datetime | None) -> datetime.datetime:
    if at is None:
        return datetime.datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def cost_of(price: Price, usage: Usage, at: datetime.datetime | None = None,
            service_tier: str | None = None) -> Decimal | None:
    """The exact cost in USD of a call at one price, or ``None`` if input or output tokens are unknown."""
    return ModelPricing([price]).cost(usage, at, service_tier)


# -- sources and merging ----------------------------------------------------------------------------------

RawEntry = Any  # a model's price as written: a mapping, a list of periods, or None (no price)


def merge_entry(below: RawEntry, above: RawEntry) -> RawEntry:
    """One source's entry over the one below it: a mapping merges field by field (into every period when the
    entry below is a list), and ``null`` removes a field; a list of periods, a mapping with ``from`` or
    ``until``, or ``null`` for the whole entry replaces what is below."""
    if above is None or isinstance(above, list) or below is None:
        return above
    if not isinstance(above, dict) or "from" in above or "until" in above:
        return above
    if isinstance(below, list):
        return [merge_entry(period, above) for period in below]
    if not isinstance(below, dict):
        return above
    merged = dict(below)
    for key, value in above.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def validate_entry(raw: RawEntry) -> list[Price]:
    """A merged entry as its periods, sorted; raises `ValidationError` or ``ValueError``."""
    if isinstance(raw, list):
        if not raw:
            raise ValueError("a list of periods needs at least one price")
        return check_schedule([Price.model_validate(period) for period in raw])
    return [Price.model_validate(raw)]


def _check_partial(raw: RawEntry) -> None:
    """Check the keys and values of an override that may leave out fields (``input`` among them)."""
    if raw is None or isinstance(raw, list):
        validate_entry(raw) if raw is not None else None
        return
    if not isinstance(raw, dict):
        raise ValueError("a price is a mapping of rates (or a list of periods, or null)")
    given = {key: value for key, value in raw.items() if value is not None}
    Price.model_validate({"input": 0, **given})


@dataclass
class PricingFile:
    """One pricing file as written: ``{provider: {model: entry}}``, each entry checked."""

    path: Path
    entries: dict[str, dict[str, RawEntry]] = field(default_factory=dict)
    source: ProviderSource | None = None

    def error(self, message: str, key_path: list[Any]) -> ProviderFileError:
        line = line_of(self.source, key_path) if self.source is not None else None
        return ProviderFileError(message, file=str(self.path), key=".".join(map(str, key_path)), line=line)


def read_pricing_file(path: Path, partial: bool = False) -> PricingFile:
    """Read and check a pricing file; with ``partial``, entries may leave out fields that a source below gives.
    Errors name the file, the key and the line."""
    data, text = read_yaml(path)
    result = PricingFile(path)
    if data is None:
        return result
    result.source = ProviderSource("<pricing>", path, data if isinstance(data, dict) else {}, text)
    if not isinstance(data, dict):
        raise ProviderFileError("a pricing file maps provider names to models", file=str(path), line=1)
    for provider, models in data.items():
        if not isinstance(models, dict):
            raise result.error("must map model ids to prices", [provider])
        table = result.entries.setdefault(str(provider), {})
        for model, entry in models.items():
            try:
                _check_partial(entry) if partial else validate_entry(entry)
            except ValidationError as exc:
                error = exc.errors()[0]
                raise result.error(_message(error), [provider, model, *error["loc"]]) from exc
            except ValueError as exc:
                raise result.error(str(exc), [provider, model]) from exc
            table[str(model)] = entry
    return result


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (a price takes input, output, cached_input, cache_write, cache_write_1h, tiers, " \
               "windows, service_tiers, from, until, source, date)"
    if error["type"] == "missing":
        return "missing required key"
    return str(error["msg"]).removeprefix("Value error, ")


def load_pricing_file(path: Path) -> dict[str, dict[str, Price]]:
    """Read a complete pricing file: ``{provider: {model: price}}`` (the price in effect now; every period
    checked). Errors name file, key and line."""
    result = read_pricing_file(path)
    table: dict[str, dict[str, Price]] = {}
    for provider, models in result.entries.items():
        table[provider] = {}
        for model, entry in models.items():
            if entry is not None:
                current = ModelPricing(validate_entry(entry)).price()
                if current is not None:
                    table[provider][model] = current
    return table


@dataclass(frozen=True, slots=True)
class Quote:
    """What calls to one model cost: its price (``None`` when unknown) or free, for a local provider.

    ``price`` is the price in effect when the quote was made; `cost` picks the one in effect when the
    call started."""

    provider: str
    model: str
    price: Price | None
    local: bool = False
    pricing: ModelPricing | None = None

    @property
    def known(self) -> bool:
        return self.local or self.pricing is not None or self.price is not None

    def _pricing(self) -> ModelPricing | None:
        if self.pricing is not None:
            return self.pricing
        return None if self.price is None else ModelPricing([self.price])

    def charge(self, usage: Usage, at: datetime.datetime | None = None,
               service_tier: str | None = None) -> Charge | None:
        """The cost with the rates and rules that made it; ``None`` when local or unpriced at ``at``."""
        pricing = None if self.local else self._pricing()
        return None if pricing is None else pricing.charge(usage, at, service_tier)

    def cost(self, usage: Usage, at: datetime.datetime | None = None,
             service_tier: str | None = None) -> Decimal | None:
        """The exact cost of a call's usage: 0 when local, ``None`` when the price or the counts are unknown.

        ``at``: when the request started (default: now); ``service_tier``: the tier the reply reports."""
        if self.local:
            return Decimal(0)
        pricing = self._pricing()
        return None if pricing is None else pricing.cost(usage, at, service_tier)


_ABSENT = object()  # no entry in a source


class PriceTable:
    """Prices from every source, merged field by field in precedence order."""

    def __init__(self, user_file: Path | None = None, bundled_file: Path | None = None) -> None:
        self.bundled_file = bundled_file or bundled_path("pricing.yaml")
        self.user_file = user_file
        bundled = read_pricing_file(self.bundled_file) if self.bundled_file.exists() else PricingFile(self.bundled_file)
        user = read_pricing_file(user_file, partial=True) if user_file is not None else PricingFile(Path())
        self._bundled, self._user = bundled.entries, user.entries
        # An override that does not fit what it overrides fails here, naming its file and line.
        for provider, models in user.entries.items():
            for model, entry in models.items():
                below = bundled.entries.get(provider, {}).get(model, _ABSENT)
                merged = entry if below is _ABSENT else merge_entry(below, entry)
                if merged is None:
                    continue
                try:
                    validate_entry(merged)
                except ValidationError as exc:
                    if below is not _ABSENT or not _only_lacks_input(exc):
                        error = exc.errors()[0]
                        raise user.error(_message(error), [provider, model, *error["loc"]]) from exc
                    # A partial override of a model that only a provider file prices: merged with it when quoted.
                except ValueError as exc:
                    raise user.error(str(exc), [provider, model]) from exc
        self._compiled: dict[tuple[str, str], tuple[Any, ModelPricing | None]] = {}
        self._quotes: dict[tuple[str, str], tuple[Any, Quote]] = {}

    # -- lookups ------------------------------------------------------------------------------------------
    def _merged(self, provider: str, model: str, file_prices: Mapping[str, PriceEntry] | None) -> RawEntry:
        """The entry after every source, lowest first; ``None`` when there is none or one removed it."""
        own = (file_prices or {}).get(model)
        layers = [_dump(own) if own is not None else _ABSENT, self._bundled.get(provider, {}).get(model, _ABSENT),
                  self._user.get(provider, {}).get(model, _ABSENT)]
        merged: RawEntry = _ABSENT
        for layer in layers:
            if layer is not _ABSENT:
                merged = layer if merged is _ABSENT else merge_entry(merged, layer)
        return None if merged is _ABSENT else merged

    def pricing(self, provider: str, model: str,
                file_prices: Mapping[str, PriceEntry] | None = None) -> ModelPricing | None:
        """A model's compiled price (every period), or ``None`` when no source prices it."""
        key = (provider, model)
        cached = self._compiled.get(key)
        if cached is not None and cached[0] is file_prices:
            return cached[1]
        raw = self._merged(provider, model, file_prices)
        pricing: ModelPricing | None = None
        if raw is not None:
            try:
                pricing = ModelPricing(validate_entry(raw))
            except ValueError:  # an override that lacks `input` for a model priced nowhere else: unknown
                pricing = None
        self._compiled[key] = (file_prices, pricing)
        return pricing

    def problem(self, provider: str, model: str, file_prices: Mapping[str, PriceEntry] | None = None) -> str | None:
        """Why the sources of a model's price do not merge into a price, or ``None``."""
        raw = self._merged(provider, model, file_prices)
        if raw is None:
            return None
        try:
            validate_entry(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(map(str, error["loc"]))
            return f"{where}: {_message(error)}" if where else _message(error)
        except ValueError as exc:
            return str(exc)
        return None

    def price(self, provider: str, model: str, file_prices: Mapping[str, PriceEntry] | None = None,
              at: datetime.datetime | None = None) -> Price | None:
        """The price of a model in effect at ``at`` (default: now), or ``None`` when no source lists it."""
        pricing = self.pricing(provider, model, file_prices)
        return None if pricing is None else pricing.price(at)

    def quote(self, spec: ProviderSpec, model: str) -> Quote:
        """The price of a provider's model (aliases resolved): the one lookup every caller uses."""
        key = (spec.name, model)
        cached = self._quotes.get(key)
        if cached is not None and cached[0] is spec:
            return cached[1]
        resolved = spec.resolve_alias(model)
        pricing = None if spec.local else self.pricing(spec.name, resolved, spec.pricing)
        quote = Quote(spec.name, resolved, None if pricing is None else pricing.price(), spec.local, pricing)
        if len(self._quotes) > 4096:  # model ids come from callers: keep the cache bounded
            self._quotes.clear()
        self._quotes[key] = (spec, quote)
        return quote

    def schedules(self, provider: str,
                  file_prices: Mapping[str, PriceEntry] | None = None) -> dict[str, ModelPricing]:
        """Every priced model of a provider, after precedence, with all its periods."""
        names = dict.fromkeys([*(file_prices or {}), *self._bundled.get(provider, {}), *self._user.get(provider, {})])
        found = {}
        for model in names:
            pricing = self.pricing(provider, model, file_prices)
            if pricing is not None:
                found[model] = pricing
        return found

    def models(self, provider: str, file_prices: Mapping[str, PriceEntry] | None = None) -> dict[str, Price]:
        """Every priced model of a provider, after precedence: the price in effect now."""
        return {model: price for model, pricing in self.schedules(provider, file_prices).items()
                if (price := pricing.price()) is not None}

    def providers(self) -> set[str]:
        return set(self._bundled) | set(self._user)


def _only_lacks_input(exc: ValidationError) -> bool:
    return all(error["type"] == "missing" and tuple(error["loc"]) == ("input",) for error in exc.errors())


def _dump(entry: PriceEntry) -> RawEntry:
    """A provider file's validated entry back as written (only the keys it set), to merge with the others."""
    if isinstance(entry, list):
        return [period.model_dump(exclude_unset=True, by_alias=True) for period in entry]
    return entry.model_dump(exclude_unset=True, by_alias=True)


def to_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def describe(price: Price) -> dict[str, Any]:
    return price.model_dump(exclude_none=True, exclude_defaults=False, by_alias=True, mode="json")


def iter_rules(price: Price) -> Iterator[str]:
    """Short words for the rules a price has, for listings."""
    for tier in price.tiers:
        yield _tier_label(tier)
    for window in price.windows:
        yield f"{_days_label(window.days)} {', '.join(window.hours)} UTC"
    if price.service_tiers:
        yield "service tiers: " + ", ".join(price.service_tiers)
    if price.cache_write_1h is not None:
        yield "1h cache write"


