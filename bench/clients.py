"""The clients under test, each behind one small interface.

A client has ``async complete(fmt) -> str`` (the reply text), ``stream(fmt)`` (an async iterator of
text deltas, in order) and ``aclose()``; ``fmt`` is the wire format: ``openai``, ``anthropic`` or
``ollama``, or ``tools``: OpenAI's with two parallel tool calls, where the deltas are the calls' argument
pieces as they arrive and a client checks at the end that both calls came out whole (valid JSON).
`CLIENTS` lists them; each is built by `make` inside its own worker process, so a
process imports only its own library.

- ``httpx`` is the floor: a hand-written ``httpx.AsyncClient`` POST with ``json=``, ``r.json()`` and a
  line-by-line stream parse, the cheapest natural httpx code (absolute URL, the engine's pool limits).
- ``engine*`` go through the engine's front door, ``Engine.acomplete`` / ``Engine.astream`` with a
  ``"provider/model"`` string, exactly as a user calls it; the variants only swap the transport.
- ``httpx2``, ``openai`` and ``litellm`` are optional peers (the ``bench`` extra).

In-process mode (`MockKit`): the same calls answered by an in-memory transport, no sockets, so the
difference to the floor is the library's own work.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from . import server

API_KEY = "sk-bench-0000000000000000"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write one friendly sentence about foxes."},
]
MAX_TOKENS = 64
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "ollama": "llama3.2", "tools": "gpt-4o-mini"}
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "ollama": "/api/chat",
         "tools": "/v1/chat/completions"}
FORMATS = tuple(MODELS)
TOOLS = [{"type": "function", "function": {
    "name": name, "description": f"{name} a text",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}
    for name in server.TOOL_NAMES]


def tool_text(arguments: list[str]) -> str:
    """The reply text a tools reply carries: the calls' ``text`` arguments joined (each must be JSON)."""
    if len(arguments) != 2:
        raise RuntimeError(f"tools: {len(arguments)} tool calls, expected 2")
    return "".join(json.loads(a)["text"] for a in arguments)


class Unsupported(Exception):
    """This client cannot run this mode or format."""


class MockKit:
    """In-memory answers identical to the server's; each whole body arrives as one piece."""

    def __init__(self, words: int, chunks: int) -> None:
        self.words, self.chunks, self.calls = words, chunks, 0
        self.bodies: dict[tuple[str, bool], tuple[bytes, list[tuple[str, str]]]] = {}
        for fmt, model in MODELS.items():
            shown = server.MODEL_SNAPSHOT if fmt in ("openai", "tools") else model
            ctype = "application/x-ndjson" if fmt == "ollama" else "text/event-stream; charset=utf-8"
            self.bodies[fmt, False] = (server.completion_body(fmt, shown, words),
                                       [("content-type", "application/json")])
            self.bodies[fmt, True] = (b"".join(server.stream_events(fmt, shown, chunks)), [("content-type", ctype)])

    def pick(self, path: str, content: bytes) -> tuple[bytes, list[tuple[str, str]]]:
        self.calls += 1
        fmt = "anthropic" if path.endswith("/messages") else "ollama" if path.endswith("/api/chat") else "openai"
        if fmt == "openai" and b'"tools"' in content:
            fmt = "tools"
        if fmt == "ollama":
            stream = b'"stream": false' not in content and b'"stream":false' not in content
        else:
            stream = b'"stream": true' in content or b'"stream":true' in content
        return self.bodies[fmt, stream]

    def client(self, module: Any, **kw: Any) -> Any:
        """An ``AsyncClient`` of ``module`` (httpx or httpx2) over its MockTransport."""

        def handler(request: Any) -> Any:
            body, headers = self.pick(request.url.path, request.content)
            return module.Response(200, headers=headers, content=body)

        return module.AsyncClient(transport=module.MockTransport(handler), **kw)


# ---------------------------------------------------------------------------------------------- floor


