"""Golden tests for your own provider files: record standard scenarios once against the live API, then replay them
offline on every change.

``genai record`` (`record`) calls the API with your key for each scenario the provider can take and writes, in
``<name>.tests/`` next to the provider file: the rendered request of each scenario (``golden/``, secrets redacted,
the base URL written ``{base_url}``), the reply as it came (``replies/``: body, status and the headers the file
reads; echoed keys masked, volatile headers dropped), and what the engine made of it (``expected.yaml``). ``genai
test`` (`check_recorded`, also from pytest) renders every scenario again and compares it with its golden file,
replays each reply through the provider, streams in 1-, 7- and 4096-byte pieces, and compares the unified results
with ``expected.yaml``. ``--update`` rewrites the golden files and expectations from what the engine gives now;
read their diff.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..provider import HTTPProvider
    from ..registry import Registry
    from ..settings import Settings
    from ..types import CompletionRequest, CompletionResponse

SPLITS = (1, 7, 4096)
BAD_KEY = "invalid-key-recorded-by-genai"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SCHEMA = {"title": "Answer", "type": "object", "properties": {"answer": {"type": "string"}},
          "required": ["answer"], "additionalProperties": False}
# What is kept of a reply's fields in expected.yaml: enough to show a change, nothing volatile.
EXPECTED_FIELDS = ("success", "content", "finish_reason", "error_kind", "error_message", "error_code",
                   "request_id", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")


@dataclass(frozen=True)
class Scenario:
    """One standard request: what it asks, and what the provider must take for it to apply."""

    name: str
    messages: tuple[dict[str, Any], ...]
    stream: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # a capability: tools, json_schema
    bad_key: bool = False  # recorded with a wrong key: the API's auth error

    def request(self, model: str | None) -> CompletionRequest:
        from ..types import CompletionRequest

        return CompletionRequest(messages=[dict(m) for m in self.messages], model=model, stream=self.stream,
                                 temperature=0.0, max_tokens=64, **self.options)


HELLO = ({"role": "user", "content": "Say hello in five words."},)
SCENARIOS = (
    Scenario("simple", HELLO),
    Scenario("conversation", ({"role": "system", "content": "Answer in one word."},
                              {"role": "user", "content": "What is the capital of France?"},
                              {"role": "assistant", "content": "Paris."},
                              {"role": "user", "content": "And of Italy?"})),
    Scenario("stream", HELLO, stream=True),
    Scenario("json", ({"role": "user", "content": "Capital of France? Answer as JSON."},),
             options={"output_schema": SCHEMA}, needs="json_schema"),
    Scenario("tools", ({"role": "user", "content": "What is the weather in Paris? Use the tool."},),
             options={"tools": [WEATHER], "tool_choice": "required"}, needs="tools"),
    Scenario("tools_stream", ({"role": "user", "content": "What is the weather in Paris? Use the tool."},),
             stream=True, options={"tools": [WEATHER], "tool_choice": "required"}, needs="tools"),
    Scenario("auth_error", HELLO, bad_key=True),
)


@dataclass
class Report:
    """The outcome of `check_recorded`: one line per check that failed, and how many passed."""

    provider: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [f"{self.provider}: {self.passed} checks passed, {len(self.failures)} failed"]
        lines += [f"  FAIL {failure}" for failure in self.failures]
        lines += [f"  updated {path}" for path in self.updated]
        return "\n".join(lines)


def fixtures_folder(registry: Registry, provider: str) -> Path:
    """``<name>.tests/`` beside the provider's own file."""
    source = registry.chain(provider)[0].path
    return source.parent / f"{provider}.tests"


def _applies(registry: Registry, provider: str, model: str, scenario: Scenario) -> bool:
    spec = registry.spec(provider)
    if scenario.stream and spec.stream is None:
        return False
    if scenario.needs is None:
        return True
    return bool(getattr(spec.capabilities_for(model), scenario.needs))


