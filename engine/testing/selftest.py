"""The offline self-test behind ``genai demo``: every provider end to end against the fake server.

Each HTTP provider whose request path the fake server answers runs through the full engine path
(template, real HTTP over loopback, stream parsing, cost), and its reply is checked against what
the server sent. Nothing leaves the machine and no real key is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .server import FakeServer
from .tokens import TokenServer
from .wire import route

if TYPE_CHECKING:
    from ..registry import Registry
    from ..settings import Settings

Outcome = Literal["ok", "fail", "skipped"]


@dataclass
class SelfTestResult:
    """How one provider did."""

    provider: str
    format: str | None = None
    model: str | None = None
    result: Outcome = "skipped"
    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    error: str | None = None
    embeddings: Outcome | None = None  # the embeddings round trip, for providers that have them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


async def run_selftest(registry: Registry, settings: Settings, server: FakeServer, names: Sequence[str],
                       *, stream: bool = True) -> list[SelfTestResult]:
    """Run each named provider against ``server``; one broken provider never hides the others."""
    from pydantic import SecretStr

    from ..errors import ConfigError

    results = [SelfTestResult(name) for name in names]
    runnable: list[SelfTestResult] = []
    config: dict[str, dict[str, str]] = {}
    tokens: TokenServer | None = None
    try:
        for result in results:
            try:
                spec = registry.spec(result.provider)
            except ConfigError as exc:
                result.result, result.error = "fail", _one_line(exc)
                continue
            if spec.backend is not None or (spec.request is None and spec.embeddings is None):
                result.error = "python backend: no local wire format" if spec.backend else "no local wire format"
                continue
            config[result.provider] = {key: var.default or f"demo-{key}" for key, var in spec.config.items()}
            if spec.auth.type == "hook":  # signs in against loopback token endpoints, with the real library
                try:
                    hook = _hook_class(spec.auth.hook or "")
                    tokens = tokens or TokenServer(max_seconds=600).start()
                    config[result.provider].update(hook.selftest_config(tokens))
                except Exception as exc:  # the hook's optional library is not installed
                    result.error = f"auth hook not available here: {_one_line(exc)}"
                    continue
            runnable.append(result)
        demo_settings = settings.model_copy(update={
            "api_keys": {r.provider: SecretStr("demo-key") for r in runnable},
            "base_urls": {r.provider: server.base_url for r in runnable},
            "provider_config": config, "max_retries": 0, "timeout": 10.0,
        })
        for result in runnable:
            try:
                await _run_one(registry, demo_settings, server, result, stream)
            except Exception as exc:  # one broken provider must not hide the others
                result.result, result.error = "fail", _one_line(exc)
    finally:
        if tokens is not None:
            tokens.stop()
    return results


def _hook_class(name: str) -> Any:
    """The auth hook class a file names; it must offer ``selftest_config`` to run offline."""
    import importlib

    module_name, _, class_name = name.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not hasattr(cls, "selftest_config"):
        raise TypeError(f"{name} has no selftest_config: it cannot sign in offline")
    cls.check_available()
    return cls


async def _run_one(registry: Registry, settings: Settings, server: FakeServer, result: SelfTestResult,
                   stream: bool) -> None:
    from ..provider import HTTPProvider
    from ..types import CompletionRequest

    spec = registry.spec(result.provider)
    model = spec.default_model or (spec.models[0].id if spec.models else "local-model")
    result.model = model
    provider = registry.create(result.provider, settings=settings)
    assert isinstance(provider, HTTPProvider)
    if spec.embeddings is not None:
        await _embed_one(provider, result)
    if spec.request is None:  # an embeddings-only provider
        await provider.close()
        result.result = result.embeddings or "fail"
        result.model = spec.embeddings.default_model if spec.embeddings else None
        result.text = result.text or "(embeddings only)"
        return
    try:
        request = CompletionRequest(
            messages=[{"role": "user", "content": f"Hello {result.provider}, this is the demo."}],
            model=model, max_tokens=64, stream=stream)
        rendered = provider.render(request)
        routed = route(urlsplit(rendered.url).path)
        if routed is None:
            result.error = "no local wire format"
            return
        result.format = routed[0].name
        expected = server.reply_for(rendered)
        if stream:
            call = provider.stream_complete(request)
            text = "".join([delta async for delta in call])
            response = call.response
            assert response is not None
        else:
            response = await provider.complete(request)
            text = response.content
    finally:
        await provider.close()
    result.text, result.input_tokens, result.output_tokens = text, response.input_tokens, response.output_tokens
    result.cost_usd, result.latency_ms = response.cost_usd, response.latency_ms
    if not response.success:
        result.result, result.error = "fail", f"{response.error_kind}: {response.error}"
    elif text != expected or response.content != expected:
        result.result, result.error = "fail", f"expected {expected!r}, got {text!r}"
    elif result.embeddings == "fail":
        result.result = "fail"
    else:
        result.result = "ok"


async def _embed_one(provider: Any, result: SelfTestResult) -> None:
    """Embed two texts and check both vectors (the fake server's are a function of the text)."""
    from ..types import EmbeddingRequest
    from .embeddings import vector_for

    spec = provider.spec.embeddings
    model = spec.default_model or "local-embedding-model"
    texts = [f"Hello {result.provider}", "embeddings demo"]
    response = await provider.embed(EmbeddingRequest(inputs=texts, model=model))
    if not response.success:
        result.embeddings, result.error = "fail", f"embeddings: {response.error_kind}: {response.error}"
    elif response.vectors != [vector_for(t) for t in texts]:
        result.embeddings, result.error = "fail", "embeddings: the vectors are not the server's"
    else:
        result.embeddings = "ok"
        if provider.spec.request is None:
            result.text = f"{len(response.vectors)} vectors × {response.dimensions}"
            result.input_tokens, result.cost_usd = response.input_tokens, response.cost_usd
            result.latency_ms = response.latency_ms
