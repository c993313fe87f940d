"""Rendering requests: templates see data, never run it; bad templates fail naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import (
    CompletionRequest,
    HTTPRequest,
    MissingAPIKeyError,
    Settings,
    TemplateRenderError,
    render_request,
)
from engine.errors import ConfigError
from engine.registry import Registry

from .conftest import TEST_KEY, make_settings
from .test_loader import MINIMAL, write

HELLO = [{"role": "user", "content": "hi"}]


def render_example(folder: Path, overrides: str, request: CompletionRequest | None = None) -> HTTPRequest:
    """Render a request with a dropped-in 'example' provider (extends openai) plus YAML overrides."""
    write(folder, "example", MINIMAL.format(name="example") + overrides)
    registry = Registry(Settings(providers_path=[folder], api_keys={"example": TEST_KEY}))
    return registry.create("example").render(request or CompletionRequest(messages=HELLO))  # type: ignore[attr-defined]


def test_user_content_is_data_never_template_source() -> None:
    evil = "{{ 7*7 }} {% raw %}x{% endraw %} \"}, \"model\": \"hacked\" </script>"
    request = CompletionRequest(messages=[{"role": "user", "content": evil}], model="gpt-4o",
                                extra={"user": "{{ config }}"})
    rendered = render_request("openai", request, make_settings())
    assert rendered.json["messages"][0]["content"] == evil
    assert rendered.json["model"] == "gpt-4o"
    assert rendered.json["user"] == "{{ config }}"


def test_model_in_the_path_is_percent_encoded(tmp_path: Path) -> None:
    request = CompletionRequest(messages=HELLO, model="../../admin?x=1")
    rendered = render_example(tmp_path, "request:\n  path: /models/{{ model }}:generate\n", request)
    assert rendered.url == "https://api.example.com/v1/models/..%2F..%2Fadmin%3Fx%3D1:generate"


def test_a_value_printed_without_tojson_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateRenderError, match=r"example\.yaml:\d+: request\.body: .*without '\| tojson'") as err:
        render_example(tmp_path, "request:\n  body: '{\"model\": \"{{ model }}\"}'\n")
    assert err.value.file.endswith("example.yaml") and err.value.key == "request.body"
    assert "without '| tojson'" in err.value.message


def test_a_template_rendering_invalid_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateRenderError, match=r"example\.yaml:\d+: request\.body: rendered invalid JSON"):
        render_example(tmp_path, "request:\n  body: '{\"model\": {{ model | tojson }},}'\n")


def test_a_template_error_names_the_line_of_the_template_that_failed(tmp_path: Path) -> None:
    body = "request:\n  body: |\n    {% set a = 1 %}\n    {{ {\"model\": model,\n        \"x\": 1 // 0} | tojson }}\n"
    with pytest.raises(TemplateRenderError) as err:
        render_example(tmp_path, body)
    source = (tmp_path / "example.yaml").read_text().splitlines()
    assert err.value.line is not None and "1 // 0" in source[err.value.line - 1]
    assert "by zero" in err.value.message


def test_undefined_template_variable_is_an_error_not_empty(tmp_path: Path) -> None:
    with pytest.raises(TemplateRenderError, match="'modle' is undefined"):
        render_example(tmp_path, "request:\n  body: '{{ {\"model\": modle} | tojson }}'\n")


def test_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    with pytest.raises(TemplateRenderError):
        render_example(tmp_path, "request:\n  body: '{{ {\"x\": messages.__class__.__mro__} | tojson }}'\n")


def test_missing_api_key_names_the_env_variables_before_sending() -> None:
    with pytest.raises(MissingAPIKeyError, match="set GENAI_GROQ_API_KEY or GROQ_API_KEY"):
        render_request("groq", CompletionRequest(messages=HELLO), Settings())


def test_key_from_the_providers_own_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-from-env-123")
    rendered = render_request("groq", CompletionRequest(messages=HELLO), Settings())
    assert rendered.headers["Authorization"] == "Bearer gsk-from-env-123"
    assert "gsk-from-env-123" not in repr(rendered) and "gsk-from-env-123" not in str(rendered.to_dict())


def test_genai_prefixed_key_wins_over_the_providers_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "plain-key-1")
    monkeypatch.setenv("GENAI_GROQ_API_KEY", "genai-key-2")
    rendered = render_request("groq", CompletionRequest(messages=HELLO), Settings())
    assert rendered.headers["Authorization"] == "Bearer genai-key-2"


def test_key_and_base_url_from_a_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("GENAI_GROQ_API_KEY=dotenv-key-9\nGENAI_GROQ_BASE_URL=http://127.0.0.1:9/v1\n")
    monkeypatch.chdir(tmp_path)
    rendered = render_request("groq", CompletionRequest(messages=HELLO), Settings())
    assert rendered.headers["Authorization"] == "Bearer dotenv-key-9"
    assert rendered.url == "http://127.0.0.1:9/v1/chat/completions"


def test_base_url_override_from_settings() -> None:
    settings = make_settings(base_urls={"vllm": "http://127.0.0.1:8001/v1/"})
    rendered = render_request("vllm", CompletionRequest(messages=HELLO, model="m"), settings)
    assert rendered.url == "http://127.0.0.1:8001/v1/chat/completions"


def test_local_provider_with_optional_key_sends_no_auth_header() -> None:
    rendered = render_request("vllm", CompletionRequest(messages=HELLO, model="m"), Settings())
    assert "Authorization" not in rendered.headers


def test_model_alias_resolves_to_its_id() -> None:
    request = CompletionRequest(messages=HELLO, model="claude-haiku-4-5-20251001")
    assert render_request("anthropic", request, make_settings()).json["model"] == "claude-haiku-4-5"


def test_per_model_options_drop_temperature_for_reasoning_models() -> None:
    settings = make_settings()
    assert "temperature" not in render_request("openai", CompletionRequest(messages=HELLO, model="o3"), settings).json
    assert render_request("openai", CompletionRequest(messages=HELLO, model="gpt-4o"), settings).json[
        "temperature"] == 0.7


def test_anthropic_gets_system_top_level_and_a_default_max_tokens() -> None:
    request = CompletionRequest(messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "U",
                                                                               "name": "bob"}])
    body = render_request("anthropic", request, make_settings()).json
    assert body["system"] == "S" and body["max_tokens"] == 4096
    assert body["messages"] == [{"role": "user", "content": "U"}]


def test_responses_reasoning_models_ask_for_encrypted_reasoning_and_send_no_temperature() -> None:
    settings = make_settings()
    reasoning = render_request("openai-responses", CompletionRequest(messages=HELLO, model="gpt-5-mini"), settings).json
    assert "temperature" not in reasoning and reasoning["include"] == ["reasoning.encrypted_content"]
    assert reasoning["store"] is False and "reasoning" not in reasoning  # a summary only when asked for
    plain = render_request("openai-responses", CompletionRequest(messages=HELLO, model="gpt-4.1"), settings).json
    assert plain["temperature"] == 0.7 and "include" not in plain  # other models reject encrypted reasoning


def test_responses_extra_text_reasoning_and_include_are_merged_not_replaced() -> None:
    request = CompletionRequest(messages=HELLO, model="gpt-5", output_schema={"title": "A", "type": "object"},
                                extra={"reasoning": {"effort": "low", "summary": "auto"}, "text": {"verbosity": "low"},
                                       "include": ["message.output_text.logprobs", "reasoning.encrypted_content"],
                                       "service_tier": "flex", "tools": [{"type": "web_search"}]},
                                tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    body = render_request("openai-responses", request, make_settings()).json
    assert body["tools"] == [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}},
                              "strict": False}, {"type": "web_search"}]  # built-in tools next to the functions
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "A", "schema": {"title": "A", "type": "object"}},
                            "verbosity": "low"}
    assert body["include"] == ["reasoning.encrypted_content", "message.output_text.logprobs"]
    assert body["service_tier"] == "flex"


def test_responses_json_object_mode_states_the_schema_in_the_instructions(tmp_path: Path) -> None:
    write(tmp_path, "relay", "name: relay\nextends: openai-responses\nbase_url: https://relay.example/v1\n"
                             "docs_url: https://relay.example/docs\nchecked: 2026-12-01\n"
                             "options: {json_mode: {default: json_object}, user_field: {default: user}}\n")
    registry = Registry(Settings(providers_path=[tmp_path], api_keys={"relay": TEST_KEY}))
    request = CompletionRequest(messages=[{"role": "system", "content": "Be brief."}, *HELLO], model="m", user="u-1",
                                output_schema={"type": "object", "properties": {"city": {"type": "string"}}})
    body = registry.create("relay").render(request).json  # type: ignore[attr-defined]
    assert body["text"] == {"format": {"type": "json_object"}} and body["user"] == "u-1"
    assert body["instructions"].startswith("Be brief.\n\nReply with a JSON object") and '"city"' in body["instructions"]


def test_no_model_and_no_default_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no model given and provider 'vllm' has no default_model"):
        render_request("vllm", CompletionRequest(messages=HELLO), Settings())


def test_request_validation_rejects_messages_without_role() -> None:
    with pytest.raises(ValueError, match="needs a 'role' key"):
        CompletionRequest(messages=[{"content": "x"}])


def test_headers_and_query_values_that_render_empty_are_left_out(tmp_path: Path) -> None:
    write(tmp_path, "example", MINIMAL.format(name="example") + """\
