"""The gateway's cost (``genai serve``) over calling the upstream directly, side by side with LiteLLM's proxy.

    python -m bench gateway            # full run, ~4 min on 2 busy cores; prints the report, saves bench/results/
    python -m bench gateway --quick    # tiny counts, ~25 s (~45 s with LiteLLM): checks that everything runs
    python -m bench gateway --litellm-python /tmp/venv-litellm/bin/python    # LiteLLM's proxy from another venv

One client, the bench's httpx floor code (`bench.clients.RawHTTP`, over httpx2 unless ``--client httpx``), posts
the same OpenAI chat JSON to: the bench server itself (``direct``), the same server through ``genai serve`` with
one worker (``gateway``) and with two (``gateway-2w``), and through LiteLLM's proxy (``litellm``) when
``--litellm-python`` has ``litellm[proxy]``.
Every measurement runs in rounds, each target once per round in an order rotated from round to round, so that
drift of a shared machine hits every target alike. Latency percentiles are taken over every call of every round
(warm-up and priming excluded); added latency is a target's percentile minus direct's at the same percentile.

Every reply's text is checked, the server's request count is compared with the calls made, every process binds
127.0.0.1 and is stopped at the end (also on Ctrl-C and errors; each stops by itself after a deadline), every
round has a timeout and the whole run a time budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.testing import GatewayProcess
from engine.testing.gateway import _die_with_parent  # its own session, and SIGTERM when we die: as the gateway's

from . import clients, server
from .run import CHILD_ENV, RESULTS, ROOT, Server, child_env, fmt, median, paired, pct, report_end, save

pc = time.perf_counter_ns
cpu = time.process_time_ns

MODEL = "openai/gpt-4o-mini"  # the same body to every target: the gateway and LiteLLM route it, the server ignores it
UPSTREAM_KEY = "sk-bench-upstream-0000000000"
DIRECT, GATEWAY, GATEWAY2, LITELLM = "direct", "gateway", "gateway-2w", "litellm"
LABELS = {DIRECT: "direct (bench server)", GATEWAY: "genai serve, 1 worker", GATEWAY2: "genai serve, 2 workers",
          LITELLM: "LiteLLM proxy, 1 worker"}
LEVELS = (1, 64)
MODES = ("plain", "stream")
PHASES = ("latency", "chunks", "rps")
# LiteLLM's switches: the bundled price map instead of a download, telemetry off (LITELLM_TELEMETRY_DISABLED
# since its telemetry package, LITELLM_TELEMETRY before), no admin UI, and no per-request log lines (its uvicorn
# access log follows LITELLM_LOG), as the gateway's access log is off.
LITELLM_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
               "LITELLM_TELEMETRY_DISABLED": "True", "LITELLM_LOG": "ERROR", "DISABLE_ADMIN_UI": "True",
               "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True"}

QUICK = {"warm": 5, "prime": 2, "lat_calls": 64, "lat_stream_calls": 64, "lat_rounds": 1, "lat_chunks": 5,
         "stream_chunks": 50, "chunk_rounds": 2, "rps_seconds": 0.5, "rps_rounds": 1}


def client_module(name: str) -> Any:
    """httpx, or httpx2: the same API (the fork the openai SDK uses), with a pool that stays cheap under concurrency."""
    return importlib.import_module(name)


class SetupError(Exception):
    """The direct path or a gateway does not answer as it should: nothing can be measured."""


# ---------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int, group: bool) -> float:
    """User + system CPU of a process, or of every live process in its process group (Linux; 0 elsewhere)."""
    ticks = 0
    pids = [e.name for e in os.scandir("/proc") if e.name.isdigit()] if group else [str(pid)]
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if not group or int(fields[2]) == pid:  # fields[2] = pgrp; 11, 12 = utime, stime
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class LiteLLMProxy:
    """LiteLLM's proxy from its own interpreter on 127.0.0.1, one worker, no database, routing `MODEL` to the
    bench server as an OpenAI-compatible endpoint; stopped with its process group."""

    def __init__(self, python: str, upstream: str, folder: Path, key: str, max_seconds: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = {"model_list": [{"model_name": MODEL, "litellm_params": {
                      "model": MODEL, "api_base": upstream + "/v1", "api_key": UPSTREAM_KEY}}],
                  "general_settings": {"master_key": key},
                  "litellm_settings": {"num_retries": 0, "request_timeout": 30, "telemetry": False}}
        path = folder / "litellm.yaml"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
        self.log_path = folder / "litellm.log"
        env = {**child_env(), **LITELLM_ENV}
        with open(self.log_path, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [python, "-m", "litellm.proxy.proxy_cli", "--config", str(path), "--host", "127.0.0.1",
                 "--port", str(self.port), "--num_workers", "1"],
                cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        self.timer = threading.Timer(max_seconds, self.kill)
        self.timer.daemon = True
        self.timer.start()

    def wait_ready(self, timeout: float) -> None:
        """Until ``/health/liveliness`` answers 200; RuntimeError with the log's last line if it never does."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited ({self.proc.returncode}): {self.last_line()}")
            with contextlib.suppress(OSError), opener.open(self.base_url + "/health/liveliness", timeout=2) as r:
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"not ready after {timeout:.0f} s: {self.last_line()}")

    def last_line(self) -> str:
        lines = [x.strip() for x in self.log_path.read_text(errors="replace").splitlines() if x.strip()]
        return (lines[-1] if lines else "no output")[:300] + f" (log: {self.log_path})"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self.timer.cancel()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.kill()  # its workers or helpers, if any are left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@dataclass