class RawHTTP:
    """The floor: hand-written calls with ``httpx`` (or the API-compatible ``httpx2``)."""

    def __init__(self, module: Any, base_url: str, mock: MockKit | None, client: Any = None) -> None:
        self.urls = {fmt: base_url + path for fmt, path in PATHS.items()}
        kw = {"headers": {"authorization": f"Bearer {API_KEY}", "x-api-key": API_KEY,
                          "anthropic-version": "2023-06-01"},
              "timeout": module.Timeout(60.0, connect=10.0),
              "limits": module.Limits(max_connections=1000, max_keepalive_connections=100)}
        self.http = client or (mock.client(module, **kw) if mock else module.AsyncClient(**kw))
        self.loads = json.loads

    @staticmethod
    def body(fmt: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": MODELS[fmt], "messages": MESSAGES, "max_tokens": MAX_TOKENS,
                                "temperature": 0.0}
        if fmt == "anthropic":
            body["system"] = MESSAGES[0]["content"]
            body["messages"] = MESSAGES[1:]
        if fmt == "tools":
            body["tools"] = TOOLS
        if fmt == "ollama":
            body = {"model": MODELS[fmt], "messages": MESSAGES, "stream": stream,
                    "options": {"temperature": 0.0, "num_predict": MAX_TOKENS}}
        elif stream:
            body["stream"] = True
            if fmt in ("openai", "tools"):
                body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, fmt: str) -> str:
        r = await self.http.post(self.urls[fmt], json=self.body(fmt, False))
        r.raise_for_status()
        data = r.json()
        if fmt == "openai":
            return data["choices"][0]["message"]["content"]
        if fmt == "tools":
            return tool_text([c["function"]["arguments"] for c in data["choices"][0]["message"]["tool_calls"]])
        if fmt == "anthropic":
            return "".join(b["text"] for b in data["content"] if b["type"] == "text")
        return data["message"]["content"]

    async def stream(self, fmt: str) -> AsyncIterator[str]:
        loads = self.loads
        async with self.http.stream("POST", self.urls[fmt], json=self.body(fmt, True)) as r:
            r.raise_for_status()
            if fmt == "ollama":
                async for line in r.aiter_lines():
                    if line:
                        text = loads(line)["message"]["content"]
                        if text:
                            yield text
                return
            calls: dict[int, list[str]] = {}
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue  # blank separators and "event:" lines; the type is in the data too
                data = line[6:]
                if data == "[DONE]":
                    continue  # read on to the end of the body so the connection is reused
                event = loads(data)
                if fmt == "tools":
                    choices = event["choices"]
                    for call in (choices[0]["delta"].get("tool_calls") or ()) if choices else ():
                        piece = call["function"].get("arguments")
                        if piece:
                            calls.setdefault(call["index"], []).append(piece)
                            yield piece
                    continue
                if fmt == "openai":
                    choices = event["choices"]
                    text = choices[0]["delta"].get("content") if choices else None
                else:
                    text = event["delta"].get("text") if event["type"] == "content_block_delta" else None
                if text:
                    yield text
            if fmt == "tools":
                tool_text(["".join(calls[k]) for k in sorted(calls)])  # both calls whole, valid JSON

    async def aclose(self) -> None:
        await self.http.aclose()


# ---------------------------------------------------------------------------------------------- engine


