"""Auth hooks: the token cache, and the bundled hooks with the real google-auth and azure-identity signing in
against loopback token endpoints (`TokenServer`) while the fake API checks every token it is sent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, Settings
from engine.auth import AuthHook, CachedAuth, Credentials
from engine.errors import BackendLoadError, ErrorKind, ProviderError
from engine.registry import Registry
from engine.testing import FakeServer
from engine.testing.tokens import TokenServer

pytest.importorskip("google.auth", reason="the [google] extra (installed by [dev])")
pytest.importorskip("azure.identity", reason="the [azure] extra (installed by [dev])")


# -- the cache ---------------------------------------------------------------------------------------------

class Counting(AuthHook):
    """A hook whose tokens live ``lifetime`` seconds; counts its fetches."""

    lifetime: float | None = 3600.0
    delay = 0.0
    fail: Exception | None = None

    def __init__(self) -> None:  # built by hand: no provider file
        self.fetched = 0

    def fetch(self) -> Credentials:
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.fetched += 1
        expires = None if self.lifetime is None else time.time() + self.lifetime
        return Credentials(headers={"Authorization": f"Bearer token-{self.fetched}"}, expires_at=expires)


class AsyncHook(Counting):
    async def fetch(self) -> Credentials:  # type: ignore[override]
        await asyncio.sleep(self.delay)
        return Credentials(headers={"x-token": "async-token"}, expires_at=None)


def test_credentials_are_cached_until_shortly_before_they_expire() -> None:
    hook = Counting()
    cache = CachedAuth(hook, "demo")

    async def go() -> list[str]:
        return [(await cache.credentials()).headers["Authorization"] for _ in range(3)]

    assert asyncio.run(go()) == ["Bearer token-1"] * 3 and hook.fetched == 1
    hook.lifetime = 30.0  # inside the refresh margin (60 s): every call fetches again
    cache.forget()
    assert asyncio.run(go()) == ["Bearer token-2", "Bearer token-3", "Bearer token-4"]
    hook.lifetime = None  # never expires
    cache.forget()
    assert asyncio.run(go()) == ["Bearer token-5"] * 3


def test_concurrent_first_calls_make_one_fetch() -> None:
    hook = Counting()
    hook.delay = 0.05
    cache = CachedAuth(hook, "demo")

    async def go() -> set[str]:
        results = await asyncio.gather(*(cache.credentials() for _ in range(20)))
        return {c.headers["Authorization"] for c in results}

    assert asyncio.run(go()) == {"Bearer token-1"} and hook.fetched == 1 and cache.fetches == 1


def test_async_hooks_are_awaited_and_failures_become_auth_errors() -> None:
    assert asyncio.run(CachedAuth(AsyncHook(), "demo").credentials()).headers == {"x-token": "async-token"}
    hook = Counting()
    hook.fail = RuntimeError("token endpoint said\n  invalid_grant")
    with pytest.raises(ProviderError, match="auth hook of provider 'demo' failed: token endpoint said invalid_grant"
                       ) as caught:
        asyncio.run(CachedAuth(hook, "demo").credentials())
    assert caught.value.kind is ErrorKind.AUTH

    class Wrong(Counting):
        def fetch(self) -> Any:
            return {"Authorization": "Bearer x"}

    with pytest.raises(ProviderError, match="returned dict, not Credentials"):
        asyncio.run(CachedAuth(Wrong(), "demo").credentials())


def test_credentials_mark_their_values_as_secrets() -> None:
    credentials = Credentials(headers={"Authorization": "Bearer abcdef"}, query={"sig": "xyz123"})
    assert credentials.secrets == ("Bearer abcdef", "xyz123")


# -- the bundled hooks, end to end -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokens() -> Iterator[TokenServer]:
    with TokenServer(max_seconds=300) as server:
        yield server


@pytest.fixture(scope="module")
def api(tokens: TokenServer) -> Iterator[FakeServer]:
    with FakeServer(chunk_size=7, max_seconds=300, api_key=tokens.valid) as server:
        yield server


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from this machine: no ADC file, no gcloud config, no metadata server, no Azure environment."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_AUTHORITY_HOST", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")


def google_settings(api: FakeServer, sa_file: Path, **config: str) -> Settings:
    vertex = {"project": "demo-project", "location": "us-east5", "credentials_file": str(sa_file), **config}
    return Settings(max_retries=0, timeout=20.0,
                    base_urls={"vertex-gemini": api.base_url + "/v1", "vertex-anthropic": api.base_url + "/v1"},
                    provider_config={"vertex-gemini": vertex, "vertex-anthropic": vertex})


def azure_settings(api: FakeServer, tokens: TokenServer, secret: str | None = None) -> Settings:
    app = tokens.azure_app()
    config = {"resource": "demo", "tenant_id": app.tenant, "client_id": app.client_id,
              "client_secret": secret or app.client_secret, "authority_host": tokens.azure_authority,
              "instance_discovery": "false", "ca_bundle": str(tokens.ca_file)}
    return Settings(max_retries=0, timeout=20.0, base_urls={"azure-openai-entra": api.base_url},
                    provider_config={"azure-openai-entra": config})


def run(settings: Settings, model: str, *, stream: bool, mode: str = "sync", calls: int = 1) -> list[Any]:
    """``calls`` calls through one engine; each a response (streamed: the joined text is checked too)."""
    if mode == "sync":
        with Engine(settings) as engine:
            out = []
            for _ in range(calls):
                if stream:
                    handle = engine.stream(model, "Hello cloud")
                    text = "".join(handle)
                    assert handle.response is not None and text == handle.response.content
                    out.append(handle.response)
                else:
                    out.append(engine.complete(model, "Hello cloud"))
            return out

    async def go() -> list[Any]:
        async with Engine(settings) as engine:
            if stream:
                results = []
                for _ in range(calls):
                    handle = engine.astream(model, "Hello cloud")
                    text = "".join([t async for t in handle])
                    assert handle.response is not None and text == handle.response.content
                    results.append(handle.response)
                return results
            return list(await asyncio.gather(*(engine.acomplete(model, "Hello cloud") for _ in range(calls))))

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", ["vertex-gemini/gemini-2.5-flash", "vertex-anthropic/claude-sonnet-4-5"])
def test_vertex_signs_in_with_a_service_account(tokens: TokenServer, api: FakeServer, model: str, stream: bool,
                                               mode: str) -> None:
    sa = tokens.google_service_account()
    before = tokens.fetches["google"]
    results = run(google_settings(api, sa), model, stream=stream, mode=mode, calls=3)
    assert all(r.success for r in results), [r.error for r in results]
    assert results[0].content == api.reply_for(api.requests[-1])
    assert tokens.fetches["google"] == before + 1  # one token for all three calls
    sent = api.requests[-1]
    assert tokens.valid(sent.headers["authorization"].removeprefix("Bearer "))
    if model.startswith("vertex-anthropic"):
        method = "streamRawPredict" if stream else "rawPredict"
        assert sent.path == ("/v1/projects/demo-project/locations/us-east5/publishers/anthropic/models/"
                             f"claude-sonnet-4-5@20250929:{method}")
        body = sent.json()
        assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    else:
        method = "streamGenerateContent" if stream else "generateContent"
        assert sent.path.endswith(f"/locations/us-east5/publishers/google/models/gemini-2.5-flash:{method}")
        assert (sent.query == "alt=sse") is stream
    assert results[0].cost_usd is not None and results[0].cost_usd > 0


def test_concurrent_first_calls_fetch_one_token(tokens: TokenServer, api: FakeServer) -> None:
    sa = tokens.google_service_account("concurrent@demo-project.iam.gserviceaccount.com")
    before = tokens.fetches["google"]
    results = run(google_settings(api, sa), "vertex-gemini/gemini-2.5-flash", stream=False, mode="async", calls=16)
    assert all(r.success for r in results) and tokens.fetches["google"] == before + 1


def test_tokens_near_expiry_are_refreshed_and_a_refused_token_is_replaced(api: FakeServer) -> None:
    # Tokens inside the refresh margin (60 s): every call refreshes.
    with TokenServer(expires_in=30, max_seconds=120) as short, \
            FakeServer(chunk_size=None, max_seconds=120, api_key=short.valid) as checked:
        settings = google_settings(checked, short.google_service_account())
        results = run(settings, "vertex-gemini/gemini-2.5-flash", stream=False, calls=3)
        assert all(r.success for r in results) and short.fetches["google"] == 3
    with TokenServer(max_seconds=120) as tokens, FakeServer(chunk_size=None, max_seconds=120,
                                                            api_key=tokens.valid) as checked:
        settings = google_settings(checked, tokens.google_service_account())
        with Engine(settings) as engine:
            assert engine.complete("vertex-gemini/gemini-2.5-flash", "Hi").success
            tokens.expire_all()  # revoked early: the API answers 401, and the next call fetches a new token
            refused = engine.complete("vertex-gemini/gemini-2.5-flash", "Hi")
            assert not refused.success and refused.error_kind == "auth" and refused.status_code == 401
            assert engine.complete("vertex-gemini/gemini-2.5-flash", "Hi").success
        assert tokens.fetches["google"] == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_token_endpoint_failure_is_an_auth_error_and_nothing_is_sent(tokens: TokenServer, api: FakeServer,
                                                                       stream: bool) -> None:
    settings = google_settings(api, tokens.google_service_account(f"failing-{stream}@p.iam.gserviceaccount.com"))
    sent = len(api.requests)
    tokens.fail_next(400, "invalid_grant")
    [result] = run(settings, "vertex-anthropic/claude-haiku-4-5", stream=stream)
    assert not result.success and result.error_kind == "auth"
    assert "auth hook of provider 'vertex-anthropic' failed" in result.error and "invalid_grant" in result.error
    assert len(api.requests) == sent
    [again] = run(settings, "vertex-anthropic/claude-haiku-4-5", stream=stream)
    assert again.success, again.error  # the failure is not cached


def test_a_service_account_the_endpoint_does_not_know_is_refused(tokens: TokenServer, api: FakeServer,
                                                                  tmp_path: Path) -> None:
    sa = json.loads(tokens.google_service_account("known@p.iam.gserviceaccount.com").read_text())
    sa["client_email"] = "stranger@p.iam.gserviceaccount.com"  # signed with a key the endpoint never saw
    path = tmp_path / "stranger.json"
    path.write_text(json.dumps(sa))
    [result] = run(google_settings(api, path), "vertex-gemini/gemini-2.5-flash", stream=False)
    assert not result.success and result.error_kind == "auth" and "unknown service account" in result.error


def test_without_any_google_credentials_the_error_says_what_to_set(api: FakeServer,
                                                                   no_ambient_credentials: None) -> None:
    settings = Settings(max_retries=0, base_urls={"vertex-gemini": api.base_url + "/v1"},
                        provider_config={"vertex-gemini": {"project": "demo-project"}})
    [result] = run(settings, "vertex-gemini/gemini-2.5-flash", stream=False)
    assert not result.success and result.error_kind == "auth"
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.error and "gcloud auth application-default login" in result.error


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_azure_openai_signs_in_with_entra_id(tokens: TokenServer, api: FakeServer, stream: bool, mode: str) -> None:
    before = tokens.fetches["azure"]
    results = run(azure_settings(api, tokens), "azure-openai-entra/my-gpt-4o", stream=stream, mode=mode, calls=2)
    assert all(r.success for r in results), [r.error for r in results]
    assert tokens.fetches["azure"] == before + 1
    sent = api.requests[-1]
    assert sent.path == "/openai/deployments/my-gpt-4o/chat/completions" and sent.query == "api-version=2024-10-21"
    assert tokens.valid(sent.headers["authorization"].removeprefix("Bearer ")) and "api-key" not in sent.headers


def test_a_wrong_client_secret_is_an_auth_error_without_the_secret(tokens: TokenServer, api: FakeServer) -> None:
    secret = "not-the-right-secret-123"
    [result] = run(azure_settings(api, tokens, secret=secret), "azure-openai-entra/my-gpt-4o", stream=False)
    assert not result.success and result.error_kind == "auth"
    assert "AADSTS7000215" in result.error and secret not in result.error and secret not in str(result.raw_response)


def test_tokens_never_show_in_rendered_requests_or_responses(tokens: TokenServer, api: FakeServer) -> None:
    settings = google_settings(api, tokens.google_service_account("render@p.iam.gserviceaccount.com"))
    registry = Registry(settings)
    provider = registry.create("vertex-gemini")
    from engine.types import CompletionRequest

    shown = provider.render(CompletionRequest(messages=[{"role": "user", "content": "Hi"}]))
    assert shown.headers["Authorization"] == "***"
    [result] = run(settings, "vertex-gemini/gemini-2.5-flash", stream=False)
    token = api.requests[-1].headers["authorization"].removeprefix("Bearer ")
    assert token not in repr(result) and token not in json.dumps(result.raw_response)


def test_a_missing_optional_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, api: FakeServer,
                                                    tokens: TokenServer) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "google.auth", None)
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    registry = Registry(google_settings(api, tokens.google_service_account("missing@p.iam.gserviceaccount.com")))
    with pytest.raises(BackendLoadError, match=r"pip install 'genai-engine\[google\]'"):
        registry.create("vertex-gemini")
    registry = Registry(azure_settings(api, tokens))
    with pytest.raises(BackendLoadError, match=r"pip install 'genai-engine\[azure\]'"):
        registry.create("azure-openai-entra")


def test_discovery_and_check_never_import_a_hook(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys, contextlib, io; from engine import Settings; from engine.cli import main; "
            "from engine.registry import Registry; r = Registry(Settings()); [r.compiled(n) for n in r.names()]; "
            "out = io.StringIO(); ctx = contextlib.redirect_stdout(out); ctx.__enter__(); main(['check']); "
            "ctx.__exit__(None, None, None); "
            "print(sorted(m for m in sys.modules if m.startswith(('google', 'azure', 'engine.auth_'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_hooks_can_be_written_by_users(tmp_path: Path, api: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook of one's own, named by a provider file: a signed query value that changes every minute."""
    (tmp_path / "signed_hook.py").write_text(
        "import time\n"
        "from engine.auth import AuthHook, Credentials\n"
        "class Signed(AuthHook):\n"
        "    async def fetch(self):\n"
        "        return Credentials(query={'key': 'demo-' + self.config['account']},\n"
        "                           expires_at=time.time() + 3600)\n")
    (tmp_path / "signed.yaml").write_text(
        "name: signed\nextends: openai\nbase_url: https://api.signed.example/v1\ndefault_model: m\n"
        "models: [{id: m}]\nconfig: {account: {default: acme}}\n"
        "auth: {type: hook, hook: 'signed_hook:Signed'}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with FakeServer(chunk_size=None, max_seconds=60, api_key="demo-acme") as checked:
        settings = Settings(providers_path=[tmp_path], base_urls={"signed": checked.base_url + "/v1"}, max_retries=0)
        [result] = run(settings, "signed/m", stream=True)
        assert result.success, result.error
        assert checked.requests[-1].query == "key=demo-acme"
        assert "demo-acme" not in json.dumps(result.raw_response)


def test_hook_fetches_run_off_the_event_loop() -> None:
    loop_thread: list[int] = []

    class Blocking(Counting):
        def fetch(self) -> Credentials:
            loop_thread.append(threading.get_ident())
            return super().fetch()

    async def go() -> int:
        await CachedAuth(Blocking(), "demo").credentials()
        return threading.get_ident()

    assert asyncio.run(go()) not in loop_thread
