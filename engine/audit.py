"""The price audit: our prices against pydantic's genai-prices, for every model both know.

``genai pricing audit`` prints what disagrees, with both sources, so that the bundled catalog and a user's
override file stay honest. Rates are compared where they are used, not as written: at the instant given
(and at every later price change either side has scheduled), at each prompt size where either side's
tiers change, at every hour of the week when either side prices by the hour, and in every service tier
both know. A difference listed in ``price-audit.yaml`` (bundled; each with its reason and source) is
explained; the others are what to look at.

genai-prices is an optional extra (``pip install 'genai-engine[audit]'``); this module imports it lazily.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ProviderFileError
from .loader import bundled_path, read_yaml
from .pricing import ModelPricing, Rates, Usage

if TYPE_CHECKING:
    from .registry import Registry

FIELDS = ("input", "output", "cached_input", "cache_write", "cache_write_1h")
DEFAULTS_TO = {"cached_input": "input", "cache_write": "input", "cache_write_1h": "cache_write"}
UTC = datetime.UTC
HORIZON = datetime.timedelta(days=730)  # scheduled changes this far ahead are compared too


@dataclass(frozen=True, slots=True)
class Known:
    """A known, justified difference: it is reported as explained, not as a disagreement."""

    provider: str
    model: str
    reason: str
    source: str
    fields: tuple[str, ...] = ()  # empty: every field
    service_tier: str | None = None  # None: any

    def covers(self, difference: Difference) -> bool:
        return (self.provider == difference.provider and self.model == difference.model
                and (not self.fields or difference.field in self.fields)
                and (self.service_tier is None or self.service_tier == (difference.service_tier or "standard")))


@dataclass(frozen=True, slots=True)
class AuditData:
    """``price-audit.yaml``: how our provider names map to genai-prices ids, and the known differences."""

    providers: Mapping[str, str]
    known: tuple[Known, ...]

    def provider_id(self, provider: str, model: str) -> tuple[str, str]:
        """The genai-prices provider id and model ref of one of our models."""
        mapped = self.providers.get(provider, provider)
        if "{route}" in mapped:  # a router whose model ids end in ':<provider>'
            ref, _, route = model.rpartition(":")
            return mapped.replace("{route}", route), ref or model
        return mapped, model


def load_audit_data(paths: Sequence[Path] = ()) -> AuditData:
    """The bundled ``price-audit.yaml``, then ``paths`` (your own known differences) added to it."""
    providers: dict[str, str] = {}
    known: list[Known] = []
    for path in [bundled_path("price-audit.yaml"), *paths]:
        data, _ = read_yaml(path)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ProviderFileError("a price-audit file is a mapping (genai_prices_providers, known_differences)",
                                    file=str(path), line=1)
        unknown = set(data) - {"genai_prices_providers", "known_differences"}
        if unknown:
            raise ProviderFileError(f"unknown key {sorted(unknown)[0]!r} (genai_prices_providers, known_differences)",
                                    file=str(path), key=sorted(unknown)[0])
        providers.update({str(k): str(v) for k, v in (data.get("genai_prices_providers") or {}).items()})
        for i, entry in enumerate(data.get("known_differences") or []):
            missing = [key for key in ("provider", "model", "reason", "source") if not (isinstance(entry, dict)
                                                                                      and entry.get(key))]
            if missing:
                raise ProviderFileError(f"a known difference needs {', '.join(missing)}", file=str(path),
                                        key=f"known_differences.{i}")
            fields = tuple(entry.get("fields") or ())
            bad = [f for f in fields if f not in FIELDS]
            if bad:
                raise ProviderFileError(f"unknown field {bad[0]!r} (one of {', '.join(FIELDS)})", file=str(path),
                                        key=f"known_differences.{i}.fields")
            known.append(Known(str(entry["provider"]), str(entry["model"]), str(entry["reason"]),
                               str(entry["source"]), fields, entry.get("service_tier")))
    return AuditData(providers, tuple(known))


@dataclass(frozen=True, slots=True)
class Difference:
    """One rate on which we and genai-prices disagree, where it applies, and both sources."""

    provider: str
    model: str
    field: str
    ours: Decimal
    theirs: Decimal
    where: str  # the probes it was seen at: instant, prompt size
    service_tier: str | None
    our_source: str
    their_source: str
    explained: Known | None = None


@dataclass
class AuditReport:
    """What the audit compared and found."""

    version: str
    at: datetime.datetime
    compared: list[tuple[str, str, str]] = field(default_factory=list)  # (provider, model, their model id)
    not_in_genai_prices: list[tuple[str, str]] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if d.explained is None]

    @property
    def explained(self) -> list[Difference]:
        return [d for d in self.differences if d.explained is not None]


def _genai_prices() -> Any:
    try:
        import genai_prices
        from genai_prices import data_snapshot
    except ImportError:
        raise ConfigError("the price audit needs genai-prices: pip install 'genai-engine[audit]'") from None
    return genai_prices, data_snapshot


def audit(registry: Registry, providers: Iterable[str] = (), at: datetime.datetime | None = None,
          data: AuditData | None = None, snapshot: Any = None) -> AuditReport:
    """Compare every priced model of ``providers`` (default: all) with genai-prices.

    ``snapshot``: a genai-prices ``DataSnapshot`` to compare with (default: the one installed)."""
    genai_prices, data_snapshot = _genai_prices()
    snapshot = snapshot if snapshot is not None else data_snapshot.get_snapshot()
    data = data or load_audit_data()
    at = (at or datetime.datetime.now(UTC)).astimezone(UTC)
    report = AuditReport(str(genai_prices.__version__), at)
    prices = registry.prices
    names = list(providers) or sorted(set(registry.names()) | prices.providers())
    for provider in names:
        spec = registry.spec(provider) if provider in registry else None
        if spec is not None and spec.local:
            continue
        file_prices = spec.pricing if spec is not None else None
        embedding = {m.id for m in spec.models if m.kind == "embedding"} if spec is not None else set()
        for model, ours in prices.schedules(provider, file_prices).items():
            provider_id, ref = data.provider_id(provider, model)
            try:
                their_provider, theirs = snapshot.find_provider_model(ref, None, provider_id, None)
            except LookupError:
                report.not_in_genai_prices.append((provider, model))
                continue
            report.compared.append((provider, model, f"{their_provider.id}/{theirs.id}"))
            their_source = f"genai-prices {report.version} {their_provider.id}/{theirs.id}"
            urls = their_provider.pricing_urls or []
            if urls:
                their_source += f" ({urls[0]})"
            fields = ("input",) if model in embedding else FIELDS  # an embedding bills its input only
            for difference in _compare(provider, model, ours, theirs, at, their_source, fields):
                explained = next((k for k in data.known if k.covers(difference)), None)
                report.differences.append(dataclasses.replace(difference, explained=explained))
    return report


# -- comparing one model ------------------------------------------------------------------------------------


def _their_value(value: Any, prompt: int) -> Decimal | None:
    """A genai-prices price at a prompt size: a `TieredPrices` reprices everything past a tier's start."""
    if value is None or isinstance(value, Decimal):
        return value
    price = value.base
    for tier in value.tiers:
        if prompt > tier.start:
            price = tier.price
    return price  # type: ignore[no-any-return]


