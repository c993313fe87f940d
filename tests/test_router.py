"""Routes through `Engine(routes=...)` over real sockets: fallbacks by error kind, cooldowns, weighted and least-busy
balancing (counted under concurrency and cancellation), streams that fall back only before any output, and
deployments with their own keys and base URLs (regions)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from engine import Engine, ErrorKind
from engine.errors import ConfigError
from engine.router import Cooldown, Deployment, MemoryCooldowns, Route, Router
from engine.testing import FakeServer, Fault

from .conftest import server_settings

ASK = [{"role": "user", "content": "Which moon is largest?"}]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(chunk_size=None, max_seconds=120) as server:
        yield server


def engine_for(server: FakeServer, routes: dict[str, Any] | Router, **settings: Any) -> Engine:
    return Engine(server_settings(server, **{"max_retries": 0, "timeout": 2.0, **settings}), routes=routes)


SMART = {"smart": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]}


@pytest.mark.parametrize(("fault", "kind"), [
    (Fault("status", status=429), ErrorKind.RATE_LIMIT),
    (Fault("status", status=503), ErrorKind.SERVER),
    (Fault("timeout", seconds=3), ErrorKind.TIMEOUT),
    (Fault("reset"), ErrorKind.CONNECTION),
])
def test_a_failure_of_a_fallback_kind_tries_the_next_deployment(server: FakeServer, fault: Fault,
                                                                  kind: ErrorKind) -> None:
    server.inject(fault)
    with engine_for(server, SMART, timeout=0.5) as engine:
        reply = engine.complete("smart", ASK)
    assert reply.success, reply.error
    assert reply.provider == "anthropic"
    assert reply.content == server.reply_for({"messages": ASK})
    assert reply.warnings[0] == f"route 'smart': openai/gpt-4o-mini failed ({kind}), tried the next"
    assert [r.path.rsplit("/", 1)[-1] for r in server.requests] == ["completions", "messages"]


def test_other_failures_are_returned_as_they_are(server: FakeServer) -> None:
    server.inject(Fault("status", status=400, message="bad field"))
    with engine_for(server, SMART) as engine:
        reply = engine.complete("smart", ASK)
    assert not reply.success and reply.error_kind is ErrorKind.INVALID_REQUEST and "bad field" in (reply.error or "")
    assert len(server.requests) == 1


def test_when_every_deployment_fails_the_last_failure_is_returned(server: FakeServer) -> None:
    server.inject(Fault("status", status=500), Fault("status", status=529, message="overloaded"))
    with engine_for(server, SMART) as engine:
        reply = engine.complete("smart", ASK)
    assert not reply.success and reply.provider == "anthropic" and reply.status_code == 529
    assert len(reply.warnings) == 1


def test_a_rate_limited_deployment_cools_down_and_comes_back(server: FakeServer) -> None:
    routes = {"smart": {"deployments": SMART["smart"], "cooldown": {"seconds": 0.3}}}
    server.inject(Fault("status", status=429))

    async def go() -> list[str | None]:
        async with engine_for(server, routes) as engine:
            providers = [(await engine.acomplete("smart", ASK)).provider for _ in range(3)]
            await asyncio.sleep(0.35)
            providers.append((await engine.acomplete("smart", ASK)).provider)
            return providers

    assert asyncio.run(go()) == ["anthropic", "anthropic", "anthropic", "openai"]
    # the cooling deployment was not called at all while it cooled down
    assert [r.path.rsplit("/", 1)[-1] for r in server.requests] == ["completions", "messages", "messages",
                                                                    "messages", "completions"]


def test_failures_below_the_threshold_do_not_cool_down() -> None:
    clock = [100.0]
    cooldowns = MemoryCooldowns(clock=lambda: clock[0])
    policy = Cooldown(fails=3, window=10, seconds=30)

    async def go() -> list[Any]:
        seen = [await cooldowns.failed("d", ErrorKind.SERVER, policy), await cooldowns.cooling(["d"])]
        clock[0] += 11  # the first failure leaves the window
        seen += [await cooldowns.failed("d", ErrorKind.SERVER, policy), await cooldowns.failed("d", ErrorKind.TIMEOUT,
                                                                                                 policy)]
        seen.append(await cooldowns.cooling(["d"]))
        seen.append(await cooldowns.failed("d", ErrorKind.SERVER, policy))
        seen.append(await cooldowns.cooling(["d", "other"]))
        clock[0] += 30
        seen.append(await cooldowns.cooling(["d"]))
        return seen

    assert asyncio.run(go()) == [0.0, {}, 0.0, 0.0, {}, 30, {"d": 30.0}, {}]


def test_when_every_deployment_cools_down_the_route_answers_rate_limit_with_the_wait(server: FakeServer) -> None:
    routes = {"solo": {"deployments": ["openai/gpt-4o-mini"], "cooldown": {"seconds": 5}}}
    server.inject(Fault("status", status=429))
    with engine_for(server, routes) as engine:
        first, second = engine.complete("solo", ASK), engine.complete("solo", ASK)
    assert first.error_kind is ErrorKind.RATE_LIMIT and first.status_code == 429
    assert second.error_kind is ErrorKind.RATE_LIMIT and second.error_code == "cooling_down"
    assert 4 < second.raw_response["retry_after"] <= 5
    assert len(server.requests) == 1


def test_weighted_balancing_follows_the_weights(server: FakeServer) -> None:
    routes = {"mix": {"strategy": "weighted", "deployments": [{"model": "openai/gpt-4o-mini", "weight": 3},
                                                              {"model": "openai/gpt-4o", "weight": 1}]}}
    router = Router(routes, rng=random.Random(7))

    async def go() -> Counter[str | None]:
        async with engine_for(server, router) as engine:
            replies = [await engine.acomplete("mix", ASK) for _ in range(400)]
        return Counter(r.model for r in replies)

    models = asyncio.run(go())
    assert sum(models.values()) == 400
    assert 0.68 <= models["gpt-4o-mini"] / 400 <= 0.82, models


def test_least_busy_spreads_concurrent_calls_and_counts_them_back_to_zero(server: FakeServer) -> None:
    routes = {"busy": {"strategy": "least-busy", "deployments": ["openai/gpt-4o-mini", "openai/gpt-4o"]}}
    router = Router(routes)
    server.inject(*[Fault("slow", seconds=0.4) for _ in range(10)])
    peak: dict[str, int] = {}

    async def watch() -> None:
        for _ in range(30):
            for id_, n in router.in_flight.items():
                peak[id_] = max(peak.get(id_, 0), n)
            await asyncio.sleep(0.01)

    async def go() -> Counter[str | None]:
        async with engine_for(server, router) as engine:
            replies, _ = await asyncio.gather(asyncio.gather(*(engine.acomplete("busy", ASK) for _ in range(10))),
                                              watch())
        return Counter(r.model for r in replies)

    assert asyncio.run(go()) == {"gpt-4o-mini": 5, "gpt-4o": 5}
    assert peak == {"openai/gpt-4o-mini": 5, "openai/gpt-4o": 5}
    assert dict(router.in_flight) == {"openai/gpt-4o-mini": 0, "openai/gpt-4o": 0}


def test_cancelled_calls_and_streams_leave_the_in_flight_counts(server: FakeServer) -> None:
    router = Router({"busy": {"strategy": "least-busy", "deployments": ["openai/gpt-4o-mini", "openai/gpt-4o"]}})
    server.inject(*[Fault("slow", seconds=2) for _ in range(6)])

    async def go() -> dict[str, int]:
        async with engine_for(server, router, timeout=5.0) as engine:
            calls = [asyncio.ensure_future(engine.acomplete("busy", ASK)) for _ in range(4)]
            streams = [engine.astream("busy", ASK) for _ in range(2)]
            readers = [asyncio.ensure_future(anext(aiter(s), None)) for s in streams]
            await asyncio.sleep(0.3)
            during = sum(router.in_flight.values())
            for task in [*calls, *readers]:
                task.cancel()
            await asyncio.gather(*calls, *readers, return_exceptions=True)
            for stream in streams:
                await stream.aclose()
            return {"during": during, "after": sum(router.in_flight.values())}

    assert asyncio.run(go()) == {"during": 6, "after": 0}


def test_a_stream_falls_back_before_any_output(server: FakeServer) -> None:
    server.inject(Fault("status", status=429))

    async def go() -> tuple[list[Any], Any]:
        async with engine_for(server, SMART) as engine:
            stream = engine.astream("smart", ASK)
            events = [event async for event in stream.events()]
            return events, stream.response

    events, response = asyncio.run(go())
    assert response.success and response.provider == "anthropic"
    assert "".join(e.text for e in events if e.type == "text") == response.content == server.reply_for(
        {"messages": ASK})
    assert events[-1].type == "end" and events[-1].response is response
    assert "tried the next" in response.warnings[0]


def test_a_stream_that_fails_after_output_does_not_fall_back(server: FakeServer) -> None:
    server.inject(Fault("cut", after_events=3))
    with engine_for(server, SMART) as engine:
        stream = engine.stream("smart", ASK)
        text = "".join(stream)
        response = stream.final()
    assert not response.success and response.error_kind is ErrorKind.CONNECTION
    assert text and response.content == text and response.provider == "openai"
    assert len(server.requests) == 1


def test_sync_calls_and_streams_on_a_route(server: FakeServer) -> None:
    with engine_for(server, SMART) as engine:
        reply = engine.complete("smart", ASK, max_tokens=20)
        stream = engine.stream("smart", ASK)
        text = "".join(stream)
    assert reply.success and reply.provider == "openai"
    assert text == stream.response.content == reply.content  # type: ignore[union-attr]


def test_regions_and_keys_of_one_provider_as_deployments(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EU_KEY", "key-for-eu")
    with FakeServer(api_key="key-for-us", max_seconds=60) as us, FakeServer(api_key="key-for-eu",
                                                                              max_seconds=60) as eu:
        routes = {"gpt": {"strategy": "weighted", "deployments": [
            {"model": "openai/gpt-4o-mini", "base_url": us.base_url, "api_key": "key-for-us"},
            {"model": "openai/gpt-4o-mini", "base_url": eu.base_url, "api_key_env": "EU_KEY"}]}}
        with Engine(server_settings(us, max_retries=0), routes=routes) as engine:
            replies = [engine.complete("gpt", ASK) for _ in range(40)]
        assert all(r.success for r in replies), [r.error for r in replies if not r.success]
        assert len(us.requests) + len(eu.requests) == 40 and us.requests and eu.requests


def test_deployment_ids_name_where_a_call_goes_never_its_key() -> None:
    plain = Deployment(model="openai/gpt-4o")
    keyed = Deployment(model="openai/gpt-4o", api_key="sk-secret-value")
    regional = Deployment(model="openai/gpt-4o", base_url="https://eu.example/v1")
    assert plain.id == "openai/gpt-4o"
    assert len({plain.id, keyed.id, regional.id}) == 3
    assert "secret" not in keyed.id and keyed.id.startswith("openai/gpt-4o#")
    assert Deployment(model="openai/gpt-4o", api_key="sk-secret-value").id == keyed.id  # stable across processes


def test_route_configuration_mistakes_raise_early() -> None:
    with pytest.raises(ConfigError, match="a route cannot name another route"):
        Engine(routes={"a": ["openai/gpt-4o"], "b": ["a"]})
    with pytest.raises(ConfigError, match="known provider"):
        Engine(routes={"a": ["nosuchprovider/model"]})
    with pytest.raises(ConfigError, match="no '/'"):
        Engine(routes={"a/b": ["openai/gpt-4o"]})
    with pytest.raises(ValueError, match="deployments"):
        Route.model_validate({"deployments": []})
    with pytest.raises(ValueError, match="weight"):
        Route.model_validate({"deployments": [{"model": "openai/gpt-4o", "weight": 0}]})
    route = Route.model_validate(["openai/gpt-4o", {"model": "anthropic/claude-haiku-4-5", "timeout": 5}])
    assert route.strategy == "fallback" and [d.model for d in route.deployments] == ["openai/gpt-4o",
                                                                                     "anthropic/claude-haiku-4-5"]


def test_a_deployment_whose_key_variable_is_missing_names_it(server: FakeServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    routes = {"r": [{"model": "openai/gpt-4o", "api_key_env": "NOT_SET_ANYWHERE"}]}
    with engine_for(server, routes) as engine, pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        engine.complete("r", ASK)


def test_options_are_checked_before_any_deployment_is_called(server: FakeServer) -> None:
    from engine.errors import UnknownOptionError

    with engine_for(server, SMART) as engine:
        with pytest.raises(UnknownOptionError, match="max_tokens"):
            engine.complete("smart", ASK, max_tokenz=5)
        with pytest.raises(UnknownOptionError):
            engine.astream("smart", ASK, max_tokenz=5)
    assert server.requests == []


def test_one_upstream_in_two_routes_keeps_each_routes_options(server: FakeServer) -> None:
    routes = {"patient": ["openai/gpt-4o-mini"], "quick": [{"model": "openai/gpt-4o-mini", "timeout": 0.3}]}
    with engine_for(server, routes, timeout=5.0) as engine:
        assert engine.complete("patient", ASK).success  # its options are read first
        server.inject(Fault("timeout", seconds=1.5))
        reply = engine.complete("quick", ASK)
    assert reply.error_kind is ErrorKind.TIMEOUT and (reply.latency_ms or 0) < 1000


def test_an_embeddings_route_falls_back_for_the_whole_input(server: FakeServer) -> None:
    from engine.testing.embeddings import vector_for
    from engine.types import EmbeddingResponse

    routes = {"vectors": {"deployments": ["openai/text-embedding-3-small", "mistral/mistral-embed"],
                          "cooldown": {"seconds": 30}}}
    texts = ["Io", "Europa", "Ganymede"]
    server.inject(Fault("status", status=429))
    with engine_for(server, routes) as engine:
        reply = engine.embed("vectors", texts)
        assert reply.success and reply.provider == "mistral" and reply.vectors == [vector_for(t) for t in texts]
        assert reply.warnings[0].startswith("route 'vectors': openai/text-embedding-3-small failed (rate_limit)")
        again = asyncio.run(engine.aembed("vectors", texts))  # openai cools down: straight to mistral
        assert again.provider == "mistral" and not again.warnings
    assert [r.path.rsplit("/", 1)[-1] for r in server.requests] == ["embeddings"] * 3
    server.inject(Fault("status", status=429), Fault("status", status=429))
    with engine_for(server, routes) as engine:
        engine.embed("vectors", texts)
        cooling = engine.embed("vectors", texts)
    assert isinstance(cooling, EmbeddingResponse) and not cooling.success
    assert cooling.error_kind is ErrorKind.RATE_LIMIT and cooling.error_code == "cooling_down"
    with engine_for(server, routes) as engine, pytest.raises(Exception, match="did you mean 'dimensions'"):
        engine.embed("vectors", texts, dimension=8)
