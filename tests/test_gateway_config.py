"""The gateway's configuration file, its keys, and the checks made before serving: mistakes name file, key and
line; keys are kept as hashes; providers are served when their key (or, for local ones, base URL) is set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ConfigError, MissingAPIKeyError, ProviderFileError
from engine.gateway.config import load_config
from engine.gateway.keys import Keyring, hash_key, new_key
from engine.gateway.state import build_engine, check, exposed_providers, redact_url

GOOD = """\
keys:
  - name: team-search
    sha256: {digest}
    models: ["openai/*", smart]
    budget: {{usd: 25, period: week}}
    rpm: 600
    tpm: 200000
  - name: ci
    key_env: CI_GATEWAY_KEY
routes:
  smart: [openai/gpt-4o-mini, anthropic/claude-haiku-4-5]
  fast:
    strategy: least-busy
    deployments:
      - {{model: openai/gpt-4o-mini, api_key_env: OPENAI_KEY_EU, base_url: "https://eu.example/v1"}}
      - openai/gpt-4o-mini
    cooldown: {{fails: 2, seconds: 10}}
state:
  sqlite: state/ledger.db
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_worked_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD.format(digest=hash_key("sk-genai-x"))))
    assert [k.name for k in config.keys] == ["team-search", "ci"]
    assert config.keys[0].budget is not None and config.keys[0].budget.period == "week"
    assert config.routes["smart"].name == "smart" and config.routes["smart"].strategy == "fallback"
    assert config.routes["fast"].deployments[0].api_key_env == "OPENAI_KEY_EU"
    assert config.routes["fast"].cooldown.fails == 2
    assert config.sqlite_path() == tmp_path / "state" / "ledger.db"  # relative to the file


@pytest.mark.parametrize(("text", "key", "line", "message"), [
    ("keys:\n  - name: a\n    sha256: " + "ab" * 32 + "\n    rpm: -1\n", "keys.0.rpm", 4, "greater than 0"),
    ("keys:\n  - name: a\n    sha256: " + "1" * 64 + "\n", "keys.0.sha256", 3, "quote it"),
    ("keys:\n  - name: a\n    sha256: abc\n", "keys.0.sha256", 3, "64 hex digits"),
    ("keys:\n  - name: a\n", "keys.0", 2, "exactly one of sha256"),
    ("keys:\n  - name: a\n    key_env: A\n    sha256: " + "ab" * 32 + "\n", "keys.0", 2, "exactly one of"),
    ("keys:\n  - {name: 'a b', key_env: A}\n", "keys.0.name", 2, "letters, digits"),
    ("keys:\n  - {name: a, key_env: A}\n  - {name: a, key_env: B}\n", None, None, "unique"),
    ("keys:\n  - {name: a, key_env: A}\nroutes:\n  r:\n    strategy: random\n    deployments: [openai/gpt-4o]\n",
     "routes.r.strategy", 5, "fallback"),
    ("keys:\n  - {name: a, key_env: A}\nstate:\n  redis: redis://x\n", "state.redis", 4, "Extra inputs"),
    ("keys: []\n", "keys", 1, "at least 1"),
])
def test_mistakes_name_file_key_and_line(tmp_path: Path, text: str, key: str | None, line: int | None,
                                         message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProviderFileError, match=message) as raised:
        load_config(path)
    assert raised.value.file == str(path) and raised.value.key == key and raised.value.line == line


def test_not_a_file_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ProviderFileError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ProviderFileError, match="mapping"):
        load_config(write(tmp_path, "- just a list\n"))


def test_keys_are_kept_as_hashes_and_found_by_the_hash_of_what_is_presented(tmp_path: Path) -> None:
    key = new_key()
    assert key.startswith("sk-genai-") and len(key) > 40 and new_key() != key
    config = load_config(write(tmp_path, GOOD.format(digest=hash_key(key))))
    keyring = Keyring(config.keys, {"CI_GATEWAY_KEY": "sk-ci-key"}.get)
    found = keyring.find(key)
    assert found is not None and found.name == "team-search" and found.limited
    ci = keyring.find("sk-ci-key")
    assert ci is not None and ci.name == "ci" and not ci.limited
    assert keyring.find("sk-ci-keyX") is None and keyring.find("") is None and keyring.find(None) is None
    assert key not in repr(found) and "sk-ci-key" not in repr(ci) and "sk-ci-key" not in repr(vars(keyring))
    assert found.allows("openai/gpt-4o") and found.allows("smart") and not found.allows("anthropic/claude-opus-4-5")
    assert not found.allows("smartest")


def test_a_key_variable_that_is_not_set_and_a_key_given_twice(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD.format(digest=hash_key("same"))))
    with pytest.raises(ConfigError, match="CI_GATEWAY_KEY is not set"):
        Keyring(config.keys, {}.get)
    with pytest.raises(ConfigError, match="are the same key"):
        Keyring(config.keys, {"CI_GATEWAY_KEY": "same"}.get)


def config_with(tmp_path: Path, **fields: object) -> Path:
    return write(tmp_path, json.dumps({"keys": [{"name": "a", "key_env": "A_KEY"}], **fields}))


def test_check_finds_missing_provider_keys_before_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A_KEY", "sk-a")
    config = load_config(config_with(tmp_path, routes={"r": ["openai/gpt-4o"]}))
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        check(config)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
    check(config)
    config = load_config(config_with(tmp_path, routes={"r": [{"model": "openai/gpt-4o", "api_key_env": "EU"}]}))
    with pytest.raises(ConfigError, match="EU is not set"):
        check(config)
    with pytest.raises(ConfigError, match="no provider named 'nope'"):
        check(load_config(config_with(tmp_path, providers=["nope"])))
    with pytest.raises(ConfigError, match=r"settings\.timeout"):
        check(load_config(config_with(tmp_path, settings={"timeout": -1})))


def test_served_providers_are_those_with_a_key_or_a_local_base_url(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "sk-groq")
    monkeypatch.setenv("GENAI_OLLAMA_BASE_URL", "http://127.0.0.1:11434")
    config = load_config(config_with(tmp_path))
    assert exposed_providers(build_engine(config), config) == {"groq", "ollama"}
    listed = load_config(config_with(tmp_path, providers=["groq"]))
    assert exposed_providers(build_engine(listed), listed) == {"groq"}


def test_redis_urls_are_shown_without_their_password() -> None:
    assert redact_url("redis://user:hunter2@cache:6379/0") == "redis://user:***@cache:6379/0"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
