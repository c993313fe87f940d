"""Recorded replies played back through the engine's real client path, with no socket.

    client, seen = replay_client(200, body, piece=7)
    provider = registry.create("openai", http_client=client)

The body arrives in ``piece``-byte chunks, so stream decoders meet every awkward boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx


class _Pieces(httpx.AsyncByteStream):
    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start:start + self.size]


def replay_transport(status: int, body: bytes, headers: Mapping[str, str] | None = None,
                     piece: int = 5) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that answers every request with this response, its body in ``piece``-byte chunks;
    with the list of requests it saw."""
    if piece < 1:
        raise ValueError("piece must be >= 1")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers=dict(headers or {}), stream=_Pieces(body, piece))

    return httpx.MockTransport(handler), seen


def replay_client(status: int, body: bytes, headers: Mapping[str, str] | None = None,
                  piece: int = 5) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """An ``httpx.AsyncClient`` over `replay_transport`, to pass as ``http_client``."""
    transport, seen = replay_transport(status, body, headers, piece)
    return httpx.AsyncClient(transport=transport), seen