def _their_rates(model_price: Any, prompt: int) -> Rates:
    given: dict[str, Decimal] = {}
    for ours, keys in (("input", ("input_mtok",)), ("output", ("output_mtok",)), ("cached_input", ("cache_read_mtok",)),
                       ("cache_write", ("cache_write_mtok", "cache_write_5m_mtok")),
                       ("cache_write_1h", ("cache_write_1h_mtok",))):
        for key in keys:
            value = _their_value(getattr(model_price, key, None), prompt)
            if value is not None:
                given[ours] = value
                break
    given.setdefault("input", Decimal(0))
    return Rates.of(given)


def _thresholds(value: Any) -> Iterator[int]:
    """Smallest prompts that reach each genai-prices tier."""
    if value is not None and not isinstance(value, Decimal):
        for tier in value.tiers:
            yield tier.start + 1


def _their_context(tier: str | None) -> dict[str, str] | None:
    if tier is None:
        return None
    return {"processing": "batch"} if tier == "batch" else {"service_tier": tier}


def _their_tiers(theirs: Any) -> set[str]:
    names = set()
    for variant in theirs.price_variants or ():
        when = variant.when
        if when.get("processing") == "batch" and len(when) == 1:
            names.add("batch")
        elif set(when) == {"service_tier"}:
            names.add(when["service_tier"])
    return names