class EngineClient:
    """The engine's front door: ``Engine.acomplete("provider/model", messages)`` / ``Engine.astream``."""

    def __init__(self, base_url: str, http_client: Any = None) -> None:
        import engine

        settings = engine.Settings(
            api_keys={"openai": API_KEY, "anthropic": API_KEY},
            base_urls={"openai": base_url + "/v1", "anthropic": base_url + "/v1", "ollama": base_url},
        )
        self.engine = engine.Engine(settings, http_client=http_client)
        self.http_client = http_client
        self.models = {fmt: f"{'openai' if fmt == 'tools' else fmt}/{model}" for fmt, model in MODELS.items()}

    async def complete(self, fmt: str) -> str:
        tools = {"tools": TOOLS} if fmt == "tools" else {}
        r = await self.engine.acomplete(self.models[fmt], MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0,
                                        **tools)
        if not r.success:
            raise RuntimeError(f"engine call failed: {r.error}")
        return tool_text([c.arguments for c in r.tool_calls]) if fmt == "tools" else r.content

    async def stream(self, fmt: str) -> AsyncIterator[str]:
        if fmt == "tools":
            s = self.engine.astream(self.models[fmt], MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0,
                                    tools=TOOLS)
            async for event in s.events():
                if event.type == "tool_arguments":
                    yield event.text
            if s.response is not None and s.response.success:
                tool_text([c.arguments for c in s.response.tool_calls])
        else:
            s = self.engine.astream(self.models[fmt], MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0)
            async for text in s:
                yield text
        if s.response is None or not s.response.success:
            raise RuntimeError(f"engine stream failed: {s.response and s.response.error}")

    async def aclose(self) -> None:
        await self.engine.aclose()
        if self.http_client is not None:
            await self.http_client.aclose()


def _engine_http(kind: str, mock: MockKit | None) -> Any:
    """The httpx client an engine variant runs on (None: the engine builds its own)."""
    import httpx

    from . import transports

    kw: dict[str, Any] = {"timeout": httpx.Timeout(60.0, connect=10.0),
                          "headers": {"user-agent": "genai-engine/bench"}}
    if mock is not None:
        if kind != "default":
            raise Unsupported("transport variants are measured over sockets only")
        return mock.client(httpx, **kw)
    if kind == "default":
        return None
    if kind == "pool":
        return transports.tuned_client(**kw)
    if kind == "httpx":
        return httpx.AsyncClient(limits=transports.default_limits(), **kw)
    return transports.aiohttp_client(**kw)


# ---------------------------------------------------------------------------------------------- peers


class OpenAISDK:
    def __init__(self, base_url: str, mock: MockKit | None) -> None:
        from openai import AsyncOpenAI

        kw: dict[str, Any] = {"base_url": base_url + "/v1", "api_key": API_KEY}
        if mock is not None:
            import httpx2

            kw["http_client"] = mock.client(httpx2)
        self.client = AsyncOpenAI(**kw)

    async def complete(self, fmt: str) -> str:
        tools = {"tools": TOOLS} if fmt == "tools" else {}
        r = await self.client.chat.completions.create(model=MODELS["openai"], messages=MESSAGES,  # type: ignore
                                                      max_tokens=MAX_TOKENS, temperature=0.0, **tools)
        if fmt == "tools":
            return tool_text([c.function.arguments for c in r.choices[0].message.tool_calls or ()])
        return r.choices[0].message.content or ""

    async def stream(self, fmt: str) -> AsyncIterator[str]:
        tools = {"tools": TOOLS} if fmt == "tools" else {}
        s = await self.client.chat.completions.create(  # type: ignore
            model=MODELS["openai"], messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0, stream=True,
            stream_options={"include_usage": True}, **tools)
        calls: dict[int, list[str]] = {}
        async for chunk in s:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.content:
                yield delta.content
            for call in delta.tool_calls or ():
                if call.function and call.function.arguments:
                    calls.setdefault(call.index, []).append(call.function.arguments)
                    yield call.function.arguments
        if fmt == "tools":
            tool_text(["".join(calls[k]) for k in sorted(calls)])

    async def aclose(self) -> None:
        await self.client.close()


