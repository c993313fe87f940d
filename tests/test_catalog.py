"""Catalog-wide checks: every bundled provider loads, renders every scenario as its golden file says,
has prices for its paid models, and parses its recorded responses, streams and errors.

Adding a provider file without golden files, fixtures or prices fails here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import CompletionRequest, Settings, list_providers
from engine.errors import InvalidRequestError
from engine.registry import Registry
from engine.types import EmbeddingRequest

from .conftest import FIXTURES, GOLDEN, TEST_KEY, Golden, make_settings, replay, replay_embeddings
from .scenarios import SCENARIOS

PROVIDERS = list_providers(Settings())
REGISTRY = Registry(make_settings())
HTTP_PROVIDERS = [name for name in PROVIDERS if REGISTRY.spec(name).backend is None]
CHAT_PROVIDERS = [name for name in HTTP_PROVIDERS if REGISTRY.spec(name).request is not None]
EMBEDDING_PROVIDERS = [name for name in HTTP_PROVIDERS if REGISTRY.spec(name).embeddings is not None]
# An embeddings call: two texts, then with every option the provider takes.
EMBEDDING_SCENARIOS = {
    "embeddings": EmbeddingRequest(inputs=["The capital of France.", "Paris — ✓"]),
    "embeddings_options": EmbeddingRequest(inputs=["The capital of France."], dimensions=256, input_type="query",
                                           user="user-42"),
}


def scenario_request(provider: str, scenario: str) -> CompletionRequest:
    request = SCENARIOS[scenario]
    if REGISTRY.spec(provider).default_model is None:  # servers that only know the model you deploy
        request = request.model_copy(update={"model": "example-model"})
    return request


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_loads_and_compiles(provider: str) -> None:
    spec = REGISTRY.spec(provider)
    compiled = REGISTRY.compiled(provider)
    assert compiled.spec is spec
    assert spec.docs_url and spec.checked, "each provider file names its reference and the date it was checked"
    ids = [m.id for m in spec.models]
    assert len(ids) == len(set(ids)), "model ids are unique"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
def test_rendered_request_matches_golden(provider: str, scenario: str, golden: Golden) -> None:
    """The exact request, or, for a part or option the provider cannot take, the refusal (nothing is sent)."""
    try:
        rendered = REGISTRY.create(provider).render(scenario_request(provider, scenario))  # type: ignore[attr-defined]
    except InvalidRequestError as exc:
        data: dict[str, Any] = {"refused": str(exc)}
    else:
        data = rendered.to_dict()
    assert TEST_KEY not in repr(data), "the API key is redacted"
    golden.check(GOLDEN / provider / f"{scenario}.json", data)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_paid_models_have_prices(provider: str) -> None:
    spec = REGISTRY.spec(provider)
    if spec.local:
        return
    missing = [m.id for m in spec.models if REGISTRY.prices.price(provider, m.id, spec.pricing) is None]
    assert not missing, f"{provider}: listed paid models without a price in pricing.yaml: {missing}"


def test_bundled_prices_name_source_and_date() -> None:
    prices = REGISTRY.prices
    for provider in prices.providers():
        for model, price in prices.models(provider).items():
            assert price.source and price.date, f"pricing.yaml: {provider}/{model} needs source and date"


def _cases(provider: str) -> dict[str, Any]:
    folder = FIXTURES / provider
    path = folder / "expected.yaml"
    assert path.exists(), f"{provider}: tests/fixtures/{provider}/expected.yaml is missing"
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, file in (("response", "response.json"), ("stream", "stream.txt"), ("error", "error.json")):
        assert name in cases, f"{provider}: expected.yaml needs a {name!r} case"
        assert (folder / file).exists(), f"{provider}: tests/fixtures/{provider}/{file} is missing"
    return cases


def _check(result: Any, expect: dict[str, Any]) -> None:
    for key, value in expect.items():
        if key == "error_contains":
            assert result.error and value in result.error, result.error
        elif key == "cost_usd" and value is not None:
            assert result.cost_usd == pytest.approx(value, rel=1e-9, abs=1e-15), result
        else:
            actual = getattr(result, key)
            assert actual == value, f"{key}: {actual!r} != {value!r}"


def _request(case: dict[str, Any], stream: bool) -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "user", "content": "hi"}], model=case.get("model"), stream=stream)


@pytest.fixture(autouse=True)
def _call_time(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A case whose price depends on the hour (expected.yaml ``at``) is priced as if it started then."""
    provider = request.node.callspec.params.get("provider") if hasattr(request.node, "callspec") else None
    if provider is None or not (FIXTURES / provider / "expected.yaml").exists():
        return
    cases = yaml.safe_load((FIXTURES / provider / "expected.yaml").read_text(encoding="utf-8"))
    when = cases.get("at")
    if when is not None:
        import datetime

        fixed = datetime.datetime.fromisoformat(str(when)).replace(tzinfo=datetime.UTC)
        monkeypatch.setattr("engine.provider.now", lambda: fixed)


@pytest.mark.parametrize("piece", [1, 7, 4096])
@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
def test_recorded_stream_extracts(provider: str, piece: int) -> None:
    case = _cases(provider)["stream"]
    body = (FIXTURES / provider / "stream.txt").read_bytes()
    result = asyncio.run(replay(REGISTRY, provider, _request(case, True), 200, body, stream=True, piece=piece))
    assert result.success, result.error
    _check(result, case["expect"])


