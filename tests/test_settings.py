"""Settings and the one .env reader: where values come from and in which order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from engine import Settings, _env
from engine._env import dotenv_values, env
from engine.limits import DEFAULT, NAMES, Limits

KEY_ENV = ["GENAI_GROQ_API_KEY", "GROQ_API_KEY"]


@pytest.fixture(autouse=True)
def _fresh_dotenv_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """No .env values cached by an earlier test."""
    monkeypatch.setattr(_env, "_cache", {})


def write_env(text: str, folder: Path | None = None, mtime: float | None = None) -> Path:
    path = (folder or Path.cwd()) / ".env"
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_the_process_env_wins_over_the_dotenv_file(monkeypatch: pytest.MonkeyPatch) -> None:
    write_env("GENAI_X=from-file\nGENAI_Y=file-only\n")
    monkeypatch.setenv("GENAI_X", "from-process")
    assert env("GENAI_X") == "from-process"
    assert env("GENAI_Y") == "file-only"
    assert env("GENAI_Y", env_file=None) is None
    assert env("GENAI_NOWHERE") is None


def test_empty_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    write_env("GENAI_X=from-file\nGENAI_EMPTY=\n")
    monkeypatch.setenv("GENAI_X", "")
    assert env("GENAI_X") == "from-file"
    assert env("GENAI_EMPTY") is None


def test_the_dotenv_file_is_read_again_after_it_changes() -> None:
    path = write_env("GENAI_X=one\n", mtime=2_000_000)
    assert env("GENAI_X") == "one"
    write_env("GENAI_X=two\nGENAI_Z=new\n", mtime=2_000_100)
    assert env("GENAI_X") == "two" and env("GENAI_Z") == "new"
    path.unlink()
    assert env("GENAI_X") is None and dotenv_values() == {}


def test_each_working_folder_has_its_own_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_env("GENAI_X=a\n", tmp_path / "a", mtime=1_000_000)
    write_env("GENAI_X=b\n", tmp_path / "b", mtime=1_000_000)
    monkeypatch.chdir(tmp_path / "a")
    assert env("GENAI_X") == "a"
    monkeypatch.chdir(tmp_path / "b")
    assert env("GENAI_X") == "b"


def test_api_key_from_settings_then_env_names_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.api_key("groq", KEY_ENV) is None and settings.key_source("groq", KEY_ENV) is None
    monkeypatch.setenv("GROQ_API_KEY", "second")
    assert settings.api_key("groq", KEY_ENV) == "second" and settings.key_source("groq", KEY_ENV) == "GROQ_API_KEY"
    monkeypatch.setenv("GENAI_GROQ_API_KEY", "first")
    assert settings.api_key("groq", KEY_ENV) == "first"
    assert settings.key_source("groq", KEY_ENV) == "GENAI_GROQ_API_KEY"
    in_code = Settings(api_keys={"groq": SecretStr("code")})
    assert in_code.api_key("groq", KEY_ENV) == "code" and in_code.key_source("groq", KEY_ENV) == "settings"
    assert in_code.api_key("openai", ["OPENAI_API_KEY"]) is None


def test_api_key_from_the_dotenv_file() -> None:
    write_env("GROQ_API_KEY=from-dotenv\n")
    assert Settings().api_key("groq", KEY_ENV) == "from-dotenv"
    assert Settings().key_source("groq", KEY_ENV) == "GROQ_API_KEY"


def test_providers_path_is_split_on_the_path_separator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_PROVIDERS_PATH", os.pathsep.join(["one", "", "two/three"]))
    assert Settings().providers_path == [Path("one"), Path("two/three")]
    assert Settings(providers_path=f"a{os.pathsep}b").providers_path == [Path("a"), Path("b")]  # type: ignore[arg-type]
    assert Settings(providers_path=[Path("x")]).providers_path == [Path("x")]


def test_settings_from_env_and_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    write_env("GENAI_TIMEOUT=12.5\nGENAI_MAX_RETRIES=7\n")
    monkeypatch.setenv("GENAI_MAX_RETRIES", "4")
    settings = Settings()
    assert settings.timeout == 12.5 and settings.max_retries == 4


@pytest.mark.parametrize(("given", "expected"), [("auto", "httpcore2"), ("httpcore2", "httpcore2"), ("httpx", "httpx")])
def test_http_transport(given: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(http_transport=given).http_transport == expected  # type: ignore[arg-type]
    monkeypatch.setenv("GENAI_HTTP_TRANSPORT", given)
    assert Settings().http_transport == expected


def test_every_limit_is_a_setting_read_from_its_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().limits == DEFAULT
    for i, name in enumerate(NAMES, 1):
        monkeypatch.setenv(Limits.setting(name), str(1000 + i))
    limits = Settings().limits
    assert [getattr(limits, name) for name in NAMES] == [1000 + i for i in range(1, len(NAMES) + 1)]
    assert Limits.setting("max_json_depth") == "GENAI_MAX_JSON_DEPTH"


@pytest.mark.parametrize("values", [{"http_transport": "curl"}, {"max_response_bytes": 0}, {"timeout": 0},
                                    {"max_retries": -1}])
def test_invalid_values_are_validation_errors(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)  # type: ignore[arg-type]
