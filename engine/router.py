"""Routes: a named group of deployments behind one model name, with fallbacks, balancing and cooldowns.

A route's deployments are tried in an order its strategy sets: ``fallback`` keeps the written order, ``weighted``
draws by weight, ``least-busy`` starts with the deployment that has the fewest calls in flight. When one fails with
a kind in ``fallback_on`` (``rate_limit``, ``server``, ``timeout``, ``connection`` by default) the next is tried; a
stream falls back only while nothing of it has reached the caller. A deployment that keeps failing cools down: it
is skipped for ``cooldown.seconds`` (``rate_limit`` counts as enough failures at once, the provider said so).

    engine = Engine(routes={"smart": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]})
    engine.complete("smart", "Hello!")

The gateway uses the same `Router`, with cooldowns shared across replicas (`Cooldowns` is the seam).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import defaultdict, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .errors import ConfigError, ErrorKind
from .types import CompletionResponse, EmbeddingResponse, StreamEvent

if TYPE_CHECKING:
    from .provider import AsyncStream

FALLBACK_KINDS = (ErrorKind.RATE_LIMIT, ErrorKind.SERVER, ErrorKind.TIMEOUT, ErrorKind.CONNECTION)

Reply = TypeVar("Reply", CompletionResponse, EmbeddingResponse)
Call = Callable[..., Awaitable[Reply]]  # (model, messages or inputs, **options) -> response
Open = Callable[..., "AsyncStream"]  # (model, messages, **options) -> a stream


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Deployment(_Strict):
    """One place a route can send a call: a ``provider/model``, and optionally its own key, base URL and limits."""

    model: str = Field(description="`provider/model` to call.")
    api_key_env: str | None = Field(default=None, description="Env variable holding this deployment's API key.")
    api_key: SecretStr | None = Field(default=None, description="The API key itself (prefer `api_key_env`).")
    base_url: str | None = Field(default=None, description="This deployment's base URL (another region, a proxy).")
    weight: float = Field(default=1.0, gt=0, description="Share of calls under `weighted` (and among ties).")
    timeout: float | None = Field(default=None, gt=0, description="Seconds to wait for this deployment.")
    max_retries: int | None = Field(default=None, ge=0, description="Retries on this deployment before falling back.")

    @field_validator("model")
    @classmethod
    def _provider_model(cls, model: str) -> str:
        if not model or model.startswith("/") or model.endswith("/"):
            raise ValueError(f"a deployment's model is 'provider/model' or a provider name, got {model!r}")
        return model

    @property
    def id(self) -> str:
        """Stable across processes and replicas with the same configuration: the model, plus a digest of where its
        key comes from and its base URL (never the key itself), so two keys of one model cool down apart."""
        where = f"{self.api_key_env or ''}|{self._key_digest()}|{self.base_url or ''}"
        if where == "||":
            return self.model
        return f"{self.model}#{hashlib.sha256(where.encode()).hexdigest()[:10]}"

    def _key_digest(self) -> str:
        return hashlib.sha256(self.api_key.get_secret_value().encode()).hexdigest() if self.api_key else ""

    def options(self, env: Callable[[str], str | None]) -> dict[str, Any]:
        """The per-call engine options of this deployment; ``env`` reads an env variable."""
        options: dict[str, Any] = {}
        if self.api_key_env is not None:
            key = env(self.api_key_env)
            if not key:
                raise ConfigError(f"deployment {self.model!r}: env variable {self.api_key_env} is not set")
            options["api_key"] = key
        elif self.api_key is not None:
            options["api_key"] = self.api_key.get_secret_value()
        if self.base_url is not None:
            options["base_url"] = self.base_url
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.max_retries is not None:
            options["max_retries"] = self.max_retries
        return options


class Cooldown(_Strict):
    """When a failing deployment is skipped: ``fails`` failures within ``window`` seconds cool it down for
    ``seconds``; a ``rate_limit`` cools it down at once."""

    fails: int = Field(default=3, ge=1, description="Failures within `window` that cool a deployment down.")
    window: float = Field(default=60.0, gt=0, description="Seconds over which failures are counted.")
    seconds: float = Field(default=30.0, ge=0, description="How long a deployment stays cooled down (0: never).")


class Route(_Strict):
    """A named model group: its deployments, how they are ordered, and when the next one is tried."""

    name: str = Field(default="", description="The model name callers use; the key it is written under.")
    strategy: Literal["fallback", "weighted", "least-busy"] = Field(
        default="fallback", description="`fallback`: in the written order; `weighted`: drawn by weight; `least-busy`: "
                                        "the fewest calls in flight first. Failures fall back to the rest.")
    deployments: list[Deployment] = Field(min_length=1, description="Where calls go.")
    fallback_on: list[ErrorKind] = Field(default=list(FALLBACK_KINDS),
                                         description="Error kinds that try the next deployment.")
    cooldown: Cooldown = Field(default_factory=Cooldown, description="When a failing deployment is skipped.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # A bare list of models is an ordered fallback; a model string in the list is a deployment.
        if isinstance(data, list | tuple):
            data = {"deployments": list(data)}
        if isinstance(data, dict) and isinstance(data.get("deployments"), list | tuple):
            data = {**data, "deployments": [{"model": d} if isinstance(d, str) else d for d in data["deployments"]]}
        return data


def routes_of(routes: Mapping[str, Any]) -> dict[str, Route]:
    """Validated routes from ``{name: route}`` where a route is a `Route`, its dict, or a list of models."""
    out: dict[str, Route] = {}
    for name, value in routes.items():
        if not name or "/" in name:
            raise ConfigError(f"route name {name!r}: a route name is non-empty and has no '/' (that would read "
                              "as provider/model)")
        route = value if isinstance(value, Route) else Route.model_validate(value)
        out[name] = route.model_copy(update={"name": name})
    return out


class Cooldowns(Protocol):
    """Where cooldowns live: in memory (`MemoryCooldowns`), or shared by gateway replicas (SQLite, Redis)."""

    async def cooling(self, ids: Sequence[str]) -> dict[str, float]:
        """The deployments among ``ids`` that are cooling down, with the seconds left."""

    async def failed(self, id: str, kind: ErrorKind, policy: Cooldown) -> float:
        """Count a failure; returns the seconds of cooldown it started (0 when none)."""


class MemoryCooldowns:
    """Cooldowns of one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._until: dict[str, float] = {}

    async def cooling(self, ids: Sequence[str]) -> dict[str, float]:
        if not self._until:
            return {}
        now = self.clock()
        return {i: until - now for i in ids if (until := self._until.get(i, 0.0)) > now}

    async def failed(self, id: str, kind: ErrorKind, policy: Cooldown) -> float:
        now = self.clock()
        failures = self._failures[id]
        failures.append(now)
        while failures and failures[0] <= now - policy.window:
            failures.popleft()
        if policy.seconds > 0 and (kind is ErrorKind.RATE_LIMIT or len(failures) >= policy.fails):
            failures.clear()
            self._until[id] = now + policy.seconds
            return policy.seconds
        return 0.0


