"""The engine's own overhead, measured side by side with raw httpx and the libraries people use.

    python -m bench                 # full run, ~5 min on 2 cores; prints the table, saves bench/results/
    python -m bench --quick         # tiny counts, ~20 s: checks that everything runs
    python -m bench --no-peers      # only the engine and the httpx floor

Starts the bench server (bench/server.py) and one worker process per client (bench/worker.py),
then runs the phases with rounds interleaved and the client order rotated, so that drift of a
shared machine hits every client alike. Ratios and differences are taken pair by pair within a
round (client vs the httpx floor) and the median over rounds is reported. Peers (httpx2, the
openai SDK, litellm, and the engine over other transports) run from ``--peer-python``
(default .venv-bench) and are skipped with a note when they do not import there.

Every reply's text is checked against the server's, every loop has a fixed count, every worker
command a timeout, the whole run a time budget, and the server stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .clients import CLIENTS, FORMATS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FLOOR = "httpx"
ENGINE = "engine"
PHASES = ("import", "micro", "seq", "mock", "stream", "conc", "hold")
HOLD_CLIENTS = ("httpx", "engine", "engine+httpx", "engine+pool", "httpx2", "engine+aiohttp", "openai")

# Environment for every child: no network fetches or telemetry from peers, loopback never proxied.
CHILD_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
}

LIST_CODE = "import engine; engine.list_providers()"
COMPILE_CODE = ("import engine; from engine.registry import default_registry as d; r = d(); "
                "[r.compiled(n) for n in r.names()]")
MODULES_CODE = """
import json, sys
import engine
names = engine.list_providers()
after_list = set(sys.modules)
from engine.registry import default_registry
r = default_registry()
for n in r.names():
    r.compiled(n)
heavy = ("boto3", "botocore", "httpx", "jinja2", "pydantic", "pydantic_settings", "jsonpath_ng", "yaml", "dotenv")
print(json.dumps({"providers": names, "modules_after_list": len(after_list), "modules_after_compile": len(sys.modules),
                  "after_list": sorted(m for m in heavy if m in after_list),
                  "after_compile": sorted(m for m in heavy if m in sys.modules)}))
"""

QUICK = {"import_runs": 1, "import_warmup": 0, "micro_n": 50, "warm": 2, "seq_calls": 20, "seq_round": 10,
         "mock_calls": 20, "stream_chunks": 50, "stream_rounds": 2, "conc_levels": "8,16", "conc_total": 40,
         "conc_rounds": 1, "hold": 20, "hold_chunks": 5, "hold_rounds": 2, "prime": 1}


# ---------------------------------------------------------------------------------------------- statistics


def median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def pct(xs: Sequence[float], q: float) -> float | None:
    vals = sorted(xs)
    if not vals:
        return None
    k = (len(vals) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def paired(a: Sequence[float | None], b: Sequence[float | None], fn: Callable[[float, float], float]) -> float | None:
    """Median over rounds of fn(a_r, b_r), for the rounds where both were measured."""
    return median([fn(x, y) for x, y in zip(a, b, strict=False) if x is not None and y is not None])


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


# ---------------------------------------------------------------------------------------------- processes


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env.update(CHILD_ENV)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _affinity(cpus: set[int] | None) -> Callable[[], None] | None:
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# Appended to every timed command: the peak RSS as the child's own kernel counter says. rusage's
# ru_maxrss would also count the parent's memory image the child had between fork and exec.
HWM_CODE = "\nprint('HWM', open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"


def timed_process(argv: list[str], cwd: str, timeout: float, cpus: set[int] | None) -> dict[str, Any]:
    """Run ``python -c CODE`` to completion: wall time, and peak RSS reported by the child itself."""
    argv = [*argv[:-1], argv[-1] + HWM_CODE]
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(argv, cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, preexec_fn=_affinity(cpus))
        timer = threading.Timer(timeout, _kill, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter_ns() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-500:].decode(errors="replace")
        out.seek(0)
        hwm = [line.split()[1] for line in out.read().decode(errors="replace").splitlines() if line.startswith("HWM ")]
    return {"wall_ms": wall / 1e6, "rss_mb": int(hwm[-1]) / 1024 if hwm else None, "rc": proc.returncode,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "stderr": tail if proc.returncode else ""}


class Server:
    """The bench server in its own process; stats and stream shape over HTTP."""

    def __init__(self, python: str, cwd: str, words: int, chunks: int, max_seconds: float,
                 cpus: set[int] | None) -> None:
        port_file = os.path.join(cwd, "server.port")
        self.log = open(os.path.join(cwd, "server.log"), "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [python, "-m", "bench.server", "--port-file", port_file, "--words", str(words), "--chunks", str(chunks),
             "--max-seconds", str(int(max_seconds))],
            cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=_affinity(cpus))
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"bench server did not start; see {self.log.name}")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method="GET" if data is None else "POST")
        with self.opener.open(request, timeout=10) as r:
            return json.loads(r.read())

    def configure(self, **kw: Any) -> None:
        self.call("/config", kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _kill(self.proc.pid)
                self.proc.wait(5)
        self.log.close()


class WorkerProc:
    """A client's worker process, spoken to with JSON lines; every read has a deadline."""

    def __init__(self, python: str, name: str, server: Server, a: argparse.Namespace, cwd: str,
                 cpus: set[int] | None) -> None:
        self.name = name
        self.log_path = os.path.join(cwd, f"worker-{name}.log")
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        argv = [python, "-m", "bench.worker", "--client", name, "--base-url", server.base_url,
                "--words", str(a.words), "--chunks", str(a.stream_chunks), "--warm", str(a.warm)]
        self.proc = subprocess.Popen(argv, cwd=cwd, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, bufsize=0, preexec_fn=_affinity(cpus))
        self.buf = b""
        self.dead: str | None = None

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill(f"no answer within {timeout:.0f} s")
                    raise TimeoutError(self.dead)
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    self.dead = f"worker exited (rc={self.proc.wait()}); see {self.log_path}"
                    raise RuntimeError(self.dead)
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def call(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.dead:
            raise RuntimeError(self.dead)
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({**cmd, "timeout": timeout}) + "\n").encode())
        return self.read(timeout + 15)

    def kill(self, why: str) -> None:
        self.dead = why
        if self.proc.poll() is None:
            _kill(self.proc.pid)
            self.proc.wait(5)

    def close(self) -> None:
        if self.proc.poll() is None and not self.dead:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"op": "exit"}\n')
                self.read(20)
                self.proc.wait(10)
            except Exception:
                pass
        if self.proc.poll() is None:
            _kill(self.proc.pid)
            self.proc.wait(5)
        self.log.close()


