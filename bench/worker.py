"""One client in its own process, driven by bench/run.py with JSON lines over a pipe.

A process per client keeps one library's import-time heap, threads and GC pressure away from
another's, and lets peers run from another virtualenv. Library output goes to stderr; answers go
to a private copy of stdout. Every command runs under a timeout, and the worker exits when its
parent closes the pipe.

Commands (``{"op": ...}``): ``seq`` (n sequential calls), ``conc`` (a bounded total of calls over
``conc`` tasks), ``stream`` (one long stream), ``hold`` (n streams open at once), ``mock_seq`` /
``mock_stream`` (the same in-process over a mock transport), ``micro`` (render/extract per bundled
provider, engine only), ``info``, ``exit``. Every reply's text is checked against the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
import traceback
from typing import Any

from . import clients, server

pc = time.perf_counter_ns
cpu = time.process_time_ns


def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM (kB) and thread count of this process."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def reset_peak() -> bool:
    """Reset VmHWM so that the next reading is the peak of what follows (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Worker:
    def __init__(self, name: str, base_url: str, words: int, chunks: int) -> None:
        self.name, self.base_url, self.words, self.chunks = name, base_url, words, chunks
        self.spec = clients.CLIENTS[name]
        self.client: Any = None
        self.mock_client: Any = None
        self.mock_kit: clients.MockKit | None = None
        self.mock_error: str | None = None
        self.expected = server.completion_text(words)

    async def setup(self, warm: int) -> dict[str, Any]:
        t0 = pc()
        self.client = clients.make(self.name, self.base_url)
        for fmt in self.spec.formats:
            for _ in range(warm):
                await self.check_complete(self.client, fmt)
            await self.check_stream(self.client, fmt, self.chunks)
        return {"setup_ms": (pc() - t0) / 1e6}

    async def check_complete(self, client: Any, fmt: str) -> None:
        text = await client.complete(fmt)
        if text != self.expected:
            raise RuntimeError(f"{fmt}: wrong reply text {text!r:.80}")

    async def check_stream(self, client: Any, fmt: str, chunks: int) -> None:
        parts = [t async for t in client.stream(fmt)]
        if "".join(parts) != server.stream_text(chunks, fmt):
            raise RuntimeError(f"{fmt}: wrong stream text ({len(parts)} deltas)")

    async def ensure_mock(self, warm: int) -> None:
        if self.mock_client is not None or self.mock_error is not None:
            return
        self.mock_kit = kit = clients.MockKit(self.words, self.chunks)
        try:
            self.mock_client = clients.make(self.name, self.base_url, kit)
        except clients.Unsupported as exc:
            self.mock_error = f"unsupported: {exc}"
            return
        calls = kit.calls
        for fmt in self.spec.formats:
            for _ in range(warm):
                await self.check_complete(self.mock_client, fmt)
            await self.check_stream(self.mock_client, fmt, self.chunks)
        expected = (warm + 1) * len(self.spec.formats)
        if kit.calls - calls != expected:
            self.mock_error = f"mock transport not used: {kit.calls - calls} mock calls for {expected} requests"
            self.mock_client = None

    # -------------------------------------------------------------------------------- measurements

    async def seq(self, client: Any, fmt: str, n: int) -> dict[str, Any]:
        lat = []
        complete, expected, bad = client.complete, self.expected, 0
        c0 = cpu()
        for _ in range(n):
            t0 = pc()
            text = await complete(fmt)
            lat.append(pc() - t0)
            bad += text != expected
        return {"lat_ns": lat, "cpu_ns": cpu() - c0, "bad": bad}

    async def conc(self, fmt: str, total: int, conc: int) -> dict[str, Any]:
        remaining, errors, bad = total, [], 0
        complete, expected = self.client.complete, self.expected

        async def task() -> None:
            nonlocal remaining, bad
            while remaining > 0:
                remaining -= 1
                try:
                    bad += await complete(fmt) != expected
                except Exception as exc:  # counted, never retried
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

        c0, t0 = cpu(), pc()
        await asyncio.gather(*(task() for _ in range(conc)))
        return {"wall_ns": pc() - t0, "cpu_ns": cpu() - c0, "n": total, "errors": len(errors), "bad": bad,
                "first_error": errors[0] if errors else None}

    async def stream(self, client: Any, fmt: str, chunks: int) -> dict[str, Any]:
        """TTFC: call start to the first delta in hand. Per chunk: second delta to the end (the
        server's pause after the first event is not in it)."""
        n, first, second, parts = 0, 0, 0, []
        c0, t0 = cpu(), pc()
        async for text in client.stream(fmt):
            if n < 2:
                if n == 0:
                    first = pc()
                else:
                    second = pc()
            parts.append(text)
            n += 1
        end, c1 = pc(), cpu()
        return {"ttfc_ns": (first or end) - t0, "total_ns": end - t0, "chunks": n,
                "per_chunk_ns": (end - second) / (n - 2) if second and n > 2 else None, "cpu_ns": c1 - c0,
                "valid": "".join(parts) == server.stream_text(chunks, fmt)}

    async def hold(self, fmt: str, n: int, chunks: int) -> dict[str, Any]:
        """n streams started at once; the server holds each open after its first event."""
        expected, errors, bad = server.stream_text(chunks, fmt), [], 0
        stream = self.client.stream

        async def one() -> None:
            nonlocal bad
            try:
                bad += "".join([t async for t in stream(fmt)]) != expected
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

        gc.collect()
        peak_reset = reset_peak()
        before = proc_status()
        c0, t0 = cpu(), pc()
        await asyncio.gather(*(one() for _ in range(n)))
        wall, used = pc() - t0, cpu() - c0
        during = proc_status()
        gc.collect()
        after = proc_status()
        return {"wall_ns": wall, "cpu_ns": used, "n": n, "errors": len(errors), "bad": bad,
                "first_error": errors[0] if errors else None, "rss_before_kb": before.get("VmRSS"),
                "rss_after_kb": after.get("VmRSS"), "peak_kb": during.get("VmHWM") if peak_reset else None}

    async def prime(self, client: Any, fmt: str, n: int) -> None:
        """Untimed calls right before a measurement: a process that sat idle pays a wake-up on its
        first request, which is not the library's cost."""
        for _ in range(n):
            await client.complete(fmt)

    async def run(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op, fmt, prime = cmd["op"], cmd.get("fmt", "openai"), cmd.get("prime", 5)
        if op in ("seq", "conc", "stream", "hold"):
            if fmt not in self.spec.formats:
                return {"unsupported": f"{self.name} does not speak {fmt}"}
            await self.prime(self.client, fmt, prime)
        if op == "seq":
            return await self.seq(self.client, fmt, cmd["n"])
        if op == "conc":
            return await self.conc(fmt, cmd["total"], cmd["conc"])
        if op == "stream":
            return await self.stream(self.client, fmt, self.chunks)
        if op == "hold":
            return await self.hold(fmt, cmd["n"], cmd["chunks"])
        if op in ("mock_seq", "mock_stream"):
            if fmt not in self.spec.formats:
                return {"unsupported": f"{self.name} does not speak {fmt}"}
            await self.ensure_mock(cmd.get("warm", 20))
            if self.mock_client is None:
                return {"unsupported": self.mock_error}
            await self.prime(self.mock_client, fmt, prime)
            if op == "mock_seq":
                return await self.seq(self.mock_client, fmt, cmd["n"])
            return await self.stream(self.mock_client, fmt, self.chunks)
        if op == "micro":
            from .micro import measure

            return measure(cmd.get("n", 2000), self.words)
        if op == "info":
            return {"status": proc_status(), "cpu_s": time.process_time()}
        raise ValueError(f"unknown op {op}")


async def serve(w: Worker, out: Any, warm: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def send(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        ready = await asyncio.wait_for(w.setup(warm), 300)
        send({"ready": True, **ready, "status": proc_status()})
    except Exception as exc:
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]})
        return
    while True:
        line = await reader.readline()
        if not line:
            return  # the driver went away
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            for client in (w.client, w.mock_client):
                if client is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.aclose(), 10)
            send({"bye": True})
            return
        try:
            send({"ok": True, **await asyncio.wait_for(w.run(cmd), cmd.get("timeout", 300))})
        except Exception as exc:
            send({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                  "trace": traceback.format_exc()[-2000:]})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker")
    p.add_argument("--client", required=True, choices=sorted(clients.CLIENTS))
    p.add_argument("--base-url", required=True)
    p.add_argument("--words", type=int, default=32)
    p.add_argument("--chunks", type=int, default=2000)
    p.add_argument("--warm", type=int, default=30)
    a = p.parse_args(argv)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything a library prints goes to the log, never into the protocol
    sys.stdout = sys.stderr
    asyncio.run(serve(Worker(a.client, a.base_url, a.words, a.chunks), out, a.warm))
    return 0


if __name__ == "__main__":
    sys.exit(main())