class Target:
    """Where the client sends its calls, and which processes' CPU counts as the target's."""

    name: str
    base_url: str
    pid: int
    group: bool  # count the whole process group (the gateway's and LiteLLM's workers)

    def cpu(self) -> float:
        return cpu_seconds(self.pid, self.group)


class ChatClient(clients.RawHTTP):
    """The bench's httpx floor, sending `MODEL` so that every target gets the same body."""

    def __init__(self, module: Any, base_url: str, words: int) -> None:
        super().__init__(module, base_url, None)
        self.expected = server.completion_text(words)

    @staticmethod
    def body(fmt: str, stream: bool) -> dict[str, Any]:
        body = clients.RawHTTP.body(fmt, stream)
        body["model"] = MODEL
        return body


# ---------------------------------------------------------------------------------------------- measurements


async def drive(client: ChatClient, level: int, stream: bool, chunks: int, n: int | None = None,
                seconds: float | None = None) -> dict[str, Any]:
    """``n`` calls (or as many as fit in ``seconds``) over ``level`` tasks, each task calling again as soon as its
    last call returns: per-call latency (streams: to the end, and to the first delta), every reply checked."""
    expected = server.stream_text(chunks) if stream else client.expected
    lat: list[int] = []
    ttfc: list[int] = []
    errors: list[str] = []
    bad = 0
    remaining = n if n is not None else 1 << 62
    stop = pc() + int(seconds * 1e9) if seconds is not None else 1 << 62

    async def one() -> None:
        nonlocal bad
        t0 = pc()
        if stream:
            first, parts = 0, []
            async for text in client.stream("openai"):
                if not first:
                    first = pc()
                parts.append(text)
            end = pc()
            ttfc.append((first or end) - t0)
            bad += "".join(parts) != expected
        else:
            bad += await client.complete("openai") != expected
            end = pc()
        lat.append(end - t0)

    async def task() -> None:
        nonlocal remaining
        while remaining > 0 and pc() < stop:
            remaining -= 1
            try:
                await one()
            except Exception as exc:  # counted, never retried
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    c0, t0 = cpu(), pc()
    await asyncio.gather(*(task() for _ in range(level)))
    return {"lat_ns": lat, "ttfc_ns": ttfc, "wall_ns": pc() - t0, "client_cpu_ns": cpu() - c0,
            "n": len(lat) + len(errors), "errors": len(errors), "bad": bad,
            "first_error": errors[0] if errors else None}


async def one_stream(client: ChatClient, chunks: int) -> dict[str, Any]:
    """One long stream. Per chunk: from the second delta to the end, over the chunks after it (the server's pause
    after its first event is not in it); also the whole call."""
    n, first, second, parts = 0, 0, 0, []
    t0 = pc()
    async for text in client.stream("openai"):
        if n == 0:
            first = pc()
        elif n == 1:
            second = pc()
        parts.append(text)
        n += 1
    end = pc()
    valid = "".join(parts) == server.stream_text(chunks)
    return {"ttfc_ns": (first or end) - t0, "total_ns": end - t0, "chunks": n,
            "per_chunk_ns": (end - second) / (n - 2) if second and n > 2 else None, "valid": valid,
            "n": 1, "errors": 0, "bad": int(not valid)}


# ---------------------------------------------------------------------------------------------- the run


