"""The price audit: the bundled catalog against the pinned genai-prices, and each kind of difference found."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.registry import Registry

from .conftest import make_settings

genai_prices = pytest.importorskip("genai_prices", reason="genai-prices is the [audit] extra (installed by [dev])")

PINNED = "0.2.3"
AT = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def _pinned() -> None:
    if genai_prices.__version__ != PINNED:
        pytest.skip(f"the bundled catalog is audited against genai-prices {PINNED}, found {genai_prices.__version__}")


def test_the_bundled_catalog_has_no_unexplained_disagreement() -> None:
    from engine.audit import audit

    _pinned()
    report = audit(Registry(make_settings()), at=AT)
    assert report.version == PINNED
    assert len(report.compared) >= 100
    shown = [f"{d.provider}/{d.model} {d.field} ({d.service_tier}) {d.where}: {d.ours} vs {d.theirs}"
             for d in report.unexplained]
    assert not shown, "\n".join(shown)
    # The known differences in price-audit.yaml are all still seen (none is stale).
    from engine.audit import load_audit_data

    used = {(d.explained.provider, d.explained.model) for d in report.explained if d.explained is not None}
    known = {(k.provider, k.model) for k in load_audit_data().known}
    assert known == used, f"price-audit.yaml explains differences that no longer occur: {sorted(known - used)}"


def _snapshot(models: list[object], provider_id: str = "acme") -> object:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import Provider

    return DataSnapshot(providers=[Provider(id=provider_id, name="Acme", api_pattern="https://acme", models=models)],
                        from_auto_update=False)


def _model(model_id: str, prices: object, variants: list[object] | None = None) -> object:
    from genai_prices.types import ClauseEquals, ModelInfo

    return ModelInfo(id=model_id, match=ClauseEquals(equals=model_id), prices=prices, price_variants=variants)


def _registry(tmp_path: Path, prices: str) -> Registry:
    user = tmp_path / "mine.yaml"
    user.write_text(prices)
    return Registry(make_settings(pricing_file=user, providers_path=[tmp_path / "providers"]))


ACME = """\
name: acme
extends: openai
docs_url: https://acme.example/docs
checked: 2026-12-01
base_url: https://api.acme.example/v1
default_model: m
models: [{id: m}]
"""


def test_each_kind_of_difference_is_found_where_it_applies(tmp_path: Path) -> None:
    from genai_prices.types import (
        ConditionalPrice,
        ModelPrice,
        PriceVariant,
        StartDateConstraint,
        Tier,
        TieredPrices,
    )

    from engine.audit import AuditData, audit

    (tmp_path / "providers").mkdir()
    (tmp_path / "providers" / "acme.yaml").write_text(ACME)
    registry = _registry(tmp_path, """\
acme:
  tiered: {input: 1, output: 2, tiers: [{above: 1000, input: 2, output: 3}]}
  dated:
    - {input: 1, output: 1, until: 2026-12-31}
    - {input: 2, output: 2, from: 2027-01-01}
  tiers: {input: 1, output: 2, service_tiers: {flex: {multiplier: 0.5}}}
  same: {input: 1, cached_input: 0.1, output: 2}
  mine-only: {input: 1, output: 1}
