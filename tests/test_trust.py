"""The trust boundary (engine/trust.py, SECURITY.md): refused addresses, secrets hidden in requests shown, logs
and replies, proxies honoured, per-call options kept out of bodies."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import CompletionRequest, ConfigError, Engine, ErrorKind, Settings, UnknownOptionError, render_request
from engine.registry import Registry
from engine.testing import FakeServer, Fault, ForwardProxy
from engine.trust import redact, refused_address, register_secrets

from .conftest import TEST_KEY, make_settings, server_settings

HELLO = [{"role": "user", "content": "hi"}]


def user_provider(folder: Path, name: str, extra: str = "", base_url: str = "https://api.example.com/v1") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\nextends: openai\nbase_url: {base_url}\ndefault_model: m\nauth:\n  env: [{name.upper()}_KEY]\n"
        + extra)


# -- addresses ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["169.254.169.254", "[fe80::1]", "metadata.google.internal", "100.100.100.200",
                                  "[::ffff:169.254.169.254]"])
def test_link_local_and_metadata_base_urls_are_refused(tmp_path: Path, host: str) -> None:
    user_provider(tmp_path, "meta", base_url=f"http://{host}/v1")
    settings = Settings(providers_path=[tmp_path], api_keys={"meta": TEST_KEY})
    with pytest.raises(ConfigError, match=r"refused: .* \(set GENAI_ALLOW_LINK_LOCAL=true to allow\)"):
        Registry(settings).create("meta")
    allowed = settings.model_copy(update={"allow_link_local": True})
    assert Registry(allowed).create("meta").render(CompletionRequest(messages=HELLO)).url.startswith(  # type: ignore[attr-defined]
        f"http://{host}/")


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "api.openai.com", "[::1]", "localhost"])
def test_ordinary_hosts_are_not_refused(host: str) -> None:
    assert refused_address(host) is None


def test_a_name_that_resolves_to_a_metadata_address_is_refused_at_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.transport import _Backend

    async def fake_getaddrinfo(self: Any, host: str, port: int, **_: Any) -> list[Any]:
        return [(2, 1, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fake_getaddrinfo)
    import httpcore2

    with pytest.raises(httpcore2.ConnectError, match=r"resolves to 169\.254\.169\.254"):
        asyncio.run(_Backend().connect_tcp("sneaky.example", 80))


# -- keys and secrets -----------------------------------------------------------------------------------

def test_a_non_ascii_key_is_a_clear_configuration_error() -> None:
    with pytest.raises(ConfigError, match="non-ASCII character at position 5 of 9") as info:
        Registry(make_settings(api_keys={"openai": "sk-a\u201cbcde"})).create("openai")
    assert "bcde" not in str(info.value)


def test_any_header_that_carries_the_key_is_redacted(tmp_path: Path) -> None:
    user_provider(tmp_path, "hdr", "request:\n  headers:\n    x-custom-auth: 'Token {{ api_key }}'\n"
                                   "    x-plain: visible\n")
    shown = render_request("hdr", CompletionRequest(messages=HELLO),
                           Settings(providers_path=[tmp_path], api_keys={"hdr": TEST_KEY})).to_dict()
    assert shown["headers"]["x-custom-auth"] == "***" and shown["headers"]["x-plain"] == "visible"
    assert TEST_KEY not in repr(shown)


def test_a_secret_config_value_is_redacted_like_the_key(tmp_path: Path) -> None:
    user_provider(tmp_path, "cfg", "config:\n  token: {secret: true, env: [CFG_TOKEN]}\n"
                                   "request:\n  headers:\n    x-token: '{{ config.token }}'\n"
                                   "  query:\n    sig: '{{ config.token }}'\n")
    settings = Settings(providers_path=[tmp_path], api_keys={"cfg": TEST_KEY},
                        provider_config={"cfg": {"token": "tok-SECRET-987"}})
    rendered = render_request("cfg", CompletionRequest(messages=HELLO), settings)
    assert "tok-SECRET-987" in rendered.url  # sent...
    assert "tok-SECRET-987" not in repr(rendered) and "tok-SECRET-987" not in str(rendered.to_dict())  # ...not shown


def test_the_cli_render_shows_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import main

    user_provider(tmp_path, "hdr", "request:\n  headers:\n    x-custom-auth: 'Token {{ api_key }}'\n")
    monkeypatch.setenv("HDR_KEY", TEST_KEY)
    assert main(["render", "-P", str(tmp_path), "-m", "hdr", "hi"]) == 0
    out = capsys.readouterr().out
    assert TEST_KEY not in out and "x-custom-auth: ***" in out


def test_httpx_own_logs_never_show_a_query_key(local_server: FakeServer, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "qkey.yaml").write_text(
        f"name: qkey\nextends: openai\nbase_url: {local_server.base_url}/v1\ndefault_model: m\n"
        "auth: {type: query, query_param: key, value: '{{ api_key }}', env: [QKEY_KEY]}\n")
    settings = Settings(providers_path=[tmp_path], api_keys={"qkey": "qk-SECRET-555"}, max_retries=0,
                        http_transport="httpx")
    caplog.set_level(logging.DEBUG)
    response = Engine(settings).complete("qkey/m", "hi")
    assert response.success, response.error
    assert "HTTP Request: POST" in caplog.text and "?key=***" in caplog.text  # httpx logged the URL, masked
    assert "qk-SECRET-555" not in caplog.text


def test_redact_masks_plain_and_url_encoded_secrets() -> None:
    register_secrets(["s3cr3t/with+chars"])
    assert redact("key=s3cr3t/with+chars") == "key=***"
    assert "s3cr3t" not in redact("key=s3cr3t%2Fwith%2Bchars")


# -- network settings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("pool", ["httpcore2", "httpx"])
def test_proxies_from_the_environment_are_honoured(local_server: FakeServer, pool: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with ForwardProxy(local_server.base_url) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # A host only the proxy can reach: the call succeeds only through it.
        settings = make_settings(base_urls={"openai": "http://api.only-through-proxy.test/v1"}, max_retries=0,
                                 http_transport=pool)
        response = Engine(settings).complete("openai/gpt-4o-mini", "hi")
        assert response.success, response.error
        assert proxy.targets == ["http://api.only-through-proxy.test/v1/chat/completions"]
        monkeypatch.setenv("NO_PROXY", "only-through-proxy.test")  # now direct, so the name does not resolve
        direct = Engine(settings).complete("openai/gpt-4o-mini", "hi")
        assert direct.error_kind is ErrorKind.CONNECTION and len(proxy.targets) == 1


def test_a_socks_proxy_with_the_httpcore2_pool_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError, match="GENAI_HTTP_TRANSPORT=httpx"):
        Engine(make_settings()).complete("openai/gpt-4o-mini", "hi")


def test_one_client_serves_sync_and_async_calls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "mocked"}, "finish_reason": "stop"}]})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    engine = Engine(make_settings(), http_client=client)
    assert engine.complete("openai/gpt-4o", "hi").content == "mocked"  # sync: the caller's client, not the network
    assert asyncio.run(engine.acomplete("openai/gpt-4o", "hi")).content == "mocked"
    assert "".join(engine.stream("openai/gpt-4o", "hi")) == ""  # a JSON reply to a stream request
    assert len(seen) == 3
    engine.close()


# -- per-call options -----------------------------------------------------------------------------------

def test_per_call_options_are_applied_and_never_sent_as_body_fields(local_server: FakeServer) -> None:
    engine = Engine(server_settings(local_server, max_retries=0))
    with FakeServer(chunk_size=None, max_seconds=60) as other:
        reply = engine.complete("openai/gpt-4o-mini", "hi", timeout=5, headers={"x-trace": "t1"},
                                api_key="sk-per-call-KEY", base_url=other.base_url + "/v1", max_retries=1)
        assert reply.success, reply.error
        sent = other.requests[-1]
    assert sent.headers["x-trace"] == "t1" and sent.headers["authorization"] == "Bearer sk-per-call-KEY"
    assert not {"timeout", "headers", "api_key", "base_url", "max_retries"} & set(sent.json())


def test_a_per_call_timeout_and_retry_count(local_server: FakeServer) -> None:
    engine = Engine(server_settings(local_server, max_retries=3))
    local_server.inject(Fault("timeout", seconds=5))
    slow = engine.complete("openai/gpt-4o-mini", "hi", timeout=0.3, max_retries=0)
    assert slow.error_kind is ErrorKind.TIMEOUT
    local_server.inject(Fault("status", status=500), Fault("status", status=500))
    assert engine.complete("openai/gpt-4o-mini", "hi", max_retries=1).error_kind is ErrorKind.SERVER
    local_server.inject(Fault("status", status=500))
    assert engine.complete("openai/gpt-4o-mini", "hi", max_retries=1).success


@pytest.mark.parametrize(("given", "suggestion"), [("max_token", "max_tokens"), ("temprature", "temperature"),
                                                   ("time_out", "timeout"), ("top_k", "top_p")])
def test_an_unknown_keyword_is_an_error_that_suggests_the_right_one(given: str, suggestion: str) -> None:
    engine = Engine(make_settings())
    with pytest.raises(UnknownOptionError, match=f"unknown option {given!r}: did you mean {suggestion!r}") as info:
        engine.complete("openai/gpt-4o", "hi", **{given: 5})
    assert isinstance(info.value, TypeError) and "extra=" in str(info.value)


def test_bad_per_call_values_are_refused_before_sending() -> None:
    with pytest.raises(UnknownOptionError, match="timeout must be a positive number"):
        Engine(make_settings()).complete("openai/gpt-4o", "hi", timeout=-1)


def test_a_backend_takes_only_timeout_and_retries_per_call() -> None:
    pytest.importorskip("boto3", reason="the [bedrock] extra (installed by [dev])")
    with pytest.raises(ConfigError, match="not api_key, base_url or headers"):
        asyncio.run(Engine(make_settings()).acomplete("bedrock/nova-lite", "hi", api_key="x"))