def _model(registry: Registry, provider: str, model: str | None) -> str:
    spec = registry.spec(provider)
    chosen = model or spec.default_model or (spec.models[0].id if spec.models else None)
    if not chosen:
        from ..errors import ConfigError

        raise ConfigError(f"provider {provider!r} has no default model: give one with --model")
    return chosen


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def golden_request(instance: HTTPProvider, request: CompletionRequest) -> dict[str, Any]:
    """The rendered request as a golden file keeps it: secrets as ``***``, and the base URL as ``{base_url}``
    (it differs between the live API, a stand-in for it and an override in the environment)."""
    rendered = instance.render(request).to_dict()
    base = instance.prepared.base_url
    if base and rendered["url"].startswith(base):
        rendered["url"] = "{base_url}" + rendered["url"][len(base):]
    return rendered


def expected_of(response: CompletionResponse) -> dict[str, Any]:
    """What expected.yaml keeps of a response."""
    kept: dict[str, Any] = {name: getattr(response, name) for name in EXPECTED_FIELDS}
    kept["error_kind"] = str(response.error_kind) if response.error_kind else None
    kept["tool_calls"] = [{"name": call.name, "arguments": _args(call.arguments)} for call in response.tool_calls]
    return {k: v for k, v in kept.items() if v is not None and v != [] and v != ""}


def _args(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


# -- recording -------------------------------------------------------------------------------------------

def _registry(settings: Settings | None, registry: Registry | None) -> Registry:
    from ..registry import Registry
    from ..settings import Settings

    return registry if registry is not None else Registry(settings or Settings())


def record(provider: str, *, model: str | None = None, folder: Path | None = None,
           settings: Settings | None = None, registry: Registry | None = None) -> list[str]:
    """Call the live API once per scenario and write the fixtures; returns the scenarios recorded.

    ``folder``: where to write (default: ``<name>.tests/`` beside the provider file); ``settings``: the
    engine settings (default: from the environment, as ``genai`` reads them).
    """
    return asyncio.run(_record(_registry(settings, registry), provider, model, folder))


async def _record(registry: Registry, provider: str, model: str | None, folder: Path | None) -> list[str]:
    import httpx
    from pydantic import SecretStr

    from ..provider import HTTPProvider

    model = _model(registry, provider, model)
    out = folder or fixtures_folder(registry, provider)
    replies: dict[str, dict[str, Any]] = {}

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        replies[response.request.extensions.get("genai_scenario", "?")] = {
            "status": response.status_code, "headers": dict(response.headers), "body": response.content}

    recorded, expected = [], {}
    for scenario in SCENARIOS:
        if not _applies(registry, provider, model, scenario):
            continue
        settings = registry.settings
        if scenario.bad_key:
            settings = settings.model_copy(update={"api_keys": {**settings.api_keys, provider: SecretStr(BAD_KEY)},
                                                   "max_retries": 0})
        async with httpx.AsyncClient(event_hooks={"response": [keep]}, timeout=settings.timeout) as client:
            instance = registry.create(provider, settings=settings, http_client=client)
            assert isinstance(instance, HTTPProvider)
            request = scenario.request(model)
            client.event_hooks["request"] = [_tag(scenario.name)]
            response = await (instance.stream_complete(request).final() if scenario.stream
                              else instance.complete(request))
        reply = replies.get(scenario.name)
        if reply is None:
            continue  # nothing came back (no connection): nothing to replay
        secrets = instance.prepared.secrets
        _write_reply(out / "replies" / scenario.name, reply, instance, secrets)
        _write_json(out / "golden" / f"{scenario.name}.json", golden_request(instance, request))
        expected[scenario.name] = _masked(expected_of(response), secrets)
        recorded.append(scenario.name)
    _write_expected(out / "expected.yaml", {"model": model, "scenarios": expected})
    return recorded


def _masked(data: dict[str, Any], secrets: Iterable[str]) -> dict[str, Any]:
    """``data`` with every secret replaced by ``***`` (an API that echoes the key into its answer)."""
    text = json.dumps(data, ensure_ascii=False)
    for secret in secrets:
        text = text.replace(json.dumps(secret, ensure_ascii=False)[1:-1], "***")
    return json.loads(text)  # type: ignore[no-any-return]


def _tag(name: str) -> Any:
    async def hook(request: Any) -> None:
        request.extensions["genai_scenario"] = name

    return hook


def _write_reply(base: Path, reply: dict[str, Any], instance: HTTPProvider, secrets: Iterable[str]) -> None:
    """A reply as it came, less what must not be kept: echoed secrets, and headers the file does not read."""
    body: bytes = reply["body"]
    for secret in secrets:
        body = body.replace(secret.encode(), b"***")
    read = {e[len("header:"):].lower() for e in _header_paths(instance)}
    headers = {k: v for k, v in reply["headers"].items() if k.lower() == "content-type" or k.lower() in read}
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".body").write_bytes(body)
    _write_json(base.with_suffix(".json"), {"status": reply["status"], "headers": headers})