""")
    D = Decimal
    snapshot = _snapshot([
        # The other side starts the tier one token later: they differ only at exactly 1,001 tokens.
        _model("tiered", ModelPrice(input_mtok=TieredPrices(D(1), [Tier(1001, D(2))]),
                                    output_mtok=TieredPrices(D(2), [Tier(1001, D(3))]))),
        # A scheduled change one day later than ours.
        _model("dated", [ConditionalPrice(prices=ModelPrice(input_mtok=D(1), output_mtok=D(1))),
                         ConditionalPrice(constraint=StartDateConstraint(datetime.date(2027, 1, 2)),
                                          prices=ModelPrice(input_mtok=D(2), output_mtok=D(2)))]),
        _model("tiers", ModelPrice(input_mtok=D(1), output_mtok=D(2)),
               [PriceVariant(when={"service_tier": "flex"}, prices=ModelPrice(input_mtok=D("0.6")))]),
        _model("same", ModelPrice(input_mtok=D(1), cache_read_mtok=D("0.1"), output_mtok=D(2))),
    ])
    data = AuditData({}, ())
    report = audit(registry, ["acme"], at=AT, data=data, snapshot=snapshot)
    found = {(d.model, d.field, d.service_tier, d.where, d.ours, d.theirs) for d in report.differences}
    assert found == {
        ("tiered", "input", None, "prompt 1,001", D(2), D(1)),
        ("tiered", "output", None, "prompt 1,001", D(3), D(2)),
        ("dated", "input", None, "Fri 2027-01-01 00:00 UTC", D(2), D(1)),
        ("dated", "output", None, "Fri 2027-01-01 00:00 UTC", D(2), D(1)),
        ("tiers", "input", "flex", "now", D("0.5"), D("0.6")),
        ("tiers", "output", "flex", "now", D(1), D(2)),  # their flex variant leaves output at the usual rate
    }
    assert ("acme", "mine-only") in report.not_in_genai_prices
    assert {m for _, m, _ in report.compared} == {"tiered", "dated", "tiers", "same"}
    difference = next(d for d in report.differences if d.model == "tiers")
    assert difference.their_source.startswith(f"genai-prices {genai_prices.__version__} acme/tiers")


def test_a_known_difference_is_explained_and_the_cli_exit_code_follows(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from genai_prices.types import ModelPrice

    from engine.audit import AuditData, Known, audit
    from engine.cli import main

    (tmp_path / "providers").mkdir()
    (tmp_path / "providers" / "acme.yaml").write_text(ACME)
    registry = _registry(tmp_path, "acme:\n  m: {input: 1, output: 2, source: https://acme.example/p}\n")
    snapshot = _snapshot([_model("m", ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(3)))])
    known = Known("acme", "m", "their output rate is last year's", "https://acme.example/p", ("output",))
    report = audit(registry, ["acme"], at=AT, data=AuditData({}, (known,)), snapshot=snapshot)
    assert not report.unexplained and report.explained[0].explained is known
    assert report.explained[0].our_source == "https://acme.example/p"

    # The command line, on the real bundled snapshot: a user's override that disagrees is reported.
    _pinned()
    mine = tmp_path / "override.yaml"
    mine.write_text("xai:\n  grok-4.7: {output: 7}\n")
    import os

    os.environ["GENAI_PRICING_FILE"] = str(mine)
    try:
        code = main(["--no-color", "pricing", "audit", "xai", "--at", "2026-12-01T12:00", "--json"])
    finally:
        del os.environ["GENAI_PRICING_FILE"]
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    (difference,) = [d for d in out["differences"] if d["explained"] is None]
    assert (difference["model"], difference["rate"], difference["ours"], difference["genai_prices"]) == (
        "grok-4.7", "output", "7", "6")
    explanations = tmp_path / "known.yaml"
    explanations.write_text("known_differences:\n  - {provider: xai, model: grok-4.7, fields: [output], "
                            "reason: negotiated rate, source: contract 2026-11}\n")
    os.environ["GENAI_PRICING_FILE"] = str(mine)
    try:
        code = main(["--no-color", "pricing", "audit", "xai", "--at", "2026-12-01T12:00", "--known",
                     str(explanations)])
    finally:
        del os.environ["GENAI_PRICING_FILE"]
    assert code == 0 and "0 unexplained, 1 explained" in capsys.readouterr().out


def test_a_malformed_known_differences_file_names_the_entry(tmp_path: Path) -> None:
    from engine import ProviderFileError
    from engine.audit import load_audit_data

    bad = tmp_path / "known.yaml"
    bad.write_text("known_differences:\n  - {provider: xai, model: grok-4.7}\n")
    with pytest.raises(ProviderFileError, match="needs reason, source"):
        load_audit_data([bad])