# ---------------------------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.deadline = time.monotonic() + a.max_seconds
        pin = a.pin and (os.cpu_count() or 1) >= 2
        self.client_cpus, self.server_cpus = ({0}, {1}) if pin else (None, None)
        self.res: dict[str, Any] = {"notes": [], "failures": []}
        self.workdir = tempfile.mkdtemp(prefix="bench-")
        self.clients: list[str] = []
        self.workers: dict[str, WorkerProc] = {}

    def note(self, msg: str) -> None:
        print(f"  note: {msg}", flush=True)
        self.res["notes"].append(msg)

    def fail(self, msg: str) -> None:
        """A reply check failed: the run's figures cannot be trusted."""
        print(f"  CHECK FAILED: {msg}", flush=True)
        self.res["failures"].append(msg)

    def time_left(self) -> bool:
        return time.monotonic() < self.deadline

    def python_for(self, name: str) -> str:
        return self.a.peer_python if CLIENTS[name].peer else self.a.python

    # ------------------------------------------------------------------------------------------ setup

    def choose_clients(self) -> None:
        wanted = self.a.clients or list(CLIENTS)
        for name in wanted:
            spec = CLIENTS[name]
            if spec.peer and self.a.no_peers:
                continue
            python = self.python_for(name)
            if not python or not os.path.exists(python):
                self.note(f"skipping {name}: no peer interpreter ({python or 'none'}; see bench/README.md)")
                continue
            r = subprocess.run([python, "-c", spec.probe], cwd=self.workdir, env=child_env(), capture_output=True,
                               text=True, timeout=self.a.proc_timeout)
            if r.returncode != 0:
                last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
                self.note(f"skipping {name}: `{spec.probe}` fails in {python}: {last}")
                continue
            self.clients.append(name)
        for name in (FLOOR, ENGINE):
            if name not in self.clients:
                raise SystemExit(f"{name} must be among the clients")
        self.clients = [FLOOR, ENGINE] + [c for c in self.clients if c not in (FLOOR, ENGINE)]

    def versions(self) -> None:
        dists = ["genai-engine", "httpx", "httpcore", "httpx2", "httpcore2", "aiohttp", "httpx-aiohttp", "openai",
                 "litellm", "pydantic", "jinja2"]
        code = ("import importlib.metadata as m, json, sys\nout = {'python': sys.version.split()[0]}\n"
                f"for d in {dists!r}:\n    try: out[d] = m.version(d)\n    except Exception: pass\n"
                "print(json.dumps(out))")
        self.res["versions"] = {}
        for python in sorted({self.python_for(c) for c in self.clients}):
            out = subprocess.run([python, "-c", code], cwd=self.workdir, env=child_env(), capture_output=True,
                                 text=True, timeout=60)
            self.res["versions"][python] = json.loads(out.stdout) if out.returncode == 0 else {}

    def order(self, names: list[str], r: int) -> list[str]:
        k = r % len(names) if names else 0
        return names[k:] + names[:k]

    # ------------------------------------------------------------------------------------------ phases

    def phase_import(self) -> None:
        a = self.a
        cmds = {"(bare python)": [a.python, "-c", "pass"], "engine: import + list": [a.python, "-c", LIST_CODE],
                "engine: + compile all": [a.python, "-c", COMPILE_CODE], "httpx": [a.python, "-c", "import httpx"]}
        for name, client, module in (("httpx2", "httpx2", "httpx2"), ("httpcore2 (engine's pool)", "engine",
                                      "httpx, httpcore2"), ("aiohttp transport", "engine+aiohttp", "httpx_aiohttp"),
                                     ("openai", "openai", "openai"), ("litellm", "litellm", "litellm")):
            if client in self.clients:
                cmds[name] = [self.python_for(client), "-c", f"import {module}"]
        rows: dict[str, list[dict[str, Any]]] = {k: [] for k in cmds}
        names = list(cmds)
        for rep in range(a.import_warmup + a.import_runs):
            if not self.time_left():
                self.note(f"import: time budget reached after {rep} runs")
                break
            for name in self.order(names, rep):
                r = timed_process(cmds[name], self.workdir, a.proc_timeout, self.client_cpus)
                if r["rc"] != 0:
                    self.fail(f"import {name}: exit {r['rc']}: {r['stderr'][-300:]}")
                if rep >= a.import_warmup:
                    rows[name].append(r)
        self.res["import"] = rows
        out = subprocess.run([a.python, "-c", MODULES_CODE], cwd=self.workdir, env=child_env(), capture_output=True,
                             text=True, timeout=a.proc_timeout)
        if out.returncode != 0:
            self.fail(f"module check: {out.stderr[-300:]}")
        else:
            self.res["modules"] = json.loads(out.stdout)

    def rounds(self, key: str, names: list[str], cmd: dict[str, Any], n_rounds: int, server: Server,
               expect: int | None) -> None:
        """Run cmd on every client, round after round, order rotated; server counters per run."""
        data: dict[str, list[Any]] = {n: [None] * n_rounds for n in names}
        for r in range(n_rounds):
            if not self.time_left():
                self.note(f"{key}: time budget reached after {r} rounds")
                break
            for name in self.order(names, r):
                w = self.workers.get(name)
                if w is None or w.dead:
                    continue
                server.call("/stats/reset", {})
                try:
                    out = w.call(cmd, self.a.op_timeout)
                except Exception as exc:
                    self.fail(f"{key} {name}: {exc}")
                    continue
                if not out.get("ok"):
                    self.fail(f"{key} {name}: {out.get('error')}")
                    continue
                if out.get("unsupported"):
                    continue
                stats = server.call("/stats")
                # The stats request itself arrives on a connection of its own: not the client's.
                out["server_requests"], out["new_conns"] = stats["requests"], stats["connections"] - 1
                out["held_max"] = stats["held_max"]
                if expect is not None and stats["requests"] != expect:
                    self.note(f"{key} {name} round {r + 1}: server saw {stats['requests']} requests for {expect} calls")
                if out.get("bad") or out.get("valid") is False:
                    self.fail(f"{key} {name} round {r + 1}: reply text differs from the server's")
                if out.get("errors"):
                    self.fail(f"{key} {name} round {r + 1}: {out['errors']} errors, first: {out.get('first_error')}")
                data[name][r] = out
        self.res[key] = data
        print(f"  {key}: {n_rounds} rounds", flush=True)

    def start_workers(self, server: Server) -> None:
        for name in self.clients:  # one at a time, so warm-ups do not overlap
            w = WorkerProc(self.python_for(name), name, server, self.a, self.workdir, self.client_cpus)
            try:
                ready = w.read(self.a.proc_timeout)
            except Exception as exc:
                self.fail(f"worker {name} did not start: {exc}")
                w.close()
                continue
            if not ready.get("ready"):
                self.fail(f"worker {name} setup failed: {ready.get('error')}")
                w.kill("setup failed")
                w.close()
                continue
            self.workers[name] = w
        self.res["workers_ready"] = list(self.workers)

    def go(self) -> dict[str, Any]:
        a = self.a
        if self.client_cpus:
            os.sched_setaffinity(0, self.client_cpus)
        self.res["started"] = dt.datetime.now().isoformat(timespec="seconds")
        self.res["machine"] = {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                               "platform": platform.platform(), "pinned": bool(self.client_cpus)}
        self.res["args"] = vars(a)
        self.choose_clients()
        self.res["clients"] = {c: {"note": CLIENTS[c].note, "python": self.python_for(c)} for c in self.clients}
        self.versions()
        print("clients:", ", ".join(self.clients), flush=True)
        phases = a.phases
        if "import" in phases:
            print("phase import", flush=True)
            self.phase_import()
        server = Server(a.python, self.workdir, a.words, a.stream_chunks, a.max_seconds + 120, self.server_cpus)
        try:
            print("starting workers", flush=True)
            self.start_workers(server)
            self.run_phases(server)
            self.res["workers_end"] = {}
            for name, w in self.workers.items():
                try:
                    self.res["workers_end"][name] = w.call({"op": "info"}, 30)
                except Exception as exc:
                    self.res["workers_end"][name] = {"error": str(exc)}
        finally:
            for w in self.workers.values():
                w.close()
            server.stop()
        self.res["machine"]["loadavg_end"] = os.getloadavg()
        self.res["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        return self.res

    def run_phases(self, server: Server) -> None:
        a, phases = self.a, self.a.phases
        live = [c for c in self.clients if c in self.workers]
        if "micro" in phases and ENGINE in self.workers:
            print("phase micro", flush=True)
            out = self.workers[ENGINE].call({"op": "micro", "n": a.micro_n}, a.op_timeout)
            if not out.get("ok"):
                self.fail(f"micro: {out.get('error')}")
            else:
                self.res["micro"] = out["providers"]
                for name, row in out["providers"].items():
                    if row.get("valid") is False:
                        self.fail(f"micro {name}: extracted text differs from the recorded response")
                    if "error" in row:
                        self.note(f"micro {name}: {row['error']}")
        if "seq" in phases:
            print("phase seq", flush=True)
            self.rounds("seq", live, {"op": "seq", "n": a.seq_round, "prime": a.prime},
                        max(1, a.seq_calls // a.seq_round), server, a.seq_round + a.prime)
        if "mock" in phases:
            print("phase mock", flush=True)
            mockable = [c for c in live if not CLIENTS[c].sockets_only]
            self.rounds("mock_seq", mockable, {"op": "mock_seq", "n": a.seq_round, "prime": a.prime, "warm": a.warm},
                        max(1, a.mock_calls // a.seq_round), server, None)
            for f in FORMATS:
                names = [c for c in mockable if f in CLIENTS[c].formats]
                self.rounds(f"mock_stream_{f}", names, {"op": "mock_stream", "fmt": f, "prime": a.prime},
                            a.stream_rounds, server, None)
        if "stream" in phases:
            print("phase stream", flush=True)
            for f in FORMATS:
                names = [c for c in live if f in CLIENTS[c].formats]
                self.rounds(f"stream_{f}", names, {"op": "stream", "fmt": f, "prime": a.prime}, a.stream_rounds,
                            server, 1 + a.prime)
        if "conc" in phases:
            print("phase conc", flush=True)
            for level in a.conc_levels:
                self.rounds(f"conc_{level}", live, {"op": "conc", "total": a.conc_total, "conc": level,
                                                     "prime": a.prime}, a.conc_rounds, server, a.conc_total + a.prime)
        if "hold" in phases:
            print("phase hold", flush=True)
            server.configure(chunks=a.hold_chunks, gap_ms=0.0, hold=a.hold, hold_ms=a.hold_ms)
            try:
                self.rounds("hold", [c for c in live if c in HOLD_CLIENTS],
                            {"op": "hold", "n": a.hold, "chunks": a.hold_chunks, "prime": a.prime},
                            a.hold_rounds, server, a.hold + a.prime)
            finally:
                server.configure(chunks=a.stream_chunks, gap_ms=5.0, hold=0)


# ---------------------------------------------------------------------------------------------- summary


def summarize(res: dict[str, Any], clients: list[str]) -> dict[str, Any]:
    """Per-client figures; ratios and differences are medians of per-round pairs with the floor."""
    S: dict[str, Any] = {}

    def per_round(key: str, name: str, f: Callable[[dict[str, Any]], float | None]) -> list[float | None]:
        return [f(o) if o else None for o in res.get(key, {}).get(name, [])]

    if "import" in res:
        imp = res["import"]
        bare = [r["wall_ms"] for r in imp.get("(bare python)", [])]
        floor = [r["wall_ms"] for r in imp.get(FLOOR, [])]
        S["import"] = {}
        for name, rows in imp.items():
            wall = [r["wall_ms"] for r in rows]
            S["import"][name] = {"ms": median(wall), "net_ms": paired(wall, bare, lambda x, y: x - y),
                                 "x_httpx": paired(wall, floor, lambda x, y: x / y),
                                 "rss_mb": median([r["rss_mb"] for r in rows]),
                                 "rss_max_mb": max((r["rss_mb"] for r in rows if r["rss_mb"]), default=None)}
    for key in [k for k in res if k == "seq" or k == "mock_seq"]:
        S[key] = {}
        for name in res[key]:
            lat = [x for o in res[key][name] if o for x in o["lat_ns"]]
            if not lat:
                continue
            med = per_round(key, name, lambda o: statistics.median(o["lat_ns"]) / 1e3)
            base = per_round(key, FLOOR, lambda o: statistics.median(o["lat_ns"]) / 1e3)
            cpu = per_round(key, name, lambda o: o["cpu_ns"] / len(o["lat_ns"]) / 1e3)
            cpu_base = per_round(key, FLOOR, lambda o: o["cpu_ns"] / len(o["lat_ns"]) / 1e3)
            S[key][name] = {"calls": len(lat), "median_us": statistics.median(lat) / 1e3,
                            "p99_us": (pct(lat, 0.99) or 0) / 1e3, "x_httpx": paired(med, base, lambda x, y: x / y),
                            "diff_us": paired(med, base, lambda x, y: x - y), "cpu_us": median(cpu),
                            "cpu_diff_us": paired(cpu, cpu_base, lambda x, y: x - y),
                            "new_conns": median(per_round(key, name, lambda o: o.get("new_conns")))}
    for key in [k for k in res if k.startswith(("stream_", "mock_stream_"))]:
        S[key] = {}
        # In-process the whole body is one piece, and a client may parse all of it before its first
        # delta: there, per chunk is the whole call over the chunks. Over sockets it is taken from the
        # second delta on, so that the server's pause after the first event is not in it.
        field = "total_ns" if key.startswith("mock_") else "per_chunk_ns"

        def chunk_us(o: dict[str, Any], field: str = field) -> float | None:
            if not o[field] or not o["chunks"]:
                return None
            return o[field] / 1e3 / (o["chunks"] if field == "total_ns" else 1)

        for name in res[key]:
            pcs = per_round(key, name, lambda o: chunk_us(o) if o["valid"] else None)
            if not any(x is not None for x in pcs):
                continue
            base = per_round(key, FLOOR, chunk_us)
            S[key][name] = {"chunk_us": median(pcs), "x_httpx": paired(pcs, base, lambda x, y: x / y),
                            "diff_us": paired(pcs, base, lambda x, y: x - y),
                            "ttfc_ms": median(per_round(key, name, lambda o: o["ttfc_ns"] / 1e6)),
                            "total_ms": median(per_round(key, name, lambda o: o["total_ns"] / 1e6)),
                            "chunks": median(per_round(key, name, lambda o: o["chunks"])),
                            "cpu_chunk_us": median(per_round(key, name, lambda o: o["cpu_ns"] / o["chunks"] / 1e3))}
    for key in [k for k in res if k.startswith("conc_")]:
        S[key] = {}
        base = per_round(key, FLOOR, lambda o: o["n"] / (o["wall_ns"] / 1e9))
        for name in res[key]:
            rps = per_round(key, name, lambda o: o["n"] / (o["wall_ns"] / 1e9) if not o["errors"] else None)
            if not any(x is not None for x in rps):
                continue
            S[key][name] = {"rps": median(rps), "x_httpx": paired(rps, base, lambda x, y: x / y),
                            "cpu_us": median(per_round(key, name, lambda o: o["cpu_ns"] / o["n"] / 1e3)),
                            "errors": sum(o["errors"] + o["bad"] for o in res[key][name] if o),
                            "new_conns": median(per_round(key, name, lambda o: o.get("new_conns")))}
    if "hold" in res:
        S["hold"] = {}
        base = per_round("hold", FLOOR, lambda o: o["n"] / (o["wall_ns"] / 1e9))
        for name, rounds in res["hold"].items():
            done = [o for o in rounds if o]
            if not done:
                continue
            after = [o["rss_after_kb"] / 1024 for o in done if o.get("rss_after_kb")]
            peaks = [o["peak_kb"] / 1024 for o in done if o.get("peak_kb")]
            rate = per_round("hold", name, lambda o: o["n"] / (o["wall_ns"] / 1e9))
            S["hold"][name] = {
                "streams_per_s": median(rate), "x_httpx": paired(rate, base, lambda x, y: x / y),
                "cpu_us": median([o["cpu_ns"] / o["n"] / 1e3 for o in done]),
                "peak_mb": max(peaks) if peaks else None, "rss_after_mb": after,
                "growth_mb": after[-1] - after[0] if len(after) > 1 else None,
                "errors": sum(o["errors"] + o["bad"] for o in done),
                "max_open": min(o["held_max"] for o in done), "n": done[0]["n"], "rounds": len(done)}
    return S


# ---------------------------------------------------------------------------------------------- targets


def targets(S: dict[str, Any], res: dict[str, Any], a: argparse.Namespace) -> list[dict[str, str]]:
    """Each target of the issue: the figure measured in this run, and met / missed / n/a."""
    out: list[dict[str, str]] = []

    def add(name: str, ok: bool | None, figure: str, why: str = "") -> None:
        status = "n/a" + (f" ({why})" if why else "") if ok is None else ("met" if ok else "missed")
        out.append({"target": name, "figure": figure, "status": status})

    def get(*path: str) -> Any:
        node: Any = S
        for p in path:
            if not isinstance(node, dict) or p not in node:
                return None
            node = node[p]
        return node

    net, rss = get("import", "engine: import + list", "net_ms"), get("import", "engine: import + list", "rss_max_mb")
    add("import engine + list providers < 150 ms over bare python", None if net is None else net < 150,
        f"{fmt(net, '.0f')} ms", "import phase not run")
    add("peak RSS of that process < 60 MB", None if rss is None else rss < 60, f"{fmt(rss, '.1f')} MB",
        "import phase not run")
    mods = res.get("modules")
    boto = None if mods is None else not any(m in mods["after_compile"] for m in ("boto3", "botocore"))
    add("boto3 not imported (list, and compile every provider)", boto,
        "not imported" if boto else ("imported" if mods else "-"), "import phase not run")
    diff, oa, ll = get("seq", ENGINE, "diff_us"), get("seq", "openai", "diff_us"), get("seq", "litellm", "diff_us")
    add("non-streamed call: engine - httpx <= 0.2 ms median", None if diff is None else diff <= 200,
        f"{fmt(diff, '+.0f')} µs", "seq phase not run")
    add("... below the openai SDK's overhead", None if diff is None or oa is None else diff < oa,
        f"engine {fmt(diff, '+.0f')} µs vs openai {fmt(oa, '+.0f')} µs", "openai not installed")
    ratio = None if diff is None or ll is None else ll / max(diff, 1.0)
    # An engine faster than the floor has no overhead to take a ratio of.
    shown = (f"litellm {fmt(ll, '+.0f')} µs, engine {fmt(diff, '+.0f')} µs (below the floor)"
             if diff is not None and diff <= 0 else f"litellm {fmt(ll, '+.0f')} µs = {fmt(ratio, '.1f')}x engine's")
    add("... >= 10x smaller than litellm's", None if ratio is None else ratio >= 10, shown, "litellm not installed")
    mock = get("mock_seq", ENGINE, "diff_us")
    add("in-process: <= 100 µs of engine work per call (engine - httpx, mock transport)",
        None if mock is None else mock <= 100, f"{fmt(mock, '+.0f')} µs", "mock phase not run")
    for f, label in (("openai", "OpenAI SSE"), ("anthropic", "Anthropic SSE"), ("ollama", "Ollama NDJSON"),
                     ("tools", "OpenAI SSE, two parallel tool calls")):
        d = get(f"stream_{f}", ENGINE, "diff_us")
        add(f"stream {label}: <= 20 µs per chunk over the floor", None if d is None else d <= 20,
            f"{fmt(d, '+.1f')} µs/chunk", "stream phase not run")
    level = 64 if 64 in a.conc_levels else (a.conc_levels[0] if a.conc_levels else None)
    er, orps = get(f"conc_{level}", ENGINE, "rps"), get(f"conc_{level}", "openai", "rps")
    add(f"concurrency, {level} tasks: engine req/s >= the openai SDK's", None if er is None or orps is None
        else er >= orps, f"engine {fmt(er, '.0f')} vs openai {fmt(orps, '.0f')} req/s",
        "openai not installed" if er is not None else "conc phase not run")
    hold = get("hold", ENGINE)
    add(f"{a.hold} concurrent streams complete with no errors", None if hold is None else hold["errors"] == 0
        and hold["max_open"] >= a.hold, "-" if hold is None else
        f"{hold['errors']} errors, {hold['max_open']} open at once", "hold phase not run")
    growth = None if hold is None else hold["growth_mb"]
    flat = None if growth is None else growth <= max(5.0, 0.1 * hold["rss_after_mb"][0])
    add("... memory flat across rounds", flat, "-" if hold is None else
        "RSS after each round " + " / ".join(f"{x:.0f}" for x in hold["rss_after_mb"]) + " MB",
        "hold phase not run" if hold is None else "one round only")
    return out


# ---------------------------------------------------------------------------------------------- report


def report(res: dict[str, Any], S: dict[str, Any], T: list[dict[str, str]], a: argparse.Namespace) -> str:
    lines: list[str] = []
    m = res["machine"]
    main_versions = res.get("versions", {}).get(a.python, {})
    peers = {k: v for py, vs in res.get("versions", {}).items() for k, v in vs.items() if py != a.python}
    versions = {**peers, **main_versions}
    lines.append(f"# Engine overhead ({res['started']}, Python {versions.get('python', '?')}, {m['cpus']} CPUs, "
                 f"load {m['loadavg_start'][0]:.2f}->{m.get('loadavg_end', [0])[0]:.2f}"
                 f"{', server on CPU 1, clients on CPU 0' if m['pinned'] else ''}{', QUICK' if a.quick else ''})")
    lines += ["", "Medians; `x httpx` = median of per-round ratios to the hand-written httpx floor measured in the "
              "same round, `+µs` = median per-round difference. Reply text checked on every call.", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k != "python")]

    def table(title: str, head: list[str], rows: list[list[str]]) -> None:
        if not rows:
            return
        lines.extend(["", f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)])
        lines.extend("| " + " | ".join(r) + " |" for r in rows)

    order = res.get("clients_order", [])
    if "import" in S:
        rows = [[name, fmt(s["ms"], ".0f"), fmt(s["net_ms"], ".0f"), fmt(s["x_httpx"], ".2f"), fmt(s["rss_max_mb"])]
                for name, s in S["import"].items()]
        table(f"Import (fresh process, {a.import_runs} runs each, interleaved)",
              ["command", "wall ms", "net of bare python ms", "x httpx", "peak RSS MB"], rows)
        mods = res.get("modules")
        if mods:
            lines += ["", f"Heavy modules loaded after listing: {', '.join(mods['after_list']) or 'none'}; "
                      f"after compiling every provider: {', '.join(mods['after_compile'])}."]
    if "micro" in res:
        rows = []
        for name, r in res["micro"].items():
            if "error" in r:
                rows.append([name, "-", "-", "-", "-", r["error"][:60]])
            else:
                rows.append([name, r.get("format", "-"), fmt(r.get("render_us")), fmt(r.get("extract_us")),
                             fmt(r.get("stream_event_us"), ".2f"), "ok" if r.get("valid", True) else "WRONG"])
        table("Render / extract per bundled provider (in-process, µs per call)",
              ["provider", "format", "render µs", "extract µs", "stream µs/event", "check"], rows)

    def ordered(d: dict[str, Any]) -> list[str]:
        return [c for c in order if c in d] + [c for c in d if c not in order]

    if "seq" in S:
        rows = [[c, str(s["calls"]), fmt(s["median_us"], ".0f"), fmt(s["p99_us"], ".0f"), fmt(s["x_httpx"], ".2f"),
                 fmt(s["diff_us"], "+.0f"), fmt(s["cpu_us"], ".0f"), fmt(s["new_conns"], "g")]
                for c in ordered(S["seq"]) for s in [S["seq"][c]]]
        table("Non-streamed calls over loopback (sequential, OpenAI format)",
              ["client", "calls", "median µs", "p99 µs", "x httpx", "+µs", "client CPU µs/call", "new conns/round"],
              rows)
    if "mock_seq" in S:
        rows = []
        for c in ordered(S["mock_seq"]):
            s = S["mock_seq"][c]
            cells = [c, fmt(s["median_us"], ".0f"), fmt(s["p99_us"], ".0f"), fmt(s["diff_us"], "+.0f")]
            for f in FORMATS:
                st = S.get(f"mock_stream_{f}", {}).get(c)
                cells.append("-" if st is None else f"{st['chunk_us']:.1f} ({st['diff_us']:+.1f})")
            rows.append(cells)
        table("In-process (mock transport, no sockets)",
              ["client", "µs/call", "p99 µs", "+µs/call", *(f"{f} stream µs/chunk (+µs)" for f in FORMATS)], rows)
    for f in FORMATS:
        key = f"stream_{f}"
        if key in S:
            rows = [[c, fmt(s["ttfc_ms"], ".2f"), fmt(s["chunk_us"]), fmt(s["x_httpx"], ".2f"),
                     fmt(s["diff_us"], "+.1f"), fmt(s["cpu_chunk_us"]), fmt(s["total_ms"])]
                    for c in ordered(S[key]) for s in [S[key][c]]]
            table(f"Streamed call over loopback, {f} format ({a.stream_chunks} chunks, {a.stream_rounds} rounds)",
                  ["client", "TTFC ms", "µs/chunk", "x httpx", "+µs/chunk", "CPU µs/chunk", "total ms"], rows)
    for level in a.conc_levels:
        key = f"conc_{level}"
        if key in S:
            rows = [[c, fmt(s["rps"], ".0f"), fmt(s["x_httpx"], ".2f"), fmt(s["cpu_us"], ".0f"),
                     fmt(s["new_conns"], "g"), str(s["errors"])] for c in ordered(S[key]) for s in [S[key][c]]]
            table(f"Concurrency: {level} tasks, {a.conc_total} calls per round, {a.conc_rounds} rounds",
                  ["client", "req/s", "x httpx", "client CPU µs/req", "new conns/round", "errors"], rows)
    if "hold" in S:
        rows = [[c, fmt(s["streams_per_s"], ".0f"), fmt(s["x_httpx"], ".2f"), fmt(s["cpu_us"], ".0f"),
                 fmt(s["peak_mb"], ".0f"), " / ".join(f"{x:.0f}" for x in s["rss_after_mb"]),
                 str(s["max_open"]), str(s["errors"])] for c in ordered(S["hold"]) for s in [S["hold"][c]]]
        table(f"{a.hold} concurrent streams held open (all open, then finished together; {a.hold_chunks} chunks "
              f"each, {a.hold_rounds} rounds)",
              ["client", "streams/s", "x httpx", "client CPU µs/stream", "peak RSS MB", "RSS after each round MB",
               "open at once", "errors"], rows)
    return report_end(table, lines, T, res)


def save(res: dict[str, Any], text: str, a: argparse.Namespace, prefix: str, logs: str) -> int:
    """Write a run's JSON and Markdown report to ``a.out_dir``, print the report; the exit code (1: a reply was
    wrong)."""
    res["checks_ok"] = not res["failures"]
    res["report"] = text
    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{prefix}-{dt.datetime.now():%Y%m%d-%H%M%S}{'-quick' if a.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"results: {stem}.json and .md ({logs})")
    return 0 if res["checks_ok"] else 1


def report_end(table: Callable[[str, list[str], list[list[Any]]], None], lines: list[str],
               T: list[dict[str, str]], res: dict[str, Any]) -> str:
    """The end every report shares: the targets table, the reply checks and the notes; the whole report's text."""
    table("Targets", ["target", "this run", "result"], [[t["target"], t["figure"], t["status"]] for t in T])
    lines += ["", "Reply checks: " + ("all passed" if not res["failures"] else
                                      f"{len(res['failures'])} FAILED (see notes)")]
    notes = res["failures"] + res["notes"]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    default_peer = ROOT / ".venv-bench" / "bin" / "python"
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny counts (the smoke test); figures mean nothing")
    p.add_argument("--no-peers", action="store_true", help="only the clients that need no bench extra")
    p.add_argument("--clients", help="comma-separated subset of: " + ", ".join(CLIENTS))
    p.add_argument("--phases", default=",".join(PHASES), help="subset of " + ",".join(PHASES))
    p.add_argument("--python", default=sys.executable, help="interpreter for the engine and the floor")
    p.add_argument("--peer-python", default=str(default_peer) if default_peer.exists() else "",
                   help="interpreter with the bench extra installed (default .venv-bench/bin/python)")
    p.add_argument("--out-dir", default=str(RESULTS), help="where the JSON and Markdown results go")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not put server and clients on own CPUs")
    p.add_argument("--max-seconds", type=float, default=600.0, help="budget for the whole run")
    p.add_argument("--op-timeout", type=float, default=180.0, help="seconds for one worker command")
    p.add_argument("--proc-timeout", type=float, default=120.0, help="seconds for one fresh process")
    g = p.add_argument_group("counts")
    g.add_argument("--import-runs", type=int, default=7)
    g.add_argument("--import-warmup", type=int, default=1)
    g.add_argument("--micro-n", type=int, default=2000, help="calls per render/extract timing")
    g.add_argument("--warm", type=int, default=30, help="warm-up calls per worker and format")
    g.add_argument("--prime", type=int, default=5, help="untimed calls right before each measurement")
    g.add_argument("--words", type=int, default=32, help="words in a non-streamed reply")
    g.add_argument("--seq-calls", type=int, default=1000)
    g.add_argument("--seq-round", type=int, default=100, help="calls per client per interleaved round")
    g.add_argument("--mock-calls", type=int, default=1000)
    g.add_argument("--stream-chunks", type=int, default=2000)
    g.add_argument("--stream-rounds", type=int, default=5)
    g.add_argument("--conc-levels", default="64,256", help="comma-separated task counts")
    g.add_argument("--conc-total", type=int, default=1200, help="calls per client per round")
    g.add_argument("--conc-rounds", type=int, default=3)
    g.add_argument("--hold", type=int, default=1000, help="streams held open at once")
    g.add_argument("--hold-chunks", type=int, default=20)
    g.add_argument("--hold-ms", type=float, default=10_000.0,
                   help="longest the server waits for all the streams to be open before it finishes one")
    g.add_argument("--hold-rounds", type=int, default=3)
    a = p.parse_args(argv)
    if a.quick:
        given = {arg.split("=")[0].lstrip("-").replace("-", "_") for arg in (argv or sys.argv[1:])}
        for key, value in QUICK.items():
            if key not in given:
                setattr(a, key, value)
    a.phases = [x for x in a.phases.split(",") if x]
    for ph in a.phases:
        if ph not in PHASES:
            p.error(f"unknown phase {ph}")
    a.conc_levels = [int(x) for x in str(a.conc_levels).split(",") if x]
    if a.clients:
        a.clients = [x for x in a.clients.split(",") if x]
        for x in a.clients:
            if x not in CLIENTS:
                p.error(f"unknown client {x}")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    bench = Bench(a)
    res = bench.go()
    res["clients_order"] = bench.clients
    S = summarize(res, bench.clients)
    T = targets(S, res, a)
    res["summary"], res["targets"] = S, T
    return save(res, report(res, S, T, a), a, "bench", f"workers' logs in {bench.workdir}")