def _instants(ours: ModelPricing, theirs: Any, at: datetime.datetime) -> list[datetime.datetime]:
    """``at``, the later price changes on either side, and each hour of a week where either side reads the hour."""
    found = {at}
    for period in ours.periods:
        if period.starts is not None and at < period.starts <= at + HORIZON:
            found.add(period.starts)
    conditional = theirs.prices if isinstance(theirs.prices, list) else []
    hourly = any(period.rules.windows for period in ours.periods)
    for price in conditional:
        constraint = price.constraint
        start = getattr(constraint, "start_date", None)
        if start is not None:
            moment = datetime.datetime(start.year, start.month, start.day, tzinfo=UTC)
            if at < moment <= at + HORIZON:
                found.add(moment)
        hourly = hourly or hasattr(constraint, "start_time")
    if hourly:  # the half hour of every hour of the week that starts with the Monday of `at`
        monday = (at - datetime.timedelta(days=at.weekday())).replace(hour=0, minute=30, second=0, microsecond=0)
        found.update(monday + datetime.timedelta(hours=h) for h in range(7 * 24))
    return sorted(found)


def _compare(provider: str, model: str, ours: ModelPricing, theirs: Any, at: datetime.datetime,
             their_source: str, fields: Sequence[str] = FIELDS) -> list[Difference]:
    standard_theirs = theirs.get_prices(at)
    sizes = {1}
    for period in ours.periods:
        for rules in (period.rules, *period.service.values()):
            for prompt_tier in rules.tiers:
                sizes.update((prompt_tier.threshold - 1, prompt_tier.threshold))
    for key in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok"):
        for threshold in _thresholds(getattr(standard_theirs, key, None)):
            sizes.update((threshold - 1, threshold))
    sizes.discard(0)
    our_tiers = {name for period in ours.periods for name in period.service}
    tiers: list[str | None] = [None, *sorted(our_tiers & _their_tiers(theirs))]
    found: dict[tuple[str, str | None, Decimal, Decimal], list[str]] = {}
    sources: dict[tuple[str, str | None, Decimal, Decimal], str] = {}
    for instant in _instants(ours, theirs, at):
        for tier in tiers:
            model_price = theirs.get_prices(instant, _their_context(tier))
            for size in sorted(sizes):
                charge = ours.charge(Usage(size, 0), at=instant, service_tier=tier)
                if charge is None:
                    continue
                their_rates = _their_rates(model_price, size)
                for name in fields:
                    mine, other = getattr(charge.rates, name), getattr(their_rates, name)
                    parent = DEFAULTS_TO.get(name)
                    if parent is not None and mine == getattr(charge.rates, parent) and \
                            other == getattr(their_rates, parent):
                        continue  # both at their default: any difference is the parent rate's, reported there
                    if mine != other:
                        found_key = (name, tier, mine, other)
                        found.setdefault(found_key, []).append(_where(instant, at, size, len(sizes) > 1))
                        sources.setdefault(found_key, charge.price.source or "(no source given)")
    return [Difference(provider, model, name, mine, other, _summary(places), tier, sources[key], their_source)
            for key, places in found.items() for name, tier, mine, other in [key]]


def _where(instant: datetime.datetime, at: datetime.datetime, size: int, sized: bool) -> str:
    when = "" if instant == at else instant.strftime("%a %Y-%m-%d %H:%M UTC")
    prompt = f"prompt {size:,}" if sized else ""
    return ", ".join(part for part in (when, prompt) if part) or "now"


def _summary(places: list[str]) -> str:
    unique = list(dict.fromkeys(places))
    return unique[0] if len(unique) == 1 else f"{unique[0]} (and {len(unique) - 1} more)"
