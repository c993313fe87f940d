"""Loading provider files: discovery, extends, and a clear error for every kind of broken file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from engine import CompletionRequest, ProviderFileError, Settings, UnknownProviderError, list_providers
from engine.registry import Registry

from .conftest import TEST_KEY

MINIMAL = """\
name: {name}
docs_url: https://example.com/docs
checked: 2026-11-25
extends: openai
base_url: https://api.example.com/v1
default_model: example-1
models:
  - {{id: example-1, context_window: 8192}}
auth:
  env: [EXAMPLE_API_KEY]
pricing:
  example-1: {{input: 1.0, output: 2.0}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def registry_for(folder: Path) -> Registry:
    return Registry(Settings(providers_path=[folder], api_keys={"example": TEST_KEY, "broken": TEST_KEY}))


def load_error(folder: Path, name: str = "broken") -> ProviderFileError:
    registry = registry_for(folder)
    with pytest.raises(ProviderFileError) as info:
        registry.compiled(name)
    return info.value


def test_bundled_providers_are_listed() -> None:
    names = list_providers()
    for name in ("openai", "anthropic", "ollama", "groq", "together", "anyscale", "vllm", "llamacpp"):
        assert name in names


def test_a_dropped_in_file_is_a_usable_provider(tmp_path: Path) -> None:
    write(tmp_path, "example", MINIMAL.format(name="example"))
    registry = registry_for(tmp_path)
    assert "example" in registry.names()
    spec = registry.spec("example")
    assert spec.request is not None and spec.request.path == "/chat/completions"  # inherited
    assert spec.auth.env == ["EXAMPLE_API_KEY"] and spec.key_env[0] == "GENAI_EXAMPLE_API_KEY"
    request = registry.create("example").render(CompletionRequest(messages=[{"role": "user", "content": "hi"}]))  # type: ignore[attr-defined]
    assert request.url == "https://api.example.com/v1/chat/completions"
    assert request.json["model"] == "example-1"


def test_drop_in_file_works_in_the_next_process_with_no_code_change(tmp_path: Path) -> None:
    folder = tmp_path / "providers"
    write(folder, "example", MINIMAL.format(name="example"))
    code = (
        "import engine\n"
        "print('example' in engine.list_providers())\n"
        "p = engine.get_provider('example')\n"
        "print(p.calculate_cost('example-1', 1_000_000, 1_000_000))\n"
    )
    env = {**os.environ, "GENAI_PROVIDERS_PATH": str(folder), "EXAMPLE_API_KEY": "k-123456"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, check=True).stdout.split()
    assert out == ["True", "3.0"]


def test_later_folders_override_earlier_ones_by_name(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write(first, "example", MINIMAL.format(name="example"))
    write(second, "example", MINIMAL.format(name="example").replace("api.example.com", "override.example.com"))
    registry = Registry(Settings(providers_path=[first, second]))
    assert registry.spec("example").base_url == "https://override.example.com/v1"


def test_user_file_may_extend_the_bundled_file_it_overrides(tmp_path: Path) -> None:
    write(tmp_path, "openai", """\
        name: openai
        extends: openai
        docs_url: https://platform.openai.com/docs
        checked: 2026-11-25
        base_url: https://proxy.internal/v1
        default_model: gpt-4o
        models: [{id: gpt-4o}]
        """)
    registry = registry_for(tmp_path)
    spec = registry.spec("openai")
    assert spec.base_url == "https://proxy.internal/v1"
    assert spec.request is not None and spec.auth.header == "Authorization"


def test_extends_never_passes_one_providers_key_env_to_another() -> None:
    registry = Registry(Settings())
    assert "OPENAI_API_KEY" not in registry.spec("groq").key_env
    assert registry.spec("groq").key_env == ["GENAI_GROQ_API_KEY", "GROQ_API_KEY"]


def test_unknown_key_names_file_key_and_line(tmp_path: Path) -> None:
    text = MINIMAL.format(name="broken").replace("auth:\n  env:", "auth:\n  headr: X\n  env:")
    path = write(tmp_path, "broken", text)
    error = load_error(tmp_path)
    assert error.file == str(path) and error.key == "auth.headr" and error.line == 10
    assert "unknown key" in str(error) and f"{path}:10: auth.headr:" in str(error)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "broken", "name: broken\nmodels: [a, b\nbase_url: x\n")
    registry = registry_for(tmp_path)
    assert "broken" in registry.names() and "openai" in registry.names()  # listed, and nothing else is affected
    with pytest.raises(ProviderFileError) as info:
        registry.spec("broken")
    assert info.value.line is not None and "invalid YAML" in str(info.value)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    write(tmp_path, "broken", MINIMAL.format(name="broken").replace("context_window: 8192", "context_window: lots"))
    error = load_error(tmp_path)
    assert error.key == "models.0.context_window" and error.line == 8


def test_bad_jsonpath_names_the_key(tmp_path: Path) -> None:
    write(tmp_path, "broken", MINIMAL.format(name="broken") + "response:\n  content: $.choices[?(@.x ==]\n")
    error = load_error(tmp_path)
    assert error.key == "response.content" and error.line == 14 and "JSONPath" in str(error)


def test_jinja_syntax_error_gives_the_line_inside_the_template(tmp_path: Path) -> None:
    template = "request:\n  body: |\n    {\n      {{ model | tojson }\n    }\n"
    write(tmp_path, "broken", MINIMAL.format(name="broken") + template)
    error = load_error(tmp_path)
    assert error.key == "request.body" and error.line == 16 and "template syntax error" in str(error)


def test_missing_extends_target(tmp_path: Path) -> None:
    write(tmp_path, "broken", MINIMAL.format(name="broken").replace("extends: openai", "extends: nowhere"))
    error = load_error(tmp_path)
    assert error.key == "extends" and error.line == 4 and "unknown provider 'nowhere'" in str(error)


def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path, "broken", MINIMAL.format(name="broken").replace("extends: openai", "extends: loop"))
    write(tmp_path, "loop", MINIMAL.format(name="loop").replace("extends: openai", "extends: broken"))
    error = load_error(tmp_path)
    assert "extends cycle: broken -> loop -> broken" in str(error)