class Router:
    """Runs calls on routes: orders deployments, falls back, counts calls in flight, cools failing ones down.

    ``env`` reads the env variables deployments name (default: the process environment). The router makes no
    calls itself: `complete` and `stream` are given the engine's call function.
    """

    def __init__(self, routes: Mapping[str, Any], *, cooldowns: Cooldowns | None = None,
                 env: Callable[[str], str | None] | None = None, rng: random.Random | None = None) -> None:
        import os

        self.routes = routes_of(routes)
        self.cooldowns: Cooldowns = cooldowns if cooldowns is not None else MemoryCooldowns()
        self.env = env or os.environ.get
        self.rng = rng or random.Random()
        self.in_flight: dict[str, int] = defaultdict(int)
        self._options: dict[int, dict[str, Any]] = {}  # by id() of a deployment the router holds

    def __contains__(self, name: object) -> bool:
        return name in self.routes

    def __iter__(self) -> Iterator[str]:
        return iter(self.routes)

    def deployment_options(self, deployment: Deployment) -> dict[str, Any]:
        """A deployment's call options (its key read once). Two deployments may share an `id` (the same upstream
        in two routes) and differ in timeout or retries, so they are kept per deployment."""
        options = self._options.get(id(deployment))
        if options is None:
            options = self._options[id(deployment)] = deployment.options(self.env)
        return options

    async def order(self, route: Route) -> tuple[list[Deployment], float]:
        """The deployments to try, in order, cooling ones left out; and, when all are cooling, the seconds until
        the first is back."""
        deployments = route.deployments
        if route.strategy == "weighted" or (route.strategy == "least-busy" and len(deployments) > 1):
            # A weighted draw without replacement (Efraimidis-Spirakis); least-busy sorts by calls in flight first.
            keys = {id(d): self.rng.random() ** (1.0 / d.weight) for d in deployments}
            if route.strategy == "weighted":
                deployments = sorted(deployments, key=lambda d: -keys[id(d)])
            else:
                flight = self.in_flight
                deployments = sorted(deployments, key=lambda d: (flight[d.id], -keys[id(d)]))
        cooling = await self.cooldowns.cooling([d.id for d in deployments])
        if not cooling:
            return list(deployments), 0.0
        ready = [d for d in deployments if d.id not in cooling]
        return ready, (min(cooling.values()) if not ready else 0.0)

    def _all_cooling(self, route: Route, wait: float, started: float,
                     reply: type[Reply] = CompletionResponse) -> Reply:  # type: ignore[assignment]
        return reply(
            success=False, error_kind=ErrorKind.RATE_LIMIT, model=route.name,
            error=f"route {route.name!r}: every deployment is cooling down after failures; the first is back in "
                  f"{wait:.1f} s", error_code="cooling_down", latency_ms=(time.perf_counter() - started) * 1000,
            raw_response={"route": route.name, "retry_after": round(max(wait, 0.0), 3)})

    async def _failed(self, route: Route, deployment: Deployment,
                      response: CompletionResponse | EmbeddingResponse) -> bool:
        """Whether the failure falls back (and is counted against the deployment)."""
        kind = response.error_kind
        if kind is None or kind not in route.fallback_on:
            return False
        await self.cooldowns.failed(deployment.id, kind, route.cooldown)
        return True

    async def complete(self, name: str, messages: Any, call: Call[CompletionResponse],
                       **options: Any) -> CompletionResponse:
        """One call on route ``name``; ``call(model, messages, **options)`` is the engine's call function."""
        return await self._call(name, messages, call, CompletionResponse, options)

    async def embed(self, name: str, inputs: Any, call: Call[EmbeddingResponse], **options: Any) -> EmbeddingResponse:
        """An embeddings call on route ``name``, with the same fallbacks: a deployment that fails (any batch, with a
        kind that falls back) is replaced by the next for the whole input, since vectors of two models never mix."""
        return await self._call(name, inputs, call, EmbeddingResponse, options)

    async def _call(self, name: str, payload: Any, call: Call[Reply], reply: type[Reply],
                    options: dict[str, Any]) -> Reply:
        route = self.routes[name]
        started = time.perf_counter()
        deployments, wait = await self.order(route)
        if not deployments:
            return self._all_cooling(route, wait, started, reply)
        notes: list[str] = []
        response: Reply | None = None
        flight = self.in_flight
        last = len(deployments) - 1
        for position, deployment in enumerate(deployments):
            flight[deployment.id] += 1
            try:
                response = await call(deployment.model, payload, **options, **self.deployment_options(deployment))
            finally:
                flight[deployment.id] -= 1
            if response.success or not await self._failed(route, deployment, response) or position == last:
                break
            notes.append(f"route {name!r}: {deployment.model} failed ({response.error_kind}), tried the next")
        assert response is not None
        if notes:
            response.warnings[:0] = notes
        return response

    def stream(self, name: str, messages: Any, open: Open, **options: Any) -> AsyncStream:
        """A streamed call on route ``name``; ``open(model, messages, **options)`` starts the engine's stream. A
        deployment that fails before anything of its stream was passed on is replaced by the next."""
        from .provider import AsyncStream

        return AsyncStream(lambda result: self._stream(self.routes[name], messages, open, options, result))

    async def _stream(self, route: Route, messages: Any, open: Open, options: dict[str, Any],
                      result: AsyncStream) -> AsyncGenerator[Any, None]:
        started = time.perf_counter()
        deployments, wait = await self.order(route)
        if not deployments:
            result.response = self._all_cooling(route, wait, started)
            for item in result.emit([StreamEvent("end", response=result.response)]):
                yield item
            return
        notes: list[str] = []
        flight = self.in_flight
        for position, deployment in enumerate(deployments):
            inner = open(deployment.model, messages, **options, **self.deployment_options(deployment))
            flight[deployment.id] += 1
            try:
                batches = inner.batches()
                first: list[Any] = await anext(batches, [])
                failed = failed_before_output(first)
                if failed is not None and position < len(deployments) - 1 and await self._failed(
                        route, deployment, failed):
                    notes.append(f"route {route.name!r}: {deployment.model} failed ({failed.error_kind}), "
                                 "tried the next")
                    continue
                for item in result.emit(first):
                    yield item
                async for batch in batches:
                    for item in result.emit(batch):
                        yield item
                final = inner.response
                if final is not None and failed is None and not final.success:
                    await self._failed(route, deployment, final)  # failed mid-stream: counted, no fallback
                elif failed is not None and position == len(deployments) - 1:
                    await self._failed(route, deployment, failed)
                result.response = final
                if final is not None and notes:
                    final.warnings[:0] = notes
                return
            finally:
                await inner.aclose()
                flight[deployment.id] -= 1


def failed_before_output(batch: list[Any]) -> CompletionResponse | None:
    """The failed response when a stream's first batch (`AsyncStream.batches`) is only its end: nothing of the
    stream has reached the caller, so another deployment can be tried or an HTTP error sent."""
    if len(batch) == 1 and isinstance(batch[0], StreamEvent) and batch[0].type == "end":
        response = batch[0].response
        if response is not None and not response.success:
            return response
    return None
