"""The front door: ``"provider/model"`` strings routed to providers, sync and async.

    engine = Engine()
    reply = engine.complete("groq/llama-3.3-70b-versatile", "Hello!")
    for delta in (stream := engine.stream("openai/gpt-4o-mini", "Tell me a story")):
        print(delta, end="")
    print(stream.response.cost_usd)
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, UnknownOptionError, UnknownProviderError
from .registry import Registry, default_registry
from .types import CallOptions, CompletionRequest, CompletionResponse, EmbeddingRequest, EmbeddingResponse, StreamEvent

if TYPE_CHECKING:
    import httpx

    from ._sync import Portal
    from .pricing import Quote
    from .provider import AsyncStream, LLMProvider
    from .router import Route, Router
    from .settings import Settings

Messages = str | list[dict[str, Any]]

# The keyword arguments of complete/stream: request fields, the common sampling options (each provider
# file writes them under its API's names), and per-call engine options.
REQUEST_OPTIONS = ("temperature", "max_tokens", "output_schema", "extra", "tools", "tool_choice", "parallel_tool_calls")
CALL_OPTIONS = ("timeout", "max_retries", "headers", "api_key", "base_url")
SAMPLING = ("stop", "top_p", "seed", "presence_penalty", "frequency_penalty", "user")


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = [k for k in options if k not in REQUEST_OPTIONS and k not in CALL_OPTIONS and k not in SAMPLING]
    if unknown:
        raise UnknownOptionError(_unknown_keyword(unknown[0]))


EMBEDDING_OPTIONS = ("dimensions", "input_type", "user", "extra")


def _unknown_keyword(name: str, accepted: list[str] | None = None) -> str:
    import difflib

    accepted = accepted or [*REQUEST_OPTIONS, *SAMPLING, *CALL_OPTIONS]
    close = difflib.get_close_matches(name, accepted, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"unknown option {name!r}: {hint}accepted: {', '.join(accepted)}; provider-specific body fields go "
            f"in extra={{{name!r}: ...}}")


class Stream:
    """A streamed call for sync code: ``for`` it for text deltas, then read ``response``.

    The sync twin of `AsyncStream`: ``events()``, ``final()`` and ``close()`` instead of ``events()``,
    ``await final()`` and ``aclose()``.
    """

    def __init__(self, portal: Portal, stream: AsyncStream) -> None:
        self._portal = portal
        self._stream = stream
        self._pending: deque[Any] = deque()  # items of the last batch not read yet, for either reader
        self._batches = stream.batches()
        self._deltas: Generator[str, None, None] = self._items(typed=False)

    def _items(self, typed: bool) -> Generator[Any, None, None]:
        # One trip to the engine's loop per piece of the body, not per item.
        pending, batches, call = self._pending, self._batches, self._portal.call
        done = False
        try:
            while True:
                while pending:
                    item = pending.popleft()
                    if type(item) is str:
                        yield StreamEvent("text", item) if typed else item
                    elif typed:
                        yield item
                try:
                    pending.extend(call(_next(batches)))
                except StopAsyncIteration:
                    done = True
                    return
        finally:
            if not done:  # left early: release the connection
                call(self._stream.aclose())

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def __next__(self) -> str:
        return next(self._deltas)

    def events(self) -> Iterator[StreamEvent]:
        """The stream's typed events (text, reasoning, tool calls forming, usage, end)."""
        return self._items(typed=True)

    @property
    def response(self) -> CompletionResponse | None:
        """The final response, once the stream has ended."""
        return self._stream.response

    def final(self) -> CompletionResponse:
        """Read the rest of the stream and return the final response."""
        return self._portal.call(self._stream.final())

    def close(self) -> None:
        self._deltas.close()
        self._portal.call(self._stream.aclose())

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Engine:
    """Calls any provider by ``"provider/model"``; holds one provider instance per provider.

    ``routes``: named model groups with fallbacks, balancing and cooldowns (see `engine.router`), called by name
    like a model: ``Engine(routes={"smart": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]})``, then
    ``engine.complete("smart", ...)``. A `Router` may be passed instead, to share its state.
    """

    def __init__(self, settings: Settings | None = None, *, http_client: httpx.AsyncClient | None = None,
                 registry: Registry | None = None, routes: Mapping[str, Any] | Router | None = None) -> None:
        self.registry = registry or default_registry(settings)
        self.settings = settings or self.registry.settings
        self._http_client = http_client
        self._async: dict[str, LLMProvider] = {}
        self._sync: dict[str, LLMProvider] = {}
        self._portal: Portal | None = None
        self.router: Router | None = None
        if routes:
            from .router import Router

            self.router = routes if isinstance(routes, Router) else Router(routes, env=self.settings.env)
            for route in self.router.routes.values():
                self._check_route(self.router, route)

    def _check_route(self, router: Router, route: Route) -> None:
        for deployment in route.deployments:
            if deployment.model in router or deployment.model.partition("/")[0] not in self.registry:
                raise ConfigError(f"route {route.name!r}: deployment {deployment.model!r} is not 'provider/model' "
                                  "with a known provider (a route cannot name another route)")

    # -- routing -----------------------------------------------------------
    def route(self, model: str | None) -> tuple[str, str | None]:
        """Split ``"provider/model"``; a bare provider name means its default model."""
        model = model or self.settings.default_model
        if not model:
            raise ConfigError("no model given: pass 'provider/model' or set GENAI_DEFAULT_MODEL")
        provider, _, name = model.partition("/")
        if provider not in self.registry:
            raise UnknownProviderError(
                f"{model!r} does not start with a known provider name; use 'provider/model' with one of: "
                + ", ".join(self.registry.names()), name=provider,
            )
        return provider, name or None

    def quote(self, model: str | None) -> Quote:
        """What calls to ``"provider/model"`` cost (aliases resolved; the default model for a bare name)."""
        provider, name = self.route(model)
        spec = self.registry.spec(provider)
        name = name or spec.default_model
        if not name:
            raise ConfigError(f"provider {provider!r} has no default model: give one as {provider}/MODEL")
        return self.registry.prices.quote(spec, name)

    def provider(self, name: str) -> LLMProvider:
        """The engine's async provider instance for a name."""
        if name not in self._async:
            self._async[name] = self.registry.create(name, settings=self.settings, http_client=self._http_client)
        return self._async[name]

    def _routed(self, model: str | None, options: dict[str, Any]) -> bool:
        """Whether ``model`` names a route (its options are checked now, before any deployment is called)."""
        if self.router is None or model not in self.router:
            return False
        _check_options(options)
        return True

    def _request(self, model: str | None, messages: Messages, *, stream: bool, **options: Any) -> tuple[
            str, CompletionRequest, CallOptions | None]:
        """The provider, the unified request and the per-call engine options of a call's keyword arguments."""
        provider, model_id = self.route(model)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        _check_options(options)
        call = {k: options.pop(k) for k in CALL_OPTIONS if k in options}
        known = {k: options.pop(k) for k in (*REQUEST_OPTIONS, *SAMPLING) if k in options}
        known["extra"] = dict(known.get("extra") or {})
        request = CompletionRequest(messages=messages, model=model_id, stream=stream, **known)
        try:
            call_options = CallOptions(**call) if call else None
        except ValueError as exc:
            raise UnknownOptionError(str(exc)) from None
        return provider, request, call_options

    def _embedding(self, model: str | None, inputs: str | list[str], **options: Any) -> tuple[
            str, EmbeddingRequest, CallOptions | None]:
        """The provider, the embeddings request and the per-call engine options of an embed call."""
        provider, model_id = self.route(model)
        self._embedding_options(options)
        call = {k: options.pop(k) for k in CALL_OPTIONS if k in options}
        request = EmbeddingRequest(inputs=inputs, model=model_id, **options)  # type: ignore[arg-type]
        try:
            call_options = CallOptions(**call) if call else None
        except ValueError as exc:
            raise UnknownOptionError(str(exc)) from None
        return provider, request, call_options

    @staticmethod
    def _embedding_options(options: dict[str, Any]) -> dict[str, Any]:
        unknown = [k for k in options if k not in EMBEDDING_OPTIONS and k not in CALL_OPTIONS]
        if unknown:
            raise UnknownOptionError(_unknown_keyword(unknown[0], [*EMBEDDING_OPTIONS, *CALL_OPTIONS]))
        return options

    # -- async -------------------------------------------------------------
    async def aembed(self, model: str | None = None, inputs: str | list[str] = "", **options: Any
                     ) -> EmbeddingResponse:
        """Vectors for ``inputs`` (one text or a list), in order. Keyword options: dimensions, input_type
        (``query``, ``document``, ``classification``, ``clustering``), user, extra; and per-call engine options.
        A long list is sent in the provider's batch size, batches concurrently (``Settings.embed_concurrency``)."""
        if model is not None and self.router is not None and model in self.router:
            return await self.router.embed(model, inputs, self._aembed, **self._embedding_options(options))
        return await self._aembed(model, inputs, **options)

    async def _aembed(self, model: str | None, inputs: str | list[str], **options: Any) -> EmbeddingResponse:
        provider, request, call = self._embedding(model, inputs, **options)
        return await self.provider(provider).embed(request, call)

    async def acomplete(self, model: str | None = None, messages: Messages = "", **options: Any) -> CompletionResponse:
        """One call. Keyword options: temperature, max_tokens, output_schema, extra (provider-specific body
        fields); stop, top_p, seed, presence_penalty, frequency_penalty, user; and per-call engine options:
        timeout, max_retries, headers, api_key, base_url. Any other keyword raises `UnknownOptionError`."""
        if self._routed(model, options):
            assert self.router is not None and model is not None
            return await self.router.complete(model, messages, self._acomplete, **options)
        return await self._acomplete(model, messages, **options)

    async def _acomplete(self, model: str | None, messages: Messages, **options: Any) -> CompletionResponse:
        provider, request, call = self._request(model, messages, stream=False, **options)
        return await self.provider(provider).complete(request, call)

    def astream(self, model: str | None = None, messages: Messages = "", **options: Any) -> AsyncStream:
        """A streamed call: ``async for delta in engine.astream(...)``, then ``.response``."""
        if self._routed(model, options):
            assert self.router is not None and model is not None
            return self.router.stream(model, messages, self._astream, **options)
        return self._astream(model, messages, **options)

    def _astream(self, model: str | None, messages: Messages, **options: Any) -> AsyncStream:
        provider, request, call = self._request(model, messages, stream=True, **options)
        return self.provider(provider).stream_complete(request, call)

    async def aclose(self) -> None:
        for provider in self._async.values():
            await provider.close()
        self._async.clear()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- sync --------------------------------------------------------------
    @property
    def portal(self) -> Portal:
        if self._portal is None:
            from ._sync import Portal

            self._portal = Portal()
        return self._portal

    def _sync_provider(self, name: str) -> LLMProvider:
        # Sync calls run on the portal's own event loop, so they get their own provider (and pool); a client
        # the caller passed is used for them too.
        if name not in self._sync:
            self._sync[name] = self.registry.create(name, settings=self.settings, http_client=self._http_client)
        return self._sync[name]

    def complete(self, model: str | None = None, messages: Messages = "", **options: Any) -> CompletionResponse:
        """One call, for sync code (scripts, notebooks)."""
        if self._routed(model, options):
            assert self.router is not None and model is not None
            return self.portal.call(self.router.complete(model, messages, self._sync_complete, **options))
        provider, request, call = self._request(model, messages, stream=False, **options)
        return self.portal.call(self._sync_provider(provider).complete(request, call))

    async def _sync_complete(self, model: str | None, messages: Messages, **options: Any) -> CompletionResponse:
        provider, request, call = self._request(model, messages, stream=False, **options)
        return await self._sync_provider(provider).complete(request, call)

    def embed(self, model: str | None = None, inputs: str | list[str] = "", **options: Any) -> EmbeddingResponse:
        """Vectors for ``inputs``, for sync code (see `aembed`)."""
        if model is not None and self.router is not None and model in self.router:
            return self.portal.call(self.router.embed(model, inputs, self._sync_embed,
                                                      **self._embedding_options(options)))
        provider, request, call = self._embedding(model, inputs, **options)
        return self.portal.call(self._sync_provider(provider).embed(request, call))

    async def _sync_embed(self, model: str | None, inputs: str | list[str], **options: Any) -> EmbeddingResponse:
        provider, request, call = self._embedding(model, inputs, **options)
        return await self._sync_provider(provider).embed(request, call)

    def stream(self, model: str | None = None, messages: Messages = "", **options: Any) -> Stream:
        """A streamed call for sync code: ``for delta in engine.stream(...)``, then ``.response``."""
        if self._routed(model, options):
            assert self.router is not None and model is not None
            return Stream(self.portal, self.router.stream(model, messages, self._sync_stream, **options))
        return Stream(self.portal, self._sync_stream(model, messages, **options))

    def _sync_stream(self, model: str | None, messages: Messages, **options: Any) -> AsyncStream:
        provider, request, call = self._request(model, messages, stream=True, **options)
        return self._sync_provider(provider).stream_complete(request, call)

    def close(self) -> None:
        if self._sync:
            async def close_all() -> None:
                for provider in self._sync.values():
                    await provider.close()

            self.portal.call(close_all())
            self._sync.clear()
        if self._portal is not None:
            self._portal.stop()
            self._portal = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _next(iterator: AsyncIterator[Any]) -> Any:
    return await iterator.__anext__()