config:
  referer: {env: [EXAMPLE_REFERER]}
request:
  headers:
    X-Referer: "{{ config.get('referer', '') }}"
  query:
    tag: "{{ config.get('referer', '') }}"
""")
    registry = Registry(Settings(providers_path=[tmp_path], api_keys={"example": TEST_KEY}))
    bare = registry.create("example").render(CompletionRequest(messages=HELLO))  # type: ignore[attr-defined]
    assert "X-Referer" not in bare.headers and "?" not in bare.url
    with_value = Registry(Settings(providers_path=[tmp_path], api_keys={"example": TEST_KEY},
                                   provider_config={"example": {"referer": "https://me.example"}}))
    sent = with_value.create("example").render(CompletionRequest(messages=HELLO))  # type: ignore[attr-defined]
    assert sent.headers["X-Referer"] == "https://me.example" and sent.url.endswith("?tag=https%3A%2F%2Fme.example")


def test_required_config_is_demanded_only_where_a_template_needs_it() -> None:
    request = CompletionRequest(messages=HELLO, model="my-deployment")
    with pytest.raises(ConfigError, match=r"needs config 'resource'.*GENAI_AZURE_OPENAI_RESOURCE"):
        render_request("azure-openai", request, make_settings(provider_config={}))
    settings = make_settings(provider_config={}, base_urls={"azure-openai": "https://proxy.example/azure"})
    rendered = render_request("azure-openai", request, settings)
    assert rendered.url.startswith("https://proxy.example/azure/openai/deployments/my-deployment/chat/completions?")


@pytest.mark.parametrize(("source", "one_value"), [
    ("{{ x | tojson }}", True),
    ("{% set y = {'a': x} %}\n  {{ y | tojson }}\n", True),
    ('{"a": {{ x | tojson }}}', False),
    ("{{ x | tojson }}{{ y | tojson }}", False),
    ("{% if x %}{{ x | tojson }}{% endif %}", False),
])
def test_bodies_that_print_one_tojson_value_skip_the_json_check(source: str, one_value: bool) -> None:
    from engine.templates import outputs_one_value

    assert outputs_one_value(source) is one_value


def test_api_key_in_a_query_parameter_is_sent_and_redacted(tmp_path: Path) -> None:
    rendered = render_example(tmp_path, "auth:\n  type: query\n  query_param: key\n  value: '{{ api_key }}'\n")
    assert rendered.url == f"https://api.example.com/v1/chat/completions?key={TEST_KEY}"
    assert "Authorization" not in rendered.headers
    shown = rendered.to_dict()
    assert shown["url"] == "https://api.example.com/v1/chat/completions?key=***"
    assert TEST_KEY not in repr(rendered) and TEST_KEY not in str(shown)
