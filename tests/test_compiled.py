"""Compiling a provider: option values, key locations, and compile errors that name file, key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import ProviderFileError, Settings
from engine.compiled import CompiledProvider
from engine.registry import Registry

ACME = """\
name: acme
extends: openai
base_url: https://api.acme.example/v1
default_model: acme-1
models:
  - {id: acme-1}
  - {id: acme-r, options: {temperature: false}}
options:
  json_mode: {default: json_object}
"""


def compile_file(folder: Path, text: str, name: str = "acme") -> CompiledProvider:
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return Registry(Settings(providers_path=[folder])).compiled(name)


def compile_error(folder: Path, text: str) -> ProviderFileError:
    with pytest.raises(ProviderFileError) as info:
        compile_file(folder, text)
    return info.value


def line_number(path: str, text: str) -> int:
    return next(i for i, line in enumerate(Path(path).read_text().splitlines(), 1) if line.startswith(text))


def test_options_hold_the_declared_defaults_with_a_childs_overrides(tmp_path: Path) -> None:
    compiled = compile_file(tmp_path, ACME)
    assert compiled.options == {"max_tokens_field": "max_completion_tokens", "stream_usage": True,
                                "json_mode": "json_object", "temperature": True, "seed_field": "seed"}


def test_model_options_merge_a_models_values(tmp_path: Path) -> None:
    compiled = compile_file(tmp_path, ACME)
    assert list(compiled.model_options) == ["acme-r"]
    assert compiled.options_for("acme-r") == {**compiled.options, "temperature": False}
    assert compiled.options_for("acme-1") == compiled.options_for("unlisted") == compiled.options


def test_where_finds_a_key_in_the_file_or_the_file_it_extends(tmp_path: Path) -> None:
    compiled = compile_file(tmp_path, ACME)
    assert compiled.file == str(tmp_path / "acme.yaml") and compiled.name == "acme"
    assert compiled.where(["base_url"]) == (compiled.file, 3)
    assert compiled.where(["models", 1]) == (compiled.file, 7)
    file, line = compiled.where(["request", "path"])
    assert file.endswith("openai.yaml") and line == line_number(file, "  path: /chat/completions")


def test_where_with_template_line_points_inside_a_block_scalar(tmp_path: Path) -> None:
    compiled = compile_file(tmp_path, ACME + "request:\n  body: |\n    {{ {\n      'model': model\n    } | tojson }}\n")
    assert compiled.where(["request", "body"]) == (compiled.file, 11)
    assert compiled.where(["request", "body"], template_line=1) == (compiled.file, 12)
    assert compiled.where(["request", "body"], template_line=3) == (compiled.file, 14)
    assert compiled.body_is_json


def test_a_bad_jsonpath_names_file_key_and_line(tmp_path: Path) -> None:
    error = compile_error(tmp_path, ACME + "response:\n  model: $.choices[?(@.x ==]\n")
    assert (error.file, error.key, error.line) == (str(tmp_path / "acme.yaml"), "response.model", 11)
    assert "invalid JSONPath" in error.message


def test_a_bad_jsonpath_in_a_stream_event_rule(tmp_path: Path) -> None:
    error = compile_error(tmp_path, ACME + "stream:\n  chunk:\n    delta: $.x[?(@.y ==]\n")
    assert (error.key, error.line) == ("stream.chunk.delta", 12)


def test_a_jinja_syntax_error_names_the_line_inside_the_template(tmp_path: Path) -> None:
    body = "request:\n  body: |\n    {{ {\n      'model': model\n    } | tojson }\n"
    error = compile_error(tmp_path, ACME + body)
    assert (error.file, error.key, error.line) == (str(tmp_path / "acme.yaml"), "request.body", 14)
    assert error.message.startswith("template syntax error")


def test_a_syntax_error_in_a_text_template(tmp_path: Path) -> None:
    error = compile_error(tmp_path, ACME.replace("https://api.acme.example/v1", "'{{ config.host'"))
    assert (error.key, error.line) == ("base_url", 3)


def test_a_template_reading_an_undeclared_option(tmp_path: Path) -> None:
    error = compile_error(tmp_path, ACME + "request:\n  headers:\n    X-Mode: '{{ options.mode }}'\n")
    assert error.key == "request.headers.X-Mode" and error.line == 12
    assert "option 'mode', which is not declared" in error.message and "json_mode" in error.message


def test_stream_rules_keep_only_the_keys_they_set(tmp_path: Path) -> None:
    stream = compile_file(tmp_path, ACME).stream
    assert stream is not None and stream.done == "[DONE]" and stream.chunk is not None
    chunk = stream.chunk
    assert chunk.delta is not None and chunk.reasoning_delta is None and not chunk.end
    names = [name for name, _ in chunk.fields]
    assert "delta" not in names and {"model", "input_tokens", "error_message"} <= set(names)
    heads = {head: [name for name, _ in members] for head, members in chunk.groups}
    assert heads["usage"] == ["input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                              "reasoning_tokens"]
    assert heads["model"] == ["model"]


def test_conditions_compare_as_documented() -> None:
    from engine.compiled import CompiledCondition
    from engine.jsonpath import Extractor, reading_headers

    def holds(path: str, test: str, expected: object, data: object) -> bool:
        return CompiledCondition(Extractor(path), test, expected).holds(data)

    assert holds("$.code", "equals", 10000, {"code": "10000"}) and holds("$.code", "equals", "10000", {"code": 10000})
    assert not holds("$.code", "equals", 10000, {}) and holds("$.code", "not_equals", 10000, {})
    assert holds("$.success", "equals", False, {"success": False}) and not holds("$.success", "equals", False, {})
    # not_equals null: "" and 0 hold; null and a missing key do not (a text-generation server's last event)
    for value, expected in (("", True), (0, True), (None, False)):
        assert holds("$.generated_text", "not_equals", None, {"generated_text": value}) is expected
    assert not holds("$.generated_text", "not_equals", None, {})
    # present: anything found, even null; truthy: the value's truth
    assert holds("$.final", "present", True, {"final": None}) and holds("$.final", "present", False, {})
    assert holds("$.done", "truthy", True, {"done": 1}) and holds("$.done", "truthy", False, {"done": ""})
    with reading_headers({"X-Status": "failed"}):
        assert holds("header:x-status", "equals", "failed", {})


def test_a_malformed_shape_directive_names_file_key_and_line(tmp_path: Path) -> None:
    error = compile_error(tmp_path, ACME + "request:\n  tools:\n    tool: {name: $name, strict: {$first: $strict}}\n")
    assert error.key == "request.tools.tool" and error.line == ACME.count("\n") + 3
    assert error.file == str(tmp_path / "acme.yaml") and "$first takes a list" in error.message
    error = compile_error(tmp_path, ACME + "request:\n  messages:\n    message: {role: $role}\n    parts:\n"
                                           "      text: {$when: text, t: $text}\n")
    assert error.key == "request.messages.parts.text" and "$when names one variable" in error.message