class GatewayBench:
    """One run: the processes, the phases in interleaved rounds, every raw figure in ``res``."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.deadline = time.monotonic() + a.max_seconds
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
        self.res: dict[str, Any] = {"notes": [], "failures": [], "latency": {}, "chunks": {}, "rps": {}}
        self.upstream: Server | None = None
        self.gateways: dict[str, GatewayProcess] = {}
        self.litellm: LiteLLMProxy | None = None
        self.targets: dict[str, Target] = {}
        self.clients: dict[str, ChatClient] = {}

    def note(self, msg: str) -> None:
        print(f"  note: {msg}", flush=True)
        self.res["notes"].append(msg)

    def fail(self, msg: str) -> None:
        """A reply check failed: the run's figures cannot be trusted."""
        print(f"  CHECK FAILED: {msg}", flush=True)
        self.res["failures"].append(msg)

    def time_left(self) -> bool:
        return time.monotonic() < self.deadline

    def order(self, names: list[str], r: int) -> list[str]:
        k = r % len(names) if names else 0
        return names[k:] + names[:k]

    # ------------------------------------------------------------------------------------------ processes

    def start(self) -> None:
        a = self.a
        life = a.max_seconds + 120
        self.upstream = up = Server(sys.executable, str(self.workdir), a.words, a.stream_chunks, life, None)
        self.targets[DIRECT] = Target(DIRECT, up.base_url, up.proc.pid, False)
        if a.litellm:
            python = a.litellm_python
            if not python or not os.path.exists(python):
                self.res["litellm_missing"] = f"no interpreter at {python or '(none given)'}"
            else:
                # Started first: it takes seconds to import; the gateways start meanwhile.
                self.litellm = LiteLLMProxy(python, up.base_url, self.workdir / "litellm", clients.API_KEY, life)
        else:
            self.res["litellm_missing"] = "left out (--no-litellm)"
        config = {"keys": [{"name": "bench", "key_env": "BENCH_GATEWAY_KEY"}], "providers": ["openai"],
                  "state": {"sqlite": "ledger.db"}, "settings": {"max_retries": 0, "timeout": 30}}
        env = {**CHILD_ENV, "BENCH_GATEWAY_KEY": clients.API_KEY, "GENAI_OPENAI_BASE_URL": up.base_url + "/v1",
               "GENAI_OPENAI_API_KEY": UPSTREAM_KEY}
        for name, workers in ((GATEWAY, 1), (GATEWAY2, 2)):
            gw = GatewayProcess(config, folder=self.workdir / name, env=env, workers=workers, access_log=False,
                                max_seconds=life)
            self.gateways[name] = gw  # registered before start: stopped even if it fails half-way
            gw.start(timeout=60)
            self.targets[name] = Target(name, gw.base_url, gw.pid, True)
        if self.litellm is not None:
            try:
                self.litellm.wait_ready(a.litellm_timeout)
                self.targets[LITELLM] = Target(LITELLM, self.litellm.base_url, self.litellm.proc.pid, True)
            except RuntimeError as exc:
                self.res["litellm_missing"] = f"did not start: {exc}"
                self.litellm.stop()
                self.litellm = None

    def stop(self) -> None:
        for gw in self.gateways.values():
            with contextlib.suppress(Exception):
                gw.stop()
        if self.litellm is not None:
            self.litellm.stop()
        if self.upstream is not None:
            self.upstream.stop()

    # ------------------------------------------------------------------------------------------ rounds

    async def rounds(self, key: str, names: list[str], run: Callable[[str], Awaitable[dict[str, Any]]],
                     n_rounds: int, prime: Callable[[str], Awaitable[int]]) -> dict[str, list[Any]]:
        """``run`` on every target, round after round, the order rotated; upstream counters and the target's CPU
        around each run. Stored under ``key`` as {target: [per-round result or None]}."""
        assert self.upstream is not None
        data: dict[str, list[Any]] = {n: [None] * n_rounds for n in names}
        for r in range(n_rounds):
            if not self.time_left():
                self.note(f"{key}: time budget reached after {r} rounds")
                break
            for name in self.order(names, r):
                target = self.targets[name]
                self.upstream.call("/stats/reset", {})
                try:
                    primed = await asyncio.wait_for(prime(name), self.a.op_timeout)
                    s0 = target.cpu()
                    out = await asyncio.wait_for(run(name), self.a.op_timeout)
                    out["server_cpu_s"] = target.cpu() - s0
                except Exception as exc:
                    self.fail(f"{key} {name} round {r + 1}: {type(exc).__name__}: {exc}"[:400])
                    continue
                stats = self.upstream.call("/stats")
                # The stats request comes on a connection of its own: not the target's.
                out["server_requests"], out["new_conns"] = stats["requests"], stats["connections"] - 1
                if stats["requests"] != out["n"] + primed:
                    self.note(f"{key} {name} round {r + 1}: the bench server saw {stats['requests']} requests for "
                              f"{out['n'] + primed} calls")
                if out.get("bad"):
                    self.fail(f"{key} {name} round {r + 1}: {out['bad']} replies differ from the server's text")
                if out.get("errors"):
                    self.fail(f"{key} {name} round {r + 1}: {out['errors']} errors, first: {out.get('first_error')}")
                data[name][r] = out
        print(f"  {key}: {n_rounds} rounds", flush=True)
        return data

    def primer(self, stream: bool, level: int) -> Callable[[str], Awaitable[int]]:
        """Untimed calls right before a measurement, at its level: a process that sat idle pays a wake-up on its
        first request, and connections left idle for seconds were closed (uvicorn's keep-alive is 5 s)."""
        async def prime(name: str) -> int:
            n = max(self.a.prime, level) if self.a.prime else 0
            if n:
                out = await drive(self.clients[name], level, stream, self.a.lat_chunks, n=n)
                if out["errors"]:
                    self.note(f"{name}: {out['errors']} of {n} priming calls failed, first: {out['first_error']}")
            return n

        return prime

    # ------------------------------------------------------------------------------------------ phases

    async def warm(self) -> None:
        """Every target: sequential calls, streams, then a burst at each level, so every pool is open and warm."""
        a = self.a
        assert self.upstream is not None
        self.upstream.configure(chunks=a.lat_chunks, gap_ms=0.0)
        for name in list(self.targets):
            client = self.clients[name] = ChatClient(client_module(a.client), self.targets[name].base_url, a.words)
            try:
                for stream in (False, True):
                    for level in LEVELS:
                        out = await asyncio.wait_for(
                            drive(client, level, stream, a.lat_chunks, n=a.warm + level), a.op_timeout)
                        if out["errors"] or out["bad"]:
                            raise RuntimeError(f"{out['errors']} errors, {out['bad']} wrong replies; first error: "
                                               f"{out['first_error']}")
            except Exception as exc:
                if name != LITELLM:
                    raise SetupError(f"warm-up of {name} failed: {type(exc).__name__}: {exc}") from None
                self.res["litellm_missing"] = f"started, but its replies failed: {type(exc).__name__}: {exc}"[:400]
                del self.targets[name]
                await self.clients.pop(name).aclose()
        print("  warm-up done: " + ", ".join(self.targets), flush=True)

    async def phase_latency(self) -> None:
        a = self.a
        assert self.upstream is not None
        self.upstream.configure(chunks=a.lat_chunks, gap_ms=0.0)
        names = [n for n in (DIRECT, GATEWAY, LITELLM) if n in self.targets]
        for mode in MODES:
            stream = mode == "stream"
            self.res["latency"][mode] = {}
            for level in LEVELS:
                async def run(name: str, level: int = level, stream: bool = stream) -> dict[str, Any]:
                    n = a.lat_stream_calls if stream else a.lat_calls
                    return await drive(self.clients[name], level, stream, a.lat_chunks, n=n)

                self.res["latency"][mode][str(level)] = await self.rounds(
                    f"latency {mode} x{level}", names, run, a.lat_rounds, self.primer(stream, level))

    async def phase_chunks(self) -> None:
        a = self.a
        assert self.upstream is not None
        self.upstream.configure(chunks=a.stream_chunks, gap_ms=5.0)
        names = [n for n in (DIRECT, GATEWAY, LITELLM) if n in self.targets]
        try:
            async def run(name: str) -> dict[str, Any]:
                return await one_stream(self.clients[name], a.stream_chunks)

            self.res["chunks"] = await self.rounds(f"stream of {a.stream_chunks} chunks", names, run,
                                                   a.chunk_rounds, self.primer(False, 1))
        finally:
            self.upstream.configure(chunks=a.lat_chunks, gap_ms=0.0)

    async def phase_rps(self) -> None:
        a = self.a
        names = [n for n in (DIRECT, GATEWAY, GATEWAY2, LITELLM) if n in self.targets]

        async def run(name: str) -> dict[str, Any]:
            out = await drive(self.clients[name], a.rps_clients, False, a.lat_chunks, seconds=a.rps_seconds)
            del out["lat_ns"], out["ttfc_ns"]  # not needed; the JSON stays small
            return out

        self.res["rps"] = await self.rounds(f"req/s x{a.rps_clients}", names, run, a.rps_rounds,
                                            self.primer(False, a.rps_clients))

    async def measure(self) -> None:
        try:
            await self.warm()
            if "latency" in self.a.phases:
                print("phase latency", flush=True)
                await self.phase_latency()
            if "chunks" in self.a.phases:
                print("phase chunks", flush=True)
                await self.phase_chunks()
            if "rps" in self.a.phases:
                print("phase rps", flush=True)
                await self.phase_rps()
        finally:
            for client in self.clients.values():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), 10)

    def go(self) -> dict[str, Any]:
        a = self.a
        self.res["started"] = dt.datetime.now().isoformat(timespec="seconds")
        self.res["machine"] = {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                               "platform": platform.platform()}
        self.res["args"] = vars(a)
        self.res["versions"] = versions(sys.executable, MAIN_DISTS)
        if a.litellm and a.litellm_python and os.path.exists(a.litellm_python):
            self.res["litellm_versions"] = versions(a.litellm_python, LITELLM_DISTS)
        try:
            print("starting the bench server, the gateways" + (" and LiteLLM's proxy" if a.litellm else ""),
                  flush=True)
            self.start()
            if LITELLM not in self.targets:
                self.note(f"LiteLLM's proxy not measured: {self.res['litellm_missing']}")
            asyncio.run(self.measure())
        finally:
            self.stop()
        self.res["targets_run"] = list(self.targets)
        self.res["machine"]["loadavg_end"] = os.getloadavg()
        self.res["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        return self.res


MAIN_DISTS = ("genai-engine", "httpx", "httpcore2", "uvicorn", "starlette", "h11", "httptools", "uvloop")
LITELLM_DISTS = ("litellm", "uvicorn", "fastapi", "starlette", "h11", "httptools", "uvloop", "aiohttp")


def versions(python: str, dists: tuple[str, ...]) -> dict[str, str]:
    if python == sys.executable:
        out = {"python": sys.version.split()[0]}
        for d in dists:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                out[d] = importlib.metadata.version(d)
        return out
    code = ("import importlib.metadata as m, json, sys\nout = {'python': sys.version.split()[0]}\n"
            f"for d in {list(dists)!r}:\n    try: out[d] = m.version(d)\n    except Exception: pass\n"
            "print(json.dumps(out))")
    r = subprocess.run([python, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout) if r.returncode == 0 else {}


# ---------------------------------------------------------------------------------------------- summary


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    S: dict[str, Any] = {"latency": {}, "chunks": {}, "rps": {}}
    for mode, levels in res["latency"].items():
        S["latency"][mode] = {}
        for level, data in levels.items():
            rows: dict[str, Any] = {}
            for name, rounds in data.items():
                lat = [x / 1e3 for o in rounds if o for x in o["lat_ns"]]
                if not lat:
                    continue
                ttfc = [x / 1e3 for o in rounds if o for x in o["ttfc_ns"]]
                rows[name] = {"calls": len(lat), "p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99),
                              "ttfc_p50_us": pct(ttfc, 0.5), "errors": sum(o["errors"] + o["bad"] for o in rounds if o)}
            base = rows.get(DIRECT)
            for row in rows.values():
                for q in ("p50", "p99"):
                    row[f"add_{q}_us"] = None if base is None else row[f"{q}_us"] - base[f"{q}_us"]
                row["x_direct"] = None if base is None else row["p50_us"] / base["p50_us"]
            S["latency"][mode][level] = rows

    def per_round(data: dict[str, list[Any]], name: str, f: Callable[[dict[str, Any]], float | None]) -> list[
            float | None]:
        return [f(o) if o else None for o in data.get(name, [])]

    data = res["chunks"]
    for name in data:
        pcs = per_round(data, name, lambda o: o["per_chunk_ns"] / 1e3 if o["valid"] and o["per_chunk_ns"] else None)
        if not any(x is not None for x in pcs):
            continue
        base = per_round(data, DIRECT, lambda o: o["per_chunk_ns"] / 1e3 if o["per_chunk_ns"] else None)
        total = per_round(data, name, lambda o: o["total_ns"] / 1e3)
        base_total = per_round(data, DIRECT, lambda o: o["total_ns"] / 1e3)
        chunks = median(per_round(data, name, lambda o: o["chunks"])) or 1.0
        spread = paired(total, base_total, lambda x, y: x - y)
        S["chunks"][name] = {"chunk_us": median(pcs), "x_direct": paired(pcs, base, lambda x, y: x / y),
                             "diff_us": paired(pcs, base, lambda x, y: x - y),
                             "total_ms": (median(total) or 0) / 1e3,
                             "whole_diff_us": None if spread is None else spread / chunks,
                             "ttfc_ms": (median(per_round(data, name, lambda o: o["ttfc_ns"] / 1e3)) or 0) / 1e3,
                             "chunks": chunks}
    data = res["rps"]

    def rate(o: dict[str, Any]) -> float | None:
        return o["n"] / (o["wall_ns"] / 1e9) if not o["errors"] else None

    for name in data:
        rps = per_round(data, name, rate)
        if not any(x is not None for x in rps):
            continue
        S["rps"][name] = {
            "rps": median(rps), "x_direct": paired(rps, per_round(data, DIRECT, rate), lambda x, y: x / y),
            "x_litellm": paired(rps, per_round(data, LITELLM, rate), lambda x, y: x / y),
            "server_cpu_us": median(per_round(data, name, lambda o: o["server_cpu_s"] * 1e6 / o["n"])),
            "server_busy": median(per_round(data, name, lambda o: o["server_cpu_s"] / (o["wall_ns"] / 1e9))),
            "client_cpu_us": median(per_round(data, name, lambda o: o["client_cpu_ns"] / 1e3 / o["n"])),
            "client_busy": median(per_round(data, name, lambda o: o["client_cpu_ns"] / o["wall_ns"])),
            "new_conns": median(per_round(data, name, lambda o: o["new_conns"])),
            "calls": sum(o["n"] for o in data[name] if o),
            "errors": sum(o["errors"] + o["bad"] for o in data[name] if o)}
    return S


def ms(us: float | None) -> str:
    return fmt(None if us is None else us / 1e3, "+.2f") + " ms"


def targets(S: dict[str, Any], res: dict[str, Any], a: argparse.Namespace) -> list[dict[str, str]]:
    """Each target with this run's figure and met / missed / n/a."""
    out: list[dict[str, str]] = []

    def add(name: str, ok: bool | None, figure: str, why: str) -> None:
        out.append({"target": name, "figure": figure,
                    "status": f"n/a ({why})" if ok is None else ("met" if ok else "missed")})

    row = S["latency"].get("plain", {}).get("64", {}).get(GATEWAY)
    add("non-streamed, 64 concurrent clients: gateway p50 - direct p50 <= 1 ms",
        None if row is None or row["add_p50_us"] is None else row["add_p50_us"] <= 1000,
        "-" if row is None else f"{ms(row['add_p50_us'])} (p99 {ms(row['add_p99_us'])}; 1 client: "
        f"{ms(S['latency']['plain'].get('1', {}).get(GATEWAY, {}).get('add_p50_us'))})",
        "latency phase not run")
    gw, ll, gw2 = (S["rps"].get(n) for n in (GATEWAY, LITELLM, GATEWAY2))
    ratio = None if gw is None else gw["x_litellm"]
    figure = "-" if gw is None else f"gateway {fmt(gw['rps'], '.0f')} vs LiteLLM " + (
        f"{fmt(ll['rps'], '.0f')} req/s = {fmt(ratio, '.1f')}x" if ll else "- req/s")
    if gw2 is not None and gw2.get("x_litellm") is not None:
        figure += f" (2 workers: {fmt(gw2['x_litellm'], '.1f')}x)"
    if gw is not None and ll is not None and gw["server_cpu_us"] and ll["server_cpu_us"]:
        figure += (f"; CPU per request {fmt(gw['server_cpu_us'], '.0f')} vs {fmt(ll['server_cpu_us'], '.0f')} µs = "
                   f"{ll['server_cpu_us'] / gw['server_cpu_us']:.1f}x less")
    why = ("LiteLLM's proxy " + res.get("litellm_missing", "not measured")) if gw is not None else "rps phase not run"
    add("req/s, 1 worker each, 64 clients: gateway >= 5x LiteLLM's proxy", None if ratio is None else ratio >= 5,
        figure, why)
    ch = S["chunks"].get(GATEWAY)
    add("stream: gateway <= 20 µs per chunk over direct", None if ch is None or ch["diff_us"] is None
        else ch["diff_us"] <= 20, "-" if ch is None else f"{fmt(ch['diff_us'], '+.1f')} µs/chunk",
        "chunks phase not run")
    return out


# ---------------------------------------------------------------------------------------------- report


def stack(v: dict[str, str]) -> str:
    """The event loop and HTTP parser uvicorn picks with what is installed (loop and http "auto")."""
    return f"{'uvloop' if 'uvloop' in v else 'asyncio'} + {'httptools' if 'httptools' in v else 'h11'}"


def report(res: dict[str, Any], S: dict[str, Any], T: list[dict[str, str]], a: argparse.Namespace) -> str:
    m, v, lv = res["machine"], res["versions"], res.get("litellm_versions", {})
    lines = [f"# Gateway overhead ({res['started']}, Python {v.get('python', '?')}, {m['cpus']} CPUs, load "
             f"{m['loadavg_start'][0]:.2f}->{m.get('loadavg_end', [0])[0]:.2f}, not pinned"
             f"{', QUICK' if a.quick else ''})", "",
             f"One client (the bench's httpx floor code over `{a.client}`) posts the same OpenAI chat JSON to the "
             "bench server directly and through each server under test, in interleaved rounds with the order "
             "rotated. Percentiles are over "
             "every call of every round (warm-up and priming excluded); `+` = the target's figure minus direct's "
             "at the same percentile, `x direct` = the ratio. Reply text checked on every call.", "",
             "Versions: " + ", ".join(f"{k} {x}" for k, x in sorted(v.items()) if k != "python")
             + (" | LiteLLM's venv: " + ", ".join(f"{k} {x}" for k, x in sorted(lv.items())) if lv else ""), "",
             f"Servers: `genai serve` on uvicorn ({stack(v)}), access log off, one key with no budget or rate "
             "limit, the ledger in SQLite as shipped, `max_retries: 0`. "
             + (f"LiteLLM's proxy on uvicorn ({stack(lv)}), `--num_workers 1`, a master key, no database, "
                "`num_retries: 0`, `LITELLM_LOG=ERROR` (no access log), the local cost map."
                if LITELLM in res.get("targets_run", []) else
                f"LiteLLM's proxy: **not measured**: {res.get('litellm_missing', '?')}.")]

    def table(title: str, head: list[str], rows: list[list[str]]) -> None:
        if rows:
            lines.extend(["", f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)])
            lines.extend("| " + " | ".join(r) + " |" for r in rows)

    missing = LITELLM not in res.get("targets_run", []) and a.litellm

    def not_run(cols: int) -> list[list[str]]:
        return [[LABELS[LITELLM], *(["not run"] + ["-"] * (cols - 2))]] if missing else []

    for mode, title in (("plain", "Non-streamed latency"), ("stream", "Streamed latency (to the stream's end)")):
        calls = a.lat_stream_calls if mode == "stream" else a.lat_calls
        rows = []
        for level in map(str, LEVELS):
            for name, s in S["latency"].get(mode, {}).get(level, {}).items():
                cells = [LABELS[name], level, str(s["calls"])]
                if mode == "stream":
                    cells.append(fmt(s["ttfc_p50_us"] / 1e3 if s["ttfc_p50_us"] else None, ".2f"))
                cells += [fmt(s["p50_us"] / 1e3, ".2f"), fmt(s["p99_us"] / 1e3, ".2f"), fmt(s["x_direct"], ".2f"),
                          fmt(s["add_p50_us"], "+.0f"), fmt(s["add_p99_us"], "+.0f"), str(s["errors"])]
                rows.append(cells)
        head = ["target", "clients", "calls", *(["TTFC p50 ms"] if mode == "stream" else []), "p50 ms", "p99 ms",
                "x direct (p50)", "+p50 µs", "+p99 µs", "errors"]
        extra = f", {a.lat_chunks} chunks per stream" if mode == "stream" else ""
        table(f"{title}: {calls} calls per round at each level, {a.lat_rounds} rounds{extra}", head,
              rows + (not_run(len(head)) if rows else []))
    if S["latency"]:
        lines += ["", "With 64 clients the load is closed-loop (each client calls again as soon as its reply is in), "
                  "so latency there is mostly waiting in line: about 64 / (req/s) of the slowest stage. The added "
                  "latency at 64 is what the target's throughput costs, not the work of one call (that is the "
                  "1-client row)."]
    rows = [[LABELS[name], fmt(s["chunk_us"], ".2f"), fmt(s["x_direct"], ".2f"), fmt(s["diff_us"], "+.2f"),
             fmt(s["ttfc_ms"], ".2f"), fmt(s["total_ms"], ".1f"), fmt(s["whole_diff_us"], "+.2f")]
            for name, s in S["chunks"].items()]
    table(f"Per-chunk stream cost: one stream of {a.stream_chunks} chunks per round, {a.chunk_rounds} rounds "
          "(medians of per-round figures)",
          ["target", "µs/chunk", "x direct", "+µs/chunk", "TTFC ms", "whole stream ms",
           "(whole - direct) / chunks µs"], rows + (not_run(7) if rows else []))
    if S["chunks"]:
        lines += ["", "`µs/chunk` is taken from the second delta to the end (the server pauses 5 ms after its first "
                  "event); the last column spreads the whole call's difference, the fixed cost of a request "
                  "included, over the chunks."]
    rows = []
    for name, s in S["rps"].items():
        rows.append([LABELS[name], fmt(s["rps"], ".0f"), fmt(s["x_direct"], ".2f"),
                     "-" if name == LITELLM else fmt(s["x_litellm"], ".1f"),
                     f"{fmt(s['server_cpu_us'], '.0f')} ({fmt(s['server_busy'] * 100, '.0f')}%)",
                     f"{fmt(s['client_cpu_us'], '.0f')} ({fmt(s['client_busy'] * 100, '.0f')}%)",
                     fmt(s["new_conns"], "g"), str(s["calls"]), str(s["errors"])])
    table(f"Requests per second: non-streamed, {a.rps_clients} clients, {a.rps_seconds:g} s per round, "
          f"{a.rps_rounds} rounds (medians; ratios of per-round pairs)",
          ["target", "req/s", "x direct", "x LiteLLM", "server CPU µs/req (busy)", "client CPU µs/req (busy)",
           "new conns to the bench server/round", "calls", "errors"], rows + (not_run(9) if rows else []))
    if S["rps"]:
        lines += ["", "`server CPU` is the CPU of the server under test's processes (for `direct`, the bench server; "
                  "for the others, not including the bench server behind them) per request, and in brackets the "
                  "share of one core it kept busy; the same for the client. On a 2-CPU machine the client, the "
                  "bench server and the server under test share the two cores."]
    return report_end(table, lines, T, res)


# ---------------------------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    default_ll = ROOT / ".venv-litellm" / "bin" / "python"
    p = argparse.ArgumentParser(prog="python -m bench gateway", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny counts (the smoke test); figures mean nothing")
    p.add_argument("--litellm-python", default=str(default_ll) if default_ll.exists() else "",
                   help="interpreter with litellm[proxy] installed (default .venv-litellm/bin/python)")
    p.add_argument("--no-litellm", dest="litellm", action="store_false", help="leave LiteLLM's proxy out")
    p.add_argument("--client", choices=("httpx2", "httpx"), default="httpx2",
                   help="the load client's library, the same code over either (httpx's own pool costs the client "
                        "several times more CPU at 64 concurrent calls; see bench/README.md)")
    p.add_argument("--phases", default=",".join(PHASES), help="subset of " + ",".join(PHASES))
    p.add_argument("--out-dir", default=str(RESULTS), help="where the JSON and Markdown results go")
    p.add_argument("--max-seconds", type=float, default=600.0, help="budget for the whole run")
    p.add_argument("--op-timeout", type=float, default=180.0, help="seconds for one measured run")
    p.add_argument("--litellm-timeout", type=float, default=120.0, help="seconds for LiteLLM's proxy to start")
    g = p.add_argument_group("counts")
    g.add_argument("--warm", type=int, default=20, help="warm-up calls per target, mode and level (+ the level)")
    g.add_argument("--prime", type=int, default=5, help="untimed calls right before each measurement")
    g.add_argument("--words", type=int, default=32, help="words in a non-streamed reply")
    g.add_argument("--lat-calls", type=int, default=200, help="non-streamed calls per target, round and level "
                                                               "(1 and 64 clients)")
    g.add_argument("--lat-stream-calls", type=int, default=128, help="streamed calls per target, round and level")
    g.add_argument("--lat-rounds", type=int, default=3)
    g.add_argument("--lat-chunks", type=int, default=20, help="chunks per stream in the latency phase")
    g.add_argument("--stream-chunks", type=int, default=2000, help="chunks of the stream timed per chunk")
    g.add_argument("--chunk-rounds", type=int, default=5)
    g.add_argument("--rps-clients", type=int, default=64)
    g.add_argument("--rps-seconds", type=float, default=4.0, help="length of one round of the req/s phase")
    g.add_argument("--rps-rounds", type=int, default=3)
    a = p.parse_args(argv)
    if a.quick:
        args = argv if argv is not None else sys.argv[1:]
        given = {arg.split("=")[0].lstrip("-").replace("-", "_") for arg in args}
        for key, value in QUICK.items():
            if key not in given:
                setattr(a, key, value)
    a.phases = [x for x in a.phases.split(",") if x]
    for ph in a.phases:
        if ph not in PHASES:
            p.error(f"unknown phase {ph}")
    return a


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops every process the same way as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    os.environ.update({k: CHILD_ENV[k] for k in ("NO_PROXY", "no_proxy")})  # loopback is never proxied
    for sig in (signal.SIGINT, signal.SIGTERM):  # also in the event loop: asyncio.run would only cancel its task
        signal.signal(sig, _interrupt)
    bench = GatewayBench(a)
    try:
        res = bench.go()
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        return 130
    except (SetupError, SystemExit) as exc:
        print(f"{exc} (logs in {bench.workdir})", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(f"failed; every process stopped (logs in {bench.workdir})", file=sys.stderr)
        return 2
    S = summarize(res)
    T = targets(S, res, a)
    res["summary"], res["targets"] = S, T
    return save(res, report(res, S, T, a), a, "gateway", f"processes' logs in {bench.workdir}")


if __name__ == "__main__":
    sys.exit(main())