def test_missing_name(tmp_path: Path) -> None:
    write(tmp_path, "broken", "base_url: https://x\n")
    registry = registry_for(tmp_path)
    with pytest.raises(ProviderFileError, match="missing required key 'name'"):
        registry.spec("broken")  # listed under its file name
    assert registry.spec("openai").name == "openai"


# -- discovery survives broken files ------------------------------------------------------------------------

def test_a_file_that_is_not_utf8_affects_only_itself(tmp_path: Path) -> None:
    (tmp_path / "latin.yaml").write_bytes(b"name: latin\ndescription: caf\xe9\n")
    registry = registry_for(tmp_path)
    with pytest.raises(ProviderFileError, match=r"not UTF-8 text \(byte 0xe9 at offset 28\)") as info:
        registry.spec("latin")
    assert info.value.line == 2
    assert len(registry.names()) == len(list_providers(Settings())) + 1


def test_a_symlink_to_a_device_and_a_fifo_are_refused_without_reading(tmp_path: Path) -> None:
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it would block forever
    registry = registry_for(tmp_path)
    for name in ("zero", "pipe"):
        with pytest.raises(ProviderFileError, match="not a regular file"):
            registry.spec(name)
    assert registry.spec("groq").name == "groq"


def test_a_file_past_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "big", MINIMAL.format(name="big") + "# " + "x" * 5000 + "\n")
    monkeypatch.setenv("GENAI_MAX_FILE_BYTES", "4096")
    with pytest.raises(ProviderFileError, match=r"over the limit of 4,096 \(max_file_bytes; set GENAI_MAX_FILE_BYTES"):
        registry_for(tmp_path).spec("big")
    monkeypatch.delenv("GENAI_MAX_FILE_BYTES")
    assert registry_for(tmp_path).spec("big").name == "big"


