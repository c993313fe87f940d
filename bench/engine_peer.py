"""The engine as a peer of the shared peer-bench harness (../shared/peer-bench), as a plugin file.

    .venv-bench/bin/python ../shared/peer-bench/run_peers.py --plugin bench/engine_peer.py \\
        --peers httpx,openai,litellm,engine

peer-bench imports this file itself (its ``peers`` module is on its path); nothing in bench/ imports
it, and bench/ runs without peer-bench. The engine is called through its front door,
``Engine.acomplete("openai/<model>", messages)`` / ``Engine.astream``, with its OpenAI provider pointed
at the fake server, exactly as in bench/clients.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from peers import Peer, Request, Target  # type: ignore[import-not-found]  # peer-bench's own module


class EngineSession:
    def __init__(self, target: Target) -> None:
        import engine

        http_client = target.mock.httpx_client() if target.mock else None
        settings = engine.Settings(api_keys={"openai": target.api_key}, base_urls={"openai": target.base_url})
        self.engine = engine.Engine(settings, http_client=http_client)
        self.http_client = http_client

    async def complete(self, req: Request) -> str:
        r = await self.engine.acomplete("openai/" + req.model, req.messages, max_tokens=req.max_tokens,
                                        temperature=req.temperature)
        if not r.success:
            raise RuntimeError(r.error)
        return r.content

    async def stream(self, req: Request) -> AsyncIterator[str]:
        s = self.engine.astream("openai/" + req.model, req.messages, max_tokens=req.max_tokens,
                                temperature=req.temperature)
        async for text in s:
            yield text
        if s.response is None or not s.response.success:
            raise RuntimeError(s.response.error if s.response else "stream gave no response")

    async def aclose(self) -> None:
        await self.engine.aclose()
        if self.http_client is not None:
            await self.http_client.aclose()


async def make_engine(target: Target) -> Any:
    return EngineSession(target)


PEERS = [
    Peer("engine", dists=("genai-engine", "httpx"), import_code="import engine; engine.Engine", make=make_engine,
         description="Engine.acomplete('openai/<model>') / Engine.astream: the declarative engine",
         mock_note="Engine(http_client=httpx.AsyncClient(transport=httpx.MockTransport))"),
]
