"""The provider-file models: declared options, cross-key checks, env names and exact prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from engine.spec import OptionSpec, Price, ProviderSpec, StreamSpec, env_name, option_value_problem

HTTP: dict[str, Any] = {
    "name": "acme", "base_url": "https://api.acme.example/v1",
    "request": {"path": "/chat", "body": "{{ {'model': model} | tojson }}"}, "response": {"content": "$.text"},
}


def spec(**changes: Any) -> ProviderSpec:
    return ProviderSpec.model_validate({**HTTP, **changes})


def option(type: str, **kw: Any) -> OptionSpec:
    return OptionSpec.model_validate({"type": type, "description": "a knob", **kw})


@pytest.mark.parametrize(("type", "value"), [
    ("string", "x"), ("integer", 3), ("number", 3), ("number", 0.5), ("boolean", False),
    ("object", {"a": 1}), ("array", [1]), ("integer", None),
])
def test_values_that_fit(type: str, value: Any) -> None:
    assert option_value_problem(option(type), value) is None
    assert option(type, default=value).default == value


@pytest.mark.parametrize(("type", "value", "message"), [
    ("integer", True, "must be of type integer, got bool True"),
    ("number", False, "must be of type number, got bool False"),
    ("integer", 1.5, "must be of type integer, got float 1.5"),
    ("string", 1, "must be of type string, got int 1"),
    ("boolean", "yes", "must be of type boolean, got str 'yes'"),
    ("array", {"a": 1}, "must be of type array, got dict {'a': 1}"),
])
def test_values_that_do_not_fit(type: str, value: Any, message: str) -> None:
    assert option_value_problem(option(type), value) == message
    with pytest.raises(ValidationError, match="default " + message.removeprefix("must be ").split(",")[0]):
        option(type, default=value)


def test_choices() -> None:
    knob = option("string", choices=["a", "b"], default="a")
    assert option_value_problem(knob, "b") is None
    assert option_value_problem(knob, "c") == "must be one of 'a', 'b', got 'c'"
    with pytest.raises(ValidationError, match="default one of 'a', 'b', got 'c'"):
        option("string", choices=["a", "b"], default="c")


def test_options_for_merges_a_models_values_over_the_defaults() -> None:
    provider = spec(options={"temperature": {"type": "boolean", "default": True, "description": "d"},
                             "field": {"type": "string", "default": "max_tokens", "description": "d"}},
                    models=[{"id": "o3", "options": {"temperature": False}}, {"id": "gpt"}])
    assert provider.options_for("o3") == {"temperature": False, "field": "max_tokens"}
    assert provider.options_for("gpt") == provider.options_for("other") == {"temperature": True, "field": "max_tokens"}
    assert provider.problems() == []


def test_problems_name_unknown_and_ill_typed_model_options() -> None:
    provider = spec(options={"n": {"type": "integer", "default": 1, "description": "d"}},
                    models=[{"id": "a", "options": {"n": "two", "colour": "red"}}, {"id": "b", "options": {"n": 2}}])
    assert provider.problems() == [
        (("models", 0, "options", "n"), "must be of type integer, got str 'two'"),
        (("models", 0, "options", "colour"), "unknown option (declared options: n)"),
    ]
    assert spec(models=[{"id": "a", "options": {"x": 1}}]).problems() == [
        (("models", 0, "options", "x"), "unknown option (declared options: none)")]


def test_aliases_and_default_model() -> None:
    provider = spec(models=[{"id": "big-2", "aliases": ["big", "big-latest"]}], default_model="big")
    assert provider.resolve_alias("big-latest") == provider.resolve_alias("big-2") == "big-2"
    assert provider.resolve_alias("other") == "other"
    with pytest.raises(ValidationError, match="default_model 'small' is not one of the listed models"):
        spec(models=[{"id": "big-2"}], default_model="small")
    assert spec(default_model="anything").default_model == "anything"  # no models listed: any id goes


def test_env_names() -> None:
    assert env_name("azure-openai", "api_key") == "GENAI_AZURE_OPENAI_API_KEY"
    assert env_name("a.b_c", "BASE_URL") == "GENAI_A_B_C_BASE_URL"
    provider = spec(name="azure-openai", auth={"env": ["AZURE_OPENAI_API_KEY"]})
    assert provider.key_env == ["GENAI_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"]


@pytest.mark.parametrize(("missing", "message"), [
    ("base_url", "needs base_url"), ("request", "needs request"), ("response", "needs response"),
])
def test_an_http_provider_needs_base_url_request_and_response(missing: str, message: str) -> None:
    data = {k: v for k, v in HTTP.items() if k != missing}
    with pytest.raises(ValidationError, match=message):
        ProviderSpec.model_validate(data)
    assert ProviderSpec.model_validate({"name": "b", "backend": "pkg.mod:Backend"}).request is None


def test_post_needs_a_body_but_get_does_not() -> None:
    with pytest.raises(ValidationError, match=r"request\.body is required"):
        spec(request={"path": "/chat"})
    assert spec(request={"path": "/chat", "method": "GET"}).request is not None


def test_query_auth_needs_its_parameter() -> None:
    with pytest.raises(ValidationError, match=r"needs auth\.query_param"):
        spec(auth={"type": "query"})
    assert spec(auth={"type": "query", "query_param": "key"}).auth.query_param == "key"


def test_a_stream_needs_rules_and_an_end_marker() -> None:
    with pytest.raises(ValidationError, match="needs 'chunk'"):
        StreamSpec.model_validate({"done": "[DONE]"})
    with pytest.raises(ValidationError, match="needs an end marker"):
        StreamSpec.model_validate({"chunk": {"delta": "$.d"}})
    assert StreamSpec.model_validate({"chunk": {"delta": "$.d"}, "done": "[DONE]"}).done == "[DONE]"
    assert StreamSpec.model_validate({"events": {"stop": {"end": True}}}).events["stop"].end is True
    assert StreamSpec.model_validate({"chunk": {"end": "$.done"}}).chunk is not None


def test_unknown_keys_and_bad_names_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        spec(base_ulr="https://typo")
    with pytest.raises(ValidationError, match="pattern"):
        spec(name="Acme")


def test_price_keeps_the_written_decimal_digits() -> None:
    price = Price.model_validate({"input": 0.59, "output": 0.79, "cached_input": 0.1})
    assert price.input == Decimal("0.59") and price.output == Decimal("0.79")
    assert price.cached_input == Decimal("0.1") and price.cache_write is None
    assert Price.model_validate({"input": 3, "output": "1.25"}).output == Decimal("1.25")
    with pytest.raises(ValidationError):
        Price.model_validate({"input": -1, "output": 1})
