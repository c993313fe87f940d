"""The gateway's ASGI application: authentication, limits, the engine call, the reply in the client API's shape.

Endpoints (`Gateway.endpoints`): ``POST /v1/chat/completions`` (OpenAI), ``POST /v1/messages`` (Anthropic),
``POST /v1/embeddings`` (OpenAI), ``GET /v1/models`` (either shape: Anthropic's when the request has an
``anthropic-version`` header), ``GET /health`` (the process is up), ``GET /ready`` (started, state reachable:
route a load balancer by it), ``GET /metrics`` (Prometheus). Adding an endpoint is a parse/reply pair in an API
module and a line in `Gateway.endpoints`.

One request, in order: the key (a bearer token or ``x-api-key``) -> the body -> may this key call this model ->
admission (budget, rpm, tpm) -> the engine call or route -> the ledger entry is committed -> the reply is sent ->
metrics and the access log. A streamed call is answered with an HTTP error while nothing of it has been sent (so
an SDK raises its usual error class, and a route can still fall back); after that a failure is an error event in
the stream. A client that disconnects cancels the upstream call (its ledger entry has status 499).

A client never chooses a base URL or a provider key: the engine's per-call options are set only from the
configuration, and request fields that could carry them are refused (`engine.gateway.calls.RESERVED`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, ErrorKind, InvalidRequestError
from ..router import failed_before_output
from ..types import CompletionResponse, EmbeddingResponse
from . import anthropic_api, openai_api
from .calls import ChatCall, EmbeddingCall, read_json
from .ledger import Entry
from .limits import estimate
from .problems import PERMISSION, Problem, failed_call

if TYPE_CHECKING:
    from ..client import Engine
    from .config import GatewayConfig
    from .keys import GatewayKey, Keyring
    from .ledger import Ledger
    from .limits import Admission, Limits
    from .logs import AccessLog
    from .metrics import Metrics

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = (b"content-type", b"application/json")
T = TypeVar("T")
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


@dataclass(frozen=True)
class Api:
    """One client API: how its requests read and its replies and errors are written."""

    name: str
    parse: Callable[[dict[str, Any]], ChatCall]
    reply: Callable[[CompletionResponse, ChatCall, str, int], bytes]
    error: Callable[[Problem, str | None], bytes]
    events: Callable[[ChatCall, str, int], Any]


OPENAI = Api("openai", openai_api.parse, openai_api.reply, lambda problem, rid: openai_api.error_body(problem),
             openai_api.Chunks)
ANTHROPIC = Api("anthropic", anthropic_api.parse, lambda r, call, rid, created: anthropic_api.reply(r, call, rid),
                anthropic_api.error_body, lambda call, rid, created: anthropic_api.Events(call, rid))


def usd(cost: float) -> bytes:
    """A cost as a plain decimal (no exponent)."""
    return (f"{cost:.12f}".rstrip("0").rstrip(".") or "0").encode()


class Watch:
    """Cancels the request's task when its client disconnects (uvicorn reports it through ``receive``)."""

    def __init__(self, receive: Receive) -> None:
        self.left = False
        self.done = False
        self.task = asyncio.current_task()
        self.watcher = asyncio.get_running_loop().create_task(self._run(receive))

    async def _run(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.done and self.task is not None:
                    self.left = True
                    self.task.cancel()
                return

    def stop(self) -> None:
        self.done = True
        self.watcher.cancel()

    def absorb(self) -> None:
        """After catching the cancellation this watch caused: let the task run on (to record the request)."""
        if self.task is not None:
            self.task.uncancel()


@dataclass
class Outcome:
    """What one request came to, for the ledger, the metrics and the access log."""

    api: str
    stream: bool = False
    status: int = 200
    key: GatewayKey | None = None
    call: ChatCall | EmbeddingCall | None = None
    response: CompletionResponse | None = None  # an embeddings call's as a summary (`bookkeeping`)
    problem: Problem | None = None
    admission: Admission | None = None
    first_byte: float | None = None


class Gateway:
    """The ASGI app. Heavy parts (the engine, state, metrics) are built at startup, in each worker."""

    def __init__(self, config: GatewayConfig, *, access_log: bool = True) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.config = config
        self.access_log_enabled = access_log
        self.started = time.time()
        self.ready = False
        self.endpoints: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/v1/chat/completions"): self.openai_chat,
            ("POST", "/chat/completions"): self.openai_chat,
            ("POST", "/v1/messages"): self.anthropic_messages,
            ("POST", "/v1/embeddings"): self.openai_embeddings,
            ("POST", "/embeddings"): self.openai_embeddings,
            ("GET", "/v1/models"): self.models,
            ("GET", "/models"): self.models,
            ("GET", "/health"): self.health,
            ("GET", "/ready"): self.readiness,
            ("GET", "/metrics"): self.metrics_endpoint,
        }
        paths: dict[str, list[str]] = {}
        for method, path in self.endpoints:
            paths.setdefault(path, []).append(method)
        routes = [Route(path, _Endpoint(self, path), methods=methods) for path, methods in paths.items()]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)
        self.app.add_exception_handler(404, self._not_found)  # type: ignore[arg-type]
        self.app.add_exception_handler(405, self._not_allowed)  # type: ignore[arg-type]
        self.engine: Engine
        self.keyring: Keyring
        self.limits: Limits
        self.ledger: Ledger
        self.metrics: Metrics
        self.access: AccessLog
        self.model_ids: list[str] = []
        self.providers: frozenset[str] = frozenset()
        self._prices: dict[str, tuple[float | None, float | None]] = {}
        self._known_price: dict[str, bool] = {}
        self._listed: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)  # type: ignore[arg-type]

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        from .logs import AccessLog
        from .metrics import Metrics
        from .state import exposed_providers, open_state

        self.engine, self.keyring, self.ledger, self.limits = await open_state(self.config)
        self.providers = frozenset(exposed_providers(self.engine, self.config))
        self.model_ids = exposed_models(self.engine, self.providers)
        self.metrics = Metrics()
        self.access = AccessLog(self.access_log_enabled)
        self.ready = True

    async def shutdown(self) -> None:
        self.ready = False
        await self.engine.aclose()
        await self.limits.close()
        self.ledger.close()

    # -- small endpoints ---------------------------------------------------------------------------------------

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, b'{"status":"ok"}')

    async def readiness(self, scope: Scope, receive: Receive, send: Send) -> None:
        ok = self.ready
        if ok and hasattr(self.limits, "ping"):
            try:
                await asyncio.wait_for(self.limits.ping(), 2.0)
            except Exception:
                ok = False
        await _send_json(send, 200 if ok else 503, b'{"status":"ready"}' if ok else b'{"status":"not ready"}')

    async def metrics_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, content_type = self.metrics.render()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        api = ANTHROPIC if b"anthropic-version" in headers else OPENAI
        try:
            key = self._authenticate(headers)
        except Problem as problem:
            await self._send_problem(send, api, problem, None)
            return
        cache = f"{api.name}:{key.name}"
        body = self._listed.get(cache)
        if body is None:
            ids = [name for name in self.model_ids if key.allows(name)]
            body = anthropic_api.models(ids) if api is ANTHROPIC else openai_api.models(ids, int(self.started))
            self._listed[cache] = body
        await _send_json(send, 200, body)

    async def _not_found(self, request: Any, exc: Exception) -> Any:
        return _json_response(404, openai_api.error_body(Problem(str(ErrorKind.NOT_FOUND), "no such endpoint",
                                                                 code="unknown_url")))

    async def _not_allowed(self, request: Any, exc: Exception) -> Any:
        return _json_response(405, openai_api.error_body(Problem(str(ErrorKind.INVALID_REQUEST),
                                                                 "method not allowed", status=405)))

    # -- chat ------------------------------------------------------------------------------------------------

    async def openai_chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        gauge = self.metrics.in_flight_of("openai")
        gauge.inc()
        try:
            await self._chat(OPENAI, scope, receive, send)
        finally:
            gauge.dec()

    async def anthropic_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        gauge = self.metrics.in_flight_of("anthropic")
        gauge.inc()
        try:
            await self._chat(ANTHROPIC, scope, receive, send)
        finally:
            gauge.dec()

    async def openai_embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        gauge = self.metrics.in_flight_of("openai")
        gauge.inc()
        try:
            await self._chat(OPENAI, scope, receive, send, embeddings=True)
        finally:
            gauge.dec()

    def _authenticate(self, headers: dict[bytes, bytes]) -> GatewayKey:
        presented = headers.get(b"authorization", b"").decode("latin-1")
        if presented[:7].lower() == "bearer ":
            presented = presented[7:].strip()
        else:
            presented = headers.get(b"x-api-key", b"").decode("latin-1").strip()
        key = self.keyring.find(presented)
        if key is None:
            raise Problem(str(ErrorKind.AUTH), "missing or unknown gateway key (send it as a bearer token or "
                                               "x-api-key)" if presented else "missing gateway key",
                          code="invalid_api_key")
        return key

    def _check_model(self, key: GatewayKey, model: str) -> None:
        if not key.allows(model):
            raise Problem(PERMISSION, f"key {key.name!r} may not call {model!r}")
        router = self.engine.router
        if router is not None and model in router:
            return
        provider = model.partition("/")[0]
        if provider not in self.providers:
            raise Problem(str(ErrorKind.NOT_FOUND), f"model {model!r} is not served here: use a route name or "
                                                    "'provider/model' of a configured provider (GET /v1/models)",
                          code="model_not_found")

    def _check_priced(self, key: GatewayKey, model: str) -> None:
        """A key with a budget calls only models whose cost is known (every deployment of a route)."""
        router = self.engine.router
        models = [d.model for d in router.routes[model].deployments] if router is not None and model in router \
            else [model]
        for name in models:
            known = self._known_price.get(name)
            if known is None:
                quote = self.engine.quote(name)
                known = self._known_price[name] = quote.price is not None or quote.local
            if not known:
                raise Problem(PERMISSION, f"key {key.name!r} has a budget, and {name!r} has no known price, so its "
                                          "cost cannot be counted: price it in your pricing file "
                                          "(GENAI_PRICING_FILE) or set the key's budget.unpriced to allow",
                              code="model_not_priced")

    def _hold(self, call: ChatCall | EmbeddingCall) -> int:
        """The estimated cost of a call, held against a budget while it runs."""
        model = call.model
        router = self.engine.router
        if router is not None and model in router:
            model = router.routes[model].deployments[0].model
        prices = self._prices.get(model)
        if prices is None:
            try:
                price = self.engine.quote(model).price
                prices = (None, None) if price is None else (
                    float(price.input) if price.input is not None else None,
                    float(price.output) if price.output is not None else None)
            except Exception:
                prices = (None, None)
            self._prices[model] = prices
        return estimate(prices[0], prices[1], call.size(), call.max_tokens)

    async def _read_body(self, receive: Receive) -> bytes:
        limit = self.config.server.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise asyncio.CancelledError
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Problem(str(ErrorKind.INVALID_REQUEST), f"the request body is larger than {limit} bytes",
                              status=413)
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _chat(self, api: Api, scope: Scope, receive: Receive, send: Send, embeddings: bool = False) -> None:
        started, ts = time.perf_counter(), time.time()
        rid = os.urandom(12).hex()
        outcome = Outcome(api.name)
        try:
            headers = _headers(scope)
            outcome.key = key = self._authenticate(headers)
            body = await self._read_body(receive)
            call: ChatCall | EmbeddingCall
            outcome.call = call = openai_api.parse_embeddings(read_json(body)) if embeddings else \
                api.parse(read_json(body))
            outcome.stream = call.stream
            self._check_model(key, call.model)
            if key.budget is not None and key.budget.unpriced == "refuse":
                self._check_priced(key, call.model)
            if key.limited:
                outcome.admission = await self.limits.admit(key, rid, self._hold(call) if key.budget else 0)
            if isinstance(call, EmbeddingCall):
                await self._embed(call, outcome, rid, ts, started, receive, send)
            elif call.stream:
                await self._stream(api, call, outcome, rid, ts, started, receive, send)
            else:
                await self._complete(api, call, outcome, rid, ts, started, receive, send)
        except Problem as problem:
            outcome.problem, outcome.status = problem, problem.status
            if outcome.key is not None:
                await self._record(outcome, rid, ts, started)
            await self._send_problem(send, api, problem, rid, outcome.admission)
        except asyncio.CancelledError:
            if outcome.call is None:
                return  # the client left while the body was read: nothing was called
            raise
        except Exception as exc:  # a bug of the gateway's: answered (if it still can be) and recorded, then logged
            bug = Problem(str(ErrorKind.SERVER), f"internal gateway error ({type(exc).__name__})", status=500)
            outcome.problem, outcome.status = bug, 500
            if outcome.key is not None:
                with contextlib.suppress(Exception):
                    await self._record(outcome, rid, ts, started)
            if outcome.first_byte is None:
                await self._send_problem(send, api, bug, rid, outcome.admission)
            self.access.error(rid, exc)
        self._observe(outcome, rid, started, scope)

    async def _call(self, call: ChatCall, stream: bool) -> Any:
        """The engine call (or stream); a request the engine refuses before sending is a `Problem` (400)."""
        try:
            if stream:
                return self.engine.astream(call.model, call.messages, **call.options)
            return await self.engine.acomplete(call.model, call.messages, **call.options)
        except (InvalidRequestError, ValueError) as exc:
            raise Problem(str(ErrorKind.INVALID_REQUEST), " ".join(str(exc).split())) from None
        except ConfigError as exc:
            raise Problem(str(ErrorKind.SERVER), f"the gateway cannot call {call.model!r}: {exc}") from None

    async def _complete(self, api: Api, call: ChatCall, outcome: Outcome, rid: str, ts: float, started: float,
                        receive: Receive, send: Send) -> None:
        response = await self._watched(self._call(call, stream=False), outcome, rid, ts, started, receive)
        if response is None:
            return
        outcome.response = response
        if not response.success:
            raise failed_call(response)
        await self._reply(send, api.reply(response, call, rid, int(ts)), response.cost_usd, outcome, rid, ts, started)

    async def _embed(self, call: EmbeddingCall, outcome: Outcome, rid: str, ts: float, started: float,
                     receive: Receive, send: Send) -> None:
        result = await self._watched(self._call_embeddings(call), outcome, rid, ts, started, receive)
        if result is None:
            return
        outcome.response = summary = bookkeeping(result)
        if not result.success:
            raise failed_call(summary)
        await self._reply(send, openai_api.embeddings_reply(result, call), result.cost_usd, outcome, rid, ts, started)

    async def _call_embeddings(self, call: EmbeddingCall) -> EmbeddingResponse:
        try:
            return await self.engine.aembed(call.model, call.inputs, **call.options)
        except (InvalidRequestError, ValueError) as exc:
            raise Problem(str(ErrorKind.INVALID_REQUEST), " ".join(str(exc).split())) from None
        except ConfigError as exc:
            raise Problem(str(ErrorKind.SERVER), f"the gateway cannot call {call.model!r}: {exc}") from None

    async def _watched(self, work: Awaitable[T], outcome: Outcome, rid: str, ts: float, started: float,
                       receive: Receive) -> T | None:
        """``work``'s result; ``None`` when the client disconnected first (the call is cancelled and recorded)."""
        watch = Watch(receive)
        try:
            return await work
        except asyncio.CancelledError:
            if not watch.left:
                raise
            watch.absorb()
            outcome.response = CompletionResponse(success=False, error="the client disconnected; the call was "
                                                  "cancelled", error_kind=ErrorKind.CONNECTION)
            outcome.status = 499
            await self._record(outcome, rid, ts, started)
            return None
        finally:
            watch.stop()

    async def _reply(self, send: Send, body: bytes, cost: float | None, outcome: Outcome, rid: str, ts: float,
                     started: float) -> None:
        """A successful non-streamed reply, on record before it is sent."""
        await self._record(outcome, rid, ts, started)
        headers = [JSON, (b"content-length", b"%d" % len(body)), (b"x-request-id", rid.encode())]
        if cost is not None:
            headers.append((b"x-genai-cost-usd", usd(cost)))
        if outcome.admission is not None:
            headers += outcome.admission.headers
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, api: Api, call: ChatCall, outcome: Outcome, rid: str, ts: float, started: float,
                      receive: Receive, send: Send) -> None:
        stream = await self._call(call, stream=True)
        watch = Watch(receive)
        try:
            batches = stream.batches()
            first: list[Any] = await anext(batches, [])
            failed = failed_before_output(first)  # nothing sent yet: an HTTP error can be
            if failed is not None:
                outcome.response = failed
                raise failed_call(failed)
            events = api.events(call, rid, int(ts))
            headers = [*SSE_HEADERS, (b"x-request-id", rid.encode())]
            if outcome.admission is not None:
                headers += outcome.admission.headers
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            outcome.first_byte = time.perf_counter()
            await send({"type": "http.response.body", "body": events.start() + events.encode(first),
                        "more_body": True})
            async for batch in batches:
                data = events.encode(batch)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            response = outcome.response = stream.response
            assert response is not None
            if response.success:
                tail = events.finish(response)
            else:
                outcome.problem = failed_call(response)
                tail = events.error(outcome.problem)
            await self._record(outcome, rid, ts, started)  # on record before the client sees the end
            watch.done = True
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        except asyncio.CancelledError:
            if not watch.left:
                raise
            watch.absorb()
            await stream.aclose()  # the upstream call ends here
            outcome.response = stream.response or CompletionResponse(
                success=False, error="the client disconnected", error_kind=ErrorKind.CONNECTION)
            outcome.status = 499
            await self._record(outcome, rid, ts, started)
        finally:
            watch.stop()
            await stream.aclose()

    # -- bookkeeping -------------------------------------------------------------------------------------------

    async def _record(self, outcome: Outcome, rid: str, ts: float, started: float) -> None:
        """The ledger entry (and the charge against the key's limits) of one request."""
        response, call, key = outcome.response, outcome.call, outcome.key
        assert key is not None
        problem = outcome.problem
        model = call.model if call is not None else "-"
        router = self.engine.router
        entry = Entry(id=rid, ts=ts, key=key.name, api=outcome.api, model=model, stream=outcome.stream,
                      status=outcome.status, route=model if router is not None and model in router else None,
                      error_kind=problem.kind if problem is not None else None,
                      latency_ms=round((time.perf_counter() - started) * 1000, 3))
        if response is not None:
            entry.provider, entry.served_model = response.provider, response.model
            entry.input_tokens, entry.output_tokens = response.input_tokens, response.output_tokens
            entry.cached_input_tokens, entry.reasoning_tokens = response.cached_input_tokens, response.reasoning_tokens
            entry.cost_usd = response.cost_usd
            if entry.error_kind is None and not response.success:
                entry.error_kind = str(response.error_kind or ErrorKind.SERVER)
            if self.config.state.log_messages:
                entry.reply = response.content
        if self.config.state.log_messages and call is not None:
            logged = call.inputs if isinstance(call, EmbeddingCall) else call.messages
            entry.messages = json.dumps(logged, ensure_ascii=False)
        await self.limits.finish(entry, key, outcome.admission)
        outcome.status = entry.status

    async def _send_problem(self, send: Send, api: Api, problem: Problem, rid: str | None,
                            admission: Admission | None = None) -> None:
        body = api.error(problem, rid)
        headers = [JSON, (b"content-length", b"%d" % len(body)), (b"x-genai-error-kind", problem.kind.encode())]
        if rid is not None:
            headers.append((b"x-request-id", rid.encode()))
        if problem.retry_after is not None:
            headers.append((b"retry-after", b"%d" % max(1, int(problem.retry_after + 0.999))))
            headers.append((b"retry-after-ms", b"%d" % int(problem.retry_after * 1000)))
        if problem.retry is not None:
            headers.append((b"x-should-retry", b"true" if problem.retry else b"false"))
        if admission is not None:
            headers += admission.headers
        await send({"type": "http.response.start", "status": problem.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _observe(self, outcome: Outcome, rid: str, started: float, scope: Scope) -> None:
        """Metrics and the access log, once the reply is out."""
        elapsed = time.perf_counter() - started
        self.metrics.observe(outcome, elapsed, started)
        self.access.write(outcome, rid, started, elapsed, scope)


def bookkeeping(result: EmbeddingResponse) -> CompletionResponse:
    """An embeddings call as the ledger, metrics and access log count it: input tokens and cost, no output."""
    return CompletionResponse(
        success=result.success, model=result.model, provider=result.provider, input_tokens=result.input_tokens,
        output_tokens=0 if result.success else None, cost_usd=result.cost_usd, latency_ms=result.latency_ms,
        error=result.error, error_kind=result.error_kind, status_code=result.status_code,
        error_message=result.error_message, error_code=result.error_code, request_id=result.request_id)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [JSON, (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def _json_response(status: int, body: bytes) -> Any:
    from starlette.responses import Response

    return Response(body, status_code=status, media_type="application/json")


class _Endpoint:
    """A path's ASGI app: dispatches by method to the gateway's handler (Starlette checked the method)."""

    def __init__(self, gateway: Gateway, path: str) -> None:
        self.gateway, self.path = gateway, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gateway.endpoints[scope["method"], self.path](scope, receive, send)


def exposed_models(engine: Engine, providers: frozenset[str]) -> list[str]:
    """Route names, then every model of every exposed provider as ``provider/model`` (what ``/v1/models`` lists)."""
    names = list(engine.router.routes) if engine.router is not None else []
    for provider in sorted(providers):
        spec = engine.registry.spec(provider)
        names += [f"{provider}/{model.id}" for model in spec.models]
    return names


def create_app(config: GatewayConfig, *, access_log: bool = True) -> Gateway:
    """The gateway as an ASGI app (for uvicorn, or any ASGI server). Needs the ``server`` extra."""
    try:
        import starlette  # noqa: F401
    except ImportError:
        raise ConfigError("the gateway needs the server extra: pip install 'genai-engine[server]'") from None
    return Gateway(config, access_log=access_log)


def from_env() -> Gateway:
    """The app for a worker process: the config file named by ``GENAI_GATEWAY_CONFIG`` (set by ``genai serve``)."""
    from .config import load_config

    path = os.environ.get("GENAI_GATEWAY_CONFIG")
    if not path:
        raise ConfigError("GENAI_GATEWAY_CONFIG is not set: start the gateway with genai serve --config FILE")
    return create_app(load_config(path), access_log=os.environ.get("GENAI_GATEWAY_ACCESS_LOG", "1") != "0")