def test_yaml_aliases_that_expand_exponentially_are_refused(tmp_path: Path) -> None:
    lines = ["name: laughs", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write(tmp_path, "laughs", "\n".join(lines) + "\n")
    with pytest.raises(ProviderFileError, match="YAML aliases expand to more than 100,000 values"):
        registry_for(tmp_path).spec("laughs")


def test_two_files_in_one_folder_with_one_name_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a", MINIMAL.format(name="twin"))
    write(tmp_path, "b", MINIMAL.format(name="twin"))
    registry = registry_for(tmp_path)
    with pytest.raises(ProviderFileError, match=r"a\.yaml and b\.yaml in .* both define provider 'twin'") as info:
        registry.spec("twin")
    assert info.value.key == "name" and info.value.file.endswith("b.yaml")


def test_a_later_folder_overrides_by_name_and_the_override_is_reported(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "acme", MINIMAL.format(name="acme"))
    write(second, "acme2", MINIMAL.format(name="acme").replace("example-1", "example-2"))
    registry = Registry(Settings(providers_path=[first, second], api_keys={"acme": TEST_KEY}))
    assert registry.spec("acme").default_model == "example-2"
    [(name, replaced, by)] = registry.discovery.overrides
    assert (name, replaced.name, by.name) == ("acme", "acme.yaml", "acme2.yaml")


def test_a_user_file_may_not_read_another_providers_key(tmp_path: Path) -> None:
    write(tmp_path, "thief", MINIMAL.format(name="thief").replace("[EXAMPLE_API_KEY]", "[OPENAI_API_KEY]"))
    with pytest.raises(ProviderFileError, match=r"OPENAI_API_KEY is the API key of provider 'openai'.*"
                                                r"GENAI_THIEF_API_KEY") as info:
        registry_for(tmp_path).spec("thief")
    assert info.value.key == "auth.env.0"
    write(tmp_path, "thief", MINIMAL.format(name="thief") + "config:\n  region: {env: [AWS_SECRET_ACCESS_KEY]}\n")
    with pytest.raises(ProviderFileError, match="AWS_SECRET_ACCESS_KEY holds cloud credentials") as info:
        registry_for(tmp_path).spec("thief")
    assert info.value.key == "config.region.env.0"


def test_bundled_files_may_share_a_key_and_only_their_replacements_may_claim_it(tmp_path: Path) -> None:
    registry = registry_for(tmp_path)
    assert "OPENAI_API_KEY" in registry.spec("openai").key_env  # OpenAI's two APIs take one key
    assert "OPENAI_API_KEY" in registry.spec("openai-responses").key_env
    for name in ("openai", "openai-responses"):  # a user file in place of one of them may declare it too
        folder = tmp_path / name
        write(folder, name, MINIMAL.format(name=name).replace("[EXAMPLE_API_KEY]", "[OPENAI_API_KEY]"))
        mine = registry_for(folder)
        assert mine.spec(name).default_model == "example-1" and "OPENAI_API_KEY" in mine.spec(name).key_env
        assert "OPENAI_API_KEY" in mine.spec("openai" if name != "openai" else "openai-responses").key_env
    write(tmp_path / "thief", "thief", MINIMAL.format(name="thief").replace("[EXAMPLE_API_KEY]", "[OPENAI_API_KEY]"))
    with pytest.raises(ProviderFileError, match=r"OPENAI_API_KEY is the API key of provider 'openai'"):
        registry_for(tmp_path / "thief").spec("thief")


def test_http_provider_without_request_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "broken", "name: broken\nbase_url: https://x\n")
    with pytest.raises(ProviderFileError, match="needs request, response"):
        registry_for(tmp_path).spec("broken")


def test_stream_without_end_marker_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "broken", MINIMAL.format(name="broken") + "stream:\n  done: null\n")
    with pytest.raises(ProviderFileError, match="end marker"):
        registry_for(tmp_path).spec("broken")


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UnknownProviderError, match=r"known providers: .*openai"):
        Registry(Settings()).spec("nope")


def test_only_bundled_files_share_a_key_and_a_replacement_inherits_the_share(tmp_path: Path) -> None:
    from engine.loader import ProviderSource, bundled_path

    def source(name: str, folder: Path, key: str) -> ProviderSource:
        data = {"name": name, "base_url": "https://api.example.com", "auth": {"env": [key]},
                "request": {"path": "/chat", "body": "{{ {'model': model} | tojson }}"},
                "response": {"content": "$.text"}}
        return ProviderSource(name, folder / f"{name}.yaml", data, yaml.safe_dump(data))

    home = bundled_path("providers.d")
    found = {"one": [source("one", home, "VENDOR_KEY")], "two": [source("two", home, "VENDOR_KEY")]}
    registry = Registry(Settings(), found=found)
    assert registry.spec("one").auth.env == registry.spec("two").auth.env == ["VENDOR_KEY"]  # one vendor, two APIs
    replaced = Registry(Settings(), found={**found, "two": [*found["two"], source("two", tmp_path, "VENDOR_KEY")]})
    assert replaced.spec("two").auth.env == ["VENDOR_KEY"]  # a user file in place of a sharer
    stolen = Registry(Settings(), found={**found, "thief": [source("thief", tmp_path, "VENDOR_KEY")]})
    with pytest.raises(ProviderFileError, match="VENDOR_KEY is the API key of provider 'one'"):
        stolen.spec("thief")
    with pytest.raises(ProviderFileError, match="VENDOR_KEY is the API key of provider 'thief'"):
        stolen.spec("one")  # a file that claims a key is refused, and so is the key's owner while it is there
