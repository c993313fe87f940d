"""Load: 1,000 streams open at once through one gateway process over loopback, in rounds. Every stream arrives
whole, none fails, and the gateway's memory stays flat from round to round.

The upstream is the benchmark's fast server (bench/server.py, its own process): it holds every stream after its
first event until 1,000 are open at the same time, then finishes them together, so the 1,000 really are
concurrent (its ``held_max`` says so). Bounded: rounds of a few seconds, every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette", reason="the [server] extra (installed by [dev])")
pytest.importorskip("uvicorn", reason="the [server] extra (installed by [dev])")
pytest.importorskip("prometheus_client", reason="the [server] extra (installed by [dev])")


from bench.server import stream_text
from engine.testing import GatewayProcess

from .gateway_support import KEY, ROOT, child_env, keys_env

STREAMS, ROUNDS, CHUNKS = 1000, 4, 20


@pytest.fixture(scope="module")
def bench_upstream() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.server", "--port", "0", "--chunks", str(CHUNKS),
                             "--gap-ms", "0", "--max-seconds", "300"], cwd=ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:1] == ["LISTENING"], line
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        proc.terminate()
        proc.wait(10)


def call(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    """GET, or POST a JSON body, to the bench server (never through a proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    with opener.open(request, timeout=10) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the gateway's memory from /proc")
def test_a_thousand_concurrent_streams_in_rounds_no_errors_flat_memory(bench_upstream: str, tmp_path: Path) -> None:
    config = {"keys": [{"name": "team", "key_env": "TEAM_KEY"}], "state": {"sqlite": "ledger.db"},
              "settings": {"max_retries": 0, "timeout": 30}}
    env = {**keys_env(), "GENAI_OPENAI_BASE_URL": bench_upstream + "/v1", "GENAI_OPENAI_API_KEY": "sk-bench"}
    expected = stream_text(CHUNKS)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "go"}], "stream": True}
    memory: list[int] = []
    with GatewayProcess(config, folder=tmp_path, env=env, access_log=False, max_seconds=240) as gateway:
        async def one(http: httpx.AsyncClient) -> str:
            async with http.stream("POST", "/v1/chat/completions", json=body) as reply:
                assert reply.status_code == 200
                text = []
                async for line in reply.aiter_lines():
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        text.append(chunk["choices"][0]["delta"].get("content") or "" if chunk["choices"] else "")
                    elif line == "data: [DONE]":
                        return "".join(text)
            raise AssertionError("a stream ended without [DONE]")

        async def round_() -> list[str | BaseException]:
            limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=STREAMS)
            async with httpx.AsyncClient(base_url=gateway.base_url, headers={"authorization": f"Bearer {KEY}"},
                                         limits=limits, timeout=60) as http:
                return await asyncio.wait_for(asyncio.gather(*(one(http) for _ in range(STREAMS)),
                                                             return_exceptions=True), 90)

        for _ in range(ROUNDS):
            call(bench_upstream + "/stats/reset", {})
            call(bench_upstream + "/config", {"hold": STREAMS, "hold_ms": 20_000})
            results = asyncio.run(round_())
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, f"{len(errors)} streams failed, e.g. {errors[0]!r}"
            assert results == [expected] * STREAMS
            stats = call(bench_upstream + "/stats")
            assert stats["held_max"] == STREAMS and stats["streams"] == STREAMS  # all open at once
            memory.append(rss_kb(gateway.pid))
        call(bench_upstream + "/config", {"hold": 0})
    # Flat after the first (warm-up) round: the allocator moves a few MiB between rounds either way, while a leak of
    # even 10 KiB a stream would add 10 MiB every round, so the last round would top both the second and every
    # round before it.
    assert memory[-1] - memory[1] < 16 * 1024, f"RSS after each round (KiB): {memory}"
    assert memory[-1] - max(memory[:-1]) < 12 * 1024, f"RSS after each round (KiB): {memory}"
