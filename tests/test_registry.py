"""The registry: discovery across folders, overrides by name, caching, and provider instances."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine import Settings, UnknownProviderError
from engine.backend import BackendProvider
from engine.loader import bundled_path
from engine.provider import HTTPProvider
from engine.registry import Registry, default_registry, list_providers

ACME = "name: acme\nextends: openai\nbase_url: https://api.acme.example/v1\n"


def folder_with(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for stem, text in files.items():
        (path / f"{stem}.yaml").write_text(text, encoding="utf-8")
    return path


def bundled_names() -> list[str]:
    return sorted(p.stem for p in bundled_path("providers.d").glob("*.yaml"))


def test_names_are_sorted_and_include_a_dropped_in_file(tmp_path: Path) -> None:
    names = Registry(Settings(providers_path=[folder_with(tmp_path, acme=ACME)])).names()
    assert names == sorted(names) == sorted([*bundled_names(), "acme"])
    assert Registry(Settings()).names() == bundled_names()


def test_a_later_folder_overrides_a_bundled_provider_by_name(tmp_path: Path) -> None:
    first = folder_with(tmp_path / "a", mine="name: groq\nextends: openai\nbase_url: https://first.example\n")
    second = folder_with(tmp_path / "b", x="name: groq\nextends: openai\nbase_url: https://second.example\n")
    registry = Registry(Settings(providers_path=[first, second]))
    assert registry.spec("groq").base_url == "https://second.example"
    assert registry.chain("groq")[0].path == second / "x.yaml"
    assert registry.names().count("groq") == 1


def test_an_unknown_name_raises_with_the_name(registry: Registry) -> None:
    with pytest.raises(UnknownProviderError, match="unknown provider 'nope'; known providers: anthropic") as info:
        registry.chain("nope")
    assert info.value.name == "nope"
    with pytest.raises(UnknownProviderError):
        registry.spec("nope")


def test_spec_and_compiled_are_cached(registry: Registry) -> None:
    assert registry.spec("openai") is registry.spec("openai")
    compiled = registry.compiled("groq")
    assert registry.compiled("groq") is compiled and compiled.spec is registry.spec("groq")
    assert registry.prices is registry.prices


def test_create_an_http_and_a_backend_provider(registry: Registry) -> None:
    pytest.importorskip("boto3", reason="the [bedrock] extra (installed by [dev])")
    http = registry.create("openai")
    backend = registry.create("bedrock")
    try:
        assert isinstance(http, HTTPProvider) and not isinstance(http, BackendProvider)
        assert isinstance(backend, BackendProvider)
        assert http.name == "openai" and backend.name == "bedrock"
    finally:
        asyncio.run(http.close())
        asyncio.run(backend.close())


def test_default_registry_is_shared_for_equal_settings(tmp_path: Path) -> None:
    folder = folder_with(tmp_path / "p", acme=ACME)
    shared = default_registry(Settings(providers_path=[folder]))
    assert default_registry(Settings(providers_path=[folder], timeout=1.0)) is shared
    assert default_registry(Settings()) is not shared
    assert default_registry(Settings(providers_path=[folder], pricing_file=tmp_path / "p.yaml")) is not shared


def test_default_registry_without_settings_reads_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = folder_with(tmp_path / "env", acme=ACME)
    monkeypatch.setenv("GENAI_PROVIDERS_PATH", str(folder))
    assert default_registry() is default_registry(Settings(providers_path=[folder]))
    assert "acme" in list_providers()


def test_list_providers(tmp_path: Path) -> None:
    assert list_providers() == bundled_names()
    assert list_providers(Settings(providers_path=[folder_with(tmp_path, acme=ACME)])) == sorted(
        [*bundled_names(), "acme"])