@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
def test_recorded_stream_cut_off_fails_with_partial_text(provider: str) -> None:
    case = _cases(provider)["stream"]
    body = (FIXTURES / provider / "stream.txt").read_bytes()
    cut = body[: int(len(body) * 0.6)]
    result = asyncio.run(replay(REGISTRY, provider, _request(case, True), 200, cut, stream=True))
    assert not result.success and result.error_kind is not None
    assert case["expect"]["content"].startswith(result.content)


@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
def test_recorded_response_extracts(provider: str) -> None:
    case = _cases(provider)["response"]
    body = (FIXTURES / provider / "response.json").read_bytes()
    result = asyncio.run(replay(REGISTRY, provider, _request(case, False), case.get("status", 200), body))
    assert result.success, result.error
    assert result.raw_response is not None and result.provider == provider
    _check(result, case["expect"])


@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
def test_recorded_error_extracts(provider: str) -> None:
    cases = _cases(provider)
    case = {"model": cases["response"].get("model"), **cases["error"]}
    body = (FIXTURES / provider / "error.json").read_bytes()
    settings = make_settings(max_retries=0)
    registry = Registry(settings)
    result = asyncio.run(replay(registry, provider, _request(case, False), case["status"], body))
    assert not result.success
    assert result.status_code == case["status"]
    _check(result, case["expect"])


@pytest.mark.parametrize("scenario", sorted(EMBEDDING_SCENARIOS))
@pytest.mark.parametrize("provider", EMBEDDING_PROVIDERS)
def test_rendered_embeddings_request_matches_golden(provider: str, scenario: str, golden: Golden) -> None:
    """The exact requests of an embeddings call, or the refusal of an option the provider does not take."""
    request = EMBEDDING_SCENARIOS[scenario]
    if REGISTRY.spec(provider).embeddings.default_model is None:  # type: ignore[union-attr]
        request = request.model_copy(update={"model": "example-embedding-model"})
    try:
        rendered = REGISTRY.create(provider).render_embeddings(request)  # type: ignore[attr-defined]
    except InvalidRequestError as exc:
        data: Any = {"refused": str(exc)}
    else:
        data = [r.to_dict() for r in rendered]
        data = data[0] if len(data) == 1 else data
    assert TEST_KEY not in repr(data), "the API key is redacted"
    golden.check(GOLDEN / provider / f"{scenario}.json", data)


@pytest.mark.parametrize("provider", [p for p in EMBEDDING_PROVIDERS if (FIXTURES / p / "embeddings.json").exists()])
def test_recorded_embeddings_extract(provider: str) -> None:
    case = yaml.safe_load((FIXTURES / provider / "expected.yaml").read_text(encoding="utf-8"))["embeddings"]
    body = (FIXTURES / provider / "embeddings.json").read_bytes()
    request = EmbeddingRequest(inputs=case["inputs"], model=case.get("model"))
    result = asyncio.run(replay_embeddings(REGISTRY, provider, request, 200, body))
    assert result.success, result.error
    expect = dict(case["expect"])
    assert [v[:3] for v in result.vectors if v] == expect.pop("first_values")
    _check(result, expect)


def test_providers_with_their_own_embeddings_format_have_a_recorded_reply() -> None:
    """Every embeddings wire family is pinned by a reply as the API sends it (OpenAI-compatible files that keep
    openai.yaml's response paths share its fixture)."""
    own = {p for p in EMBEDDING_PROVIDERS
           if REGISTRY.spec(p).embeddings.response != REGISTRY.spec("openai").embeddings.response}  # type: ignore[union-attr]
    missing = sorted(p for p in own | {"openai"} if not (FIXTURES / p / "embeddings.json").exists())
    assert not missing, f"embeddings replies to record in tests/fixtures/<provider>/embeddings.json: {missing}"


def test_every_provider_has_golden_files_and_no_stray_ones() -> None:
    expected = {(p, f"{s}.json") for p in CHAT_PROVIDERS for s in SCENARIOS}
    expected |= {(p, f"{s}.json") for p in EMBEDDING_PROVIDERS for s in EMBEDDING_SCENARIOS}
    present = {(p.parent.name, p.name) for p in Path(GOLDEN).glob("*/*.json")}
    assert present <= expected, f"golden files for unknown providers/scenarios: {sorted(present - expected)}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_extends_chains_stay_short_and_readable(provider: str) -> None:
    # A compatible provider extends a base in a few lines; a variant of it (another way to sign in) may extend
    # it in turn, as briefly, and no further.
    chain = REGISTRY.chain(provider)
    assert len(chain) <= 3, f"{provider}: extends chain {[s.name for s in chain]} is longer than two steps"
    for source in chain[:-1]:
        lines = [line for line in source.text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert len(lines) <= 50, f"{source.name}: a compatible provider's file should be a few lines, not {len(lines)}"


def test_json_mode_providers_state_the_schema_in_the_prompt() -> None:
    body = REGISTRY.create("deepseek").render(SCENARIOS["json_schema"]).json  # type: ignore[attr-defined]
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system" and '"population"' in body["messages"][0]["content"]