class LiteLLM:
    def __init__(self, base_url: str, mock: MockKit | None) -> None:
        import litellm

        self.acompletion = litellm.acompletion
        self.kw: dict[str, Any] = {"api_base": base_url + "/v1", "api_key": API_KEY}
        if mock is not None:
            import httpx2
            from openai import AsyncOpenAI

            self.kw["client"] = AsyncOpenAI(base_url=base_url + "/v1", api_key=API_KEY,
                                            http_client=mock.client(httpx2))

    async def complete(self, fmt: str) -> str:
        tools = {"tools": TOOLS} if fmt == "tools" else {}
        r = await self.acompletion(model="openai/" + MODELS["openai"], messages=MESSAGES, max_tokens=MAX_TOKENS,
                                   temperature=0.0, **tools, **self.kw)
        if fmt == "tools":
            return tool_text([c.function.arguments for c in r.choices[0].message.tool_calls or ()])
        return r.choices[0].message.content

    async def stream(self, fmt: str) -> AsyncIterator[str]:
        tools = {"tools": TOOLS} if fmt == "tools" else {}
        s = await self.acompletion(model="openai/" + MODELS["openai"], messages=MESSAGES, max_tokens=MAX_TOKENS,
                                   temperature=0.0, stream=True, stream_options={"include_usage": True}, **tools,
                                   **self.kw)
        calls: dict[int, list[str]] = {}
        async for chunk in s:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.content:
                yield delta.content
            for call in delta.tool_calls or ():
                if call.function and call.function.arguments:
                    calls.setdefault(call.index, []).append(call.function.arguments)
                    yield call.function.arguments
        if fmt == "tools":
            tool_text(["".join(calls[k]) for k in sorted(calls)])

    async def aclose(self) -> None:
        client = self.kw.get("client")
        if client is not None:
            await client.close()


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Spec:
    """One client under test: how to build it and what it needs."""

    name: str
    build: Callable[[str, MockKit | None], Any]
    probe: str                      # import statement that must work in its interpreter
    formats: tuple[str, ...] = FORMATS
    peer: bool = False              # needs the optional bench extra (runs in the peer interpreter)
    sockets_only: bool = False      # a transport variant: nothing to measure in-process
    note: str = ""


def _raw(module_name: str) -> Callable[[str, MockKit | None], Any]:
    def build(base_url: str, mock: MockKit | None) -> Any:
        import importlib

        return RawHTTP(importlib.import_module(module_name), base_url, mock)

    return build


def _raw_tuned(base_url: str, mock: MockKit | None) -> Any:
    import httpx

    from .transports import tuned_client

    if mock is not None:
        raise Unsupported("transport variants are measured over sockets only")
    client = tuned_client(headers={"authorization": f"Bearer {API_KEY}"}, timeout=httpx.Timeout(60.0, connect=10.0))
    return RawHTTP(httpx, base_url, None, client=client)


def _engine(kind: str) -> Callable[[str, MockKit | None], Any]:
    def build(base_url: str, mock: MockKit | None) -> Any:
        return EngineClient(base_url, _engine_http(kind, mock))

    return build


CLIENTS: dict[str, Spec] = {s.name: s for s in (
    Spec("httpx", _raw("httpx"), "import httpx", note="hand-written httpx.AsyncClient (the floor)"),
    Spec("engine", _engine("default"), "import engine",
         note="Engine.acomplete/astream, its own client (httpx over httpcore2's pool, engine/transport.py)"),
    Spec("engine+httpx", _engine("httpx"), "import engine", formats=("openai",), sockets_only=True,
         note="engine on httpx's own pool (GENAI_HTTP_TRANSPORT=httpx)"),
    Spec("httpx-tuned", _raw_tuned, "import httpx", formats=("openai",), sockets_only=True,
         note="floor with max_keepalive_connections = max_connections"),
    Spec("engine+pool", _engine("pool"), "import engine", formats=("openai",), sockets_only=True,
         note="engine on httpx's pool with max_keepalive_connections = max_connections"),
    Spec("httpx2", _raw("httpx2"), "import httpx2", peer=True, note="the floor written with httpx2"),
    Spec("engine+aiohttp", _engine("aiohttp"), "import engine, httpx_aiohttp", formats=("openai",), peer=True,
         sockets_only=True,
         note="engine on httpx over httpx_aiohttp.AiohttpTransport"),
    Spec("openai", OpenAISDK, "import openai", formats=("openai", "tools"), peer=True,
         note="AsyncOpenAI().chat.completions.create"),
    Spec("litellm", LiteLLM, "import litellm", formats=("openai", "tools"), peer=True,
         note="litellm.acompletion(model='openai/...')"),
)}


def make(name: str, base_url: str, mock: MockKit | None = None) -> Any:
    return CLIENTS[name].build(base_url, mock)