def _header_paths(instance: HTTPProvider) -> list[str]:
    import re

    text = json.dumps(instance.spec.model_dump(mode="json"))
    return re.findall(r"header:[A-Za-z0-9_-]+", text)


def _write_expected(path: Path, data: dict[str, Any]) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# What the engine made of each recorded reply (genai test compares; genai test --update rewrites).\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8")


# -- checking ---------------------------------------------------------------------------------------------

def check_recorded(provider: str, *, folder: Path | None = None, update: bool = False,
                   settings: Settings | None = None, registry: Registry | None = None) -> Report:
    """Check a provider file against its recorded fixtures, offline (see the module doc). From pytest::

        def test_acme_matches_its_recording():
            report = check_recorded("acme")
            assert report.ok, report.summary()
    """
    return asyncio.run(_check(_registry(settings, registry), provider, folder, update))


async def _check(registry: Registry, provider: str, folder: Path | None, update: bool) -> Report:
    import yaml
    from pydantic import SecretStr

    from ..errors import ConfigError
    from ..provider import HTTPProvider

    out = folder or fixtures_folder(registry, provider)
    report = Report(provider)
    path = out / "expected.yaml"
    if not path.is_file():
        raise ConfigError(f"no recorded fixtures for {provider!r} in {out}: run genai record {provider} first")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    model, expected = data.get("model"), dict(data.get("scenarios") or {})
    settings = registry.settings.model_copy(update={
        "api_keys": {**registry.settings.api_keys, provider: SecretStr("sk-recorded-test")}, "max_retries": 0})
    for scenario in SCENARIOS:
        if scenario.name not in expected:
            continue
        request = scenario.request(model)
        instance = registry.create(provider, settings=settings)
        golden = out / "golden" / f"{scenario.name}.json"
        assert isinstance(instance, HTTPProvider)
        rendered = golden_request(instance, request)
        if update:
            _write_json(golden, rendered)
            report.updated.append(str(golden))
        elif not golden.is_file() or json.loads(golden.read_text(encoding="utf-8")) != rendered:
            report.failures.append(f"{scenario.name}: the rendered request differs from {golden}")
        else:
            report.passed += 1
        meta = json.loads((out / "replies" / f"{scenario.name}.json").read_text(encoding="utf-8"))
        body = (out / "replies" / f"{scenario.name}.body").read_bytes()
        for piece in SPLITS if scenario.stream else (4096,):
            got = expected_of(await _replay(registry, provider, settings, request, meta, body, piece))
            if update:
                expected[scenario.name] = got
            elif got != expected[scenario.name]:
                report.failures.append(f"{scenario.name} (replayed in {piece}-byte pieces): expected "
                                       f"{expected[scenario.name]}, got {got}")
            else:
                report.passed += 1
    if update:
        _write_expected(path, {"model": model, "scenarios": expected})
        report.updated.append(str(path))
    return report


async def _replay(registry: Registry, provider: str, settings: Any, request: CompletionRequest,
                  meta: dict[str, Any], body: bytes, piece: int) -> CompletionResponse:
    from .replay import replay_client

    client, _ = replay_client(meta["status"], body, meta.get("headers") or {}, piece=piece)
    async with client, registry.create(provider, settings=settings, http_client=client) as instance:
        if request.stream:
            return await instance.stream_complete(request).final()
        return await instance.complete(request)
