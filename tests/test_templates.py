"""Template filters, the escaping each kind of template applies, and the static checks on template source."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import RawOutputError
from engine.templates import FILTERS, UndefinedError, compile_template, options_read, outputs_one_value

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "image"}, {"type": "text", "text": "there"}],
     "name": "u1"},
    {"role": "developer", "content": "No jokes."},
    {"role": "assistant", "content": None},
]


def test_every_filter_is_tested_here() -> None:
    assert set(FILTERS) == {"tojson", "drop_none", "merge", "pick", "omit", "as_list", "system_text",
                            "without_system", "map_roles", "text_parts", "only_keys", "text_content", "raw_path",
                            "last_turn", "history", "rename_keys", "merge_turns", "chat_template", "each_as"}


def test_as_list_wraps_a_single_value_and_keeps_none_and_lists() -> None:
    as_list = FILTERS["as_list"]
    assert as_list(None) is None and as_list("END") == ["END"] and as_list(["a", "b"]) == ["a", "b"]


def test_tojson_keeps_utf8_and_rejects_what_json_cannot_hold() -> None:
    assert FILTERS["tojson"]({"text": "héllo ✓", "n": [1, None]}) == '{"text": "héllo ✓", "n": [1, null]}'
    with pytest.raises(TypeError, match="a set cannot be sent as JSON"):
        FILTERS["tojson"]({"s": {1}})


def test_mapping_filters() -> None:
    assert FILTERS["drop_none"]({"a": 1, "b": None, "c": 0, "d": False}) == {"a": 1, "c": 0, "d": False}
    assert FILTERS["merge"]({"a": 1, "b": 2}, None, {"b": 3}, {}, {"c": 4}) == {"a": 1, "b": 3, "c": 4}
    data = {"z": 1, "a": 2, "m": 3}
    assert list(FILTERS["pick"](data, ["m", "z", "missing"])) == ["z", "m"]
    assert list(FILTERS["omit"](data, ["a"])) == ["z", "m"]


def test_merge_does_not_change_its_input() -> None:
    base = {"a": 1}
    FILTERS["merge"](base, {"a": 2})
    assert base == {"a": 1}


def test_system_messages() -> None:
    assert FILTERS["system_text"](MESSAGES) == "Be brief.\n\nNo jokes."
    assert FILTERS["system_text"](MESSAGES, " | ") == "Be brief. | No jokes."
    assert FILTERS["system_text"](MESSAGES[1:2]) is None
    assert [m["role"] for m in FILTERS["without_system"](MESSAGES)] == ["user", "assistant"]


def test_message_shapes() -> None:
    mapped = FILTERS["map_roles"](MESSAGES, {"assistant": "model"})
    assert [m["role"] for m in mapped] == ["system", "user", "developer", "model"]
    assert mapped[1]["name"] == "u1" and MESSAGES[3]["role"] == "assistant"
    parts = FILTERS["text_parts"](MESSAGES[1:], roles={"assistant": "model"})
    assert parts == [{"role": "user", "parts": [{"text": "Hi there"}]},
                     {"role": "developer", "parts": [{"text": "No jokes."}]},
                     {"role": "model", "parts": [{"text": ""}]}]
    assert FILTERS["text_parts"](MESSAGES[:1], "content", "t") == [{"role": "system", "content": [{"t": "Be brief."}]}]
    assert FILTERS["only_keys"](MESSAGES[1:2], "role", "name", "nope") == [{"role": "user", "name": "u1"}]
    flat = FILTERS["text_content"](MESSAGES)
    assert [m["content"] for m in flat] == ["Be brief.", "Hi there", "No jokes.", ""]
    assert flat[1]["name"] == "u1"


def test_options_read_finds_every_spelling() -> None:
    source = ('{{ options.a }}{{ options["b"] }}{{ options.get("c", 1) }}{% if options.d %}{% endif %}'
              '{{ other.e }}{{ other["f"] }}{{ other.get("g") }}{{ options.get }}')
    assert options_read(source, "body") == {"a", "b", "c", "d"}
    assert options_read("no markup", "text") == set()


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ x | tojson }}", True),
    ("{% set a = {'k': x} %}\n  {{ a | tojson }}\n", True),
    ("{{ a | tojson }}{{ b | tojson }}", False),
    ("[{{ a | tojson }}]", False),
    ("{% if a %}{{ a | tojson }}{% endif %}", False),
    ('{"fixed": 1}', False),
])
def test_outputs_one_value(source: str, expected: bool) -> None:
    assert outputs_one_value(source) is expected


def test_compile_template_caches_by_source_and_keeps_plain_text_constant() -> None:
    source = "{{ {'model': model} | tojson }}"
    assert compile_template(source, "body") is compile_template(source, "body")
    assert json.loads(compile_template(source, "body")({"model": "m"})) == {"model": "m"}
    constant = compile_template("/v1/chat 50%", "path")
    assert constant({}) == constant({"model": "x"}) == "/v1/chat 50%"


def test_path_values_are_percent_encoded() -> None:
    render = compile_template("/models/{{ model }}:generate", "path")
    assert render({"model": "a/b?c d"}) == "/models/a%2Fb%3Fc%20d:generate"


def test_text_values_are_inserted_as_is_but_never_with_a_line_break() -> None:
    render = compile_template("Bearer {{ key }}", "text")
    assert render({"key": "a/b?c"}) == "Bearer a/b?c"
    for bad in ("a\nX-Evil: 1", "a\rb"):
        with pytest.raises(ValueError, match="line break"):
            render({"key": bad})


def test_body_values_must_go_through_tojson() -> None:
    with pytest.raises(RawOutputError, match=r"without '\| tojson'"):
        compile_template("{{ x }}", "body")({"x": 1})
    assert compile_template("{{ x | tojson }}", "body")({"x": "é"}) == '"é"'


def test_undefined_is_an_error_not_empty() -> None:
    with pytest.raises(UndefinedError):
        compile_template("{{ missing }}", "text")({})


def test_raw_path_keeps_slashes_and_at_signs_and_encodes_the_rest() -> None:
    render = compile_template("/run/{{ model | raw_path }}", "path")
    assert render({"model": "@cf/meta/llama 3?x"}) == "/run/@cf/meta/llama%203%3Fx"
    assert compile_template("/m/{{ model | raw_path(':') }}", "path")({"model": "a:b/c"}) == "/m/a:b%2Fc"
    assert compile_template("/m/{{ model }}", "path")({"model": "@a/b"}) == "/m/%40a%2Fb"  # the default


def test_turn_filters() -> None:
    chat = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert FILTERS["last_turn"](chat) == chat[-1] and FILTERS["last_turn"]([]) is None
    assert FILTERS["history"](chat) == chat[:2] and FILTERS["history"]([]) == []
    assert FILTERS["rename_keys"](chat[:1], {"content": "message"}) == [{"role": "user", "message": "a"}]
    repeated = [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}]
    merged = FILTERS["merge_turns"](repeated)
    assert merged == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"},
                      {"role": "user", "content": "d"}]
    assert repeated[0] == {"role": "user", "content": "a"}  # the input is not changed
    assert FILTERS["merge_turns"](repeated[:2], " ")[0]["content"] == "a b"


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
]


@pytest.mark.parametrize("name", ["chatml", "llama3", "mistral_instruct", "gemma"])
def test_bundled_chat_templates_match_their_golden_prompt(name: str, golden: Any) -> None:
    from pathlib import Path

    render = compile_template(f'{{{{ messages | chat_template("{name}") | tojson }}}}', "body")
    prompt = json.loads(render({"messages": CONVERSATION}))
    closed = json.loads(compile_template(f'{{{{ messages | chat_template("{name}", false) | tojson }}}}',
                                         "body")({"messages": CONVERSATION}))
    golden.check(Path(__file__).parent / "fixtures" / "chat_templates" / f"{name}.json",
                 {"prompt": prompt.split("\n"), "without_generation_prompt": closed.split("\n")})


def test_a_file_can_bring_its_own_chat_template() -> None:
    own = {"plain": compile_template("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
                                     "{% if add_generation_prompt %}assistant:{% endif %}", "text")}
    render = compile_template('{{ messages | chat_template("plain") | tojson }}', "body")
    prompt = json.loads(render({"messages": CONVERSATION[1:3], "chat_templates": own}))
    assert prompt == "user: Hi\nassistant: Hello.\nassistant:"
    with pytest.raises(ValueError, match=r"unknown chat template 'nope'.*this file declares plain"):
        compile_template('{{ messages | chat_template("nope") | tojson }}', "body")(
            {"messages": CONVERSATION, "chat_templates": own})


@pytest.mark.parametrize("statement", ['{% include "x" %}', '{% import "x" as y %}', '{% from "x" import y %}',
                                       '{% extends "x" %}'])
def test_a_template_cannot_load_another(statement: str) -> None:
    from jinja2 import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="is not allowed"):
        compile_template(statement + "{{ 1 | tojson }}", "body")


def test_each_as_writes_every_item_into_a_shape() -> None:
    each_as = FILTERS["each_as"]
    shape = {"content": {"parts": [{"text": "$item"}]}, "taskType": "$task", "model": "$model"}
    assert each_as(["a", "b"], shape, model="m", task=None) == [
        {"content": {"parts": [{"text": "a"}]}, "model": "m"}, {"content": {"parts": [{"text": "b"}]}, "model": "m"}]
    render = compile_template('{{ inputs | each_as({"t": "$item", "n": "$$item"}) | tojson }}', "body")
    assert json.loads(render({"inputs": ["x"]})) == [{"t": "x", "n": "$item"}]
