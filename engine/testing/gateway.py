"""`GatewayProcess`: ``genai serve`` in a subprocess on 127.0.0.1, for tests of a gateway configuration.

    with FakeServer() as upstream, GatewayProcess(config, env=upstream_env(upstream), folder=tmp_path) as gateway:
        client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=KEY)

It runs the same Python as the caller, with the same ``engine`` importable, on a free port; it is stopped by the
context manager, after ``max_seconds`` at the latest, and when the caller's process dies (Linux). Its log (JSON
lines) is kept in ``folder``. `upstream_env` points the providers the fake server speaks at a `FakeServer`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeServer

__all__ = ["GatewayProcess", "upstream_env"]

# Providers whose wire format the fake server speaks (it answers any path prefix).
UPSTREAMS = ("openai", "anthropic", "ollama", "gemini", "cohere")


def upstream_env(server: FakeServer, key: str = "upstream-key", providers: tuple[str, ...] = UPSTREAMS) -> dict[
        str, str]:
    """Env variables sending each of ``providers`` to the fake server, with ``key`` as their API key."""
    env = {}
    for name in providers:
        upper = "".join(c if c.isalnum() else "_" for c in name).upper()
        env[f"GENAI_{upper}_BASE_URL"] = server.base_url
        env[f"GENAI_{upper}_API_KEY"] = key
    return env


def _die_with_parent() -> None:
    """In the child: a SIGTERM when the process that started it dies (Linux), and a process group of its own."""
    os.setsid()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class GatewayProcess:
    """``genai serve`` in a subprocess: started on a free 127.0.0.1 port, ready when `start` returns."""

    def __init__(self, config: dict[str, Any] | str | Path, *, folder: str | Path, env: dict[str, str] | None = None,
                 workers: int = 1, max_seconds: float = 300.0, access_log: bool = True,
                 args: tuple[str, ...] = ()) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if isinstance(config, dict):
            path = self.folder / "gateway.yaml"
            path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
            self.config_path = path
        else:
            self.config_path = Path(config)
        self.env, self.workers, self.max_seconds = env or {}, workers, max_seconds
        self.access_log, self.args = access_log, args
        self.base_url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = self.folder / f"gateway-{id(self):x}.log"
        self._timer: threading.Timer | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        import engine

        root = str(Path(engine.__file__).resolve().parent.parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GENAI_", "PROMETHEUS_"))}
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        argv = [sys.executable, "-m", "engine", "serve", "--config", str(self.config_path), "--port", "0",
                "--workers", str(self.workers), *([] if self.access_log else ["--no-access-log"]), *self.args]
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - the child writes it; closed below
        try:
            self.proc = subprocess.Popen(argv, cwd=self.folder, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=log, text=True,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        self._timer = threading.Timer(self.max_seconds, self.kill)
        self._timer.daemon = True
        self._timer.start()
        line = self._first_line(timeout)
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"genai serve did not start: {line!r}\n{self.logs()[-4000:]}")
        self.base_url = line.split()[1]
        self.wait_ready(timeout)
        return self

    def _first_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        return result[0].strip() if result else ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``/ready`` answers 200 (every worker started)."""
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"genai serve exited ({self.proc.returncode}):\n{self.logs()[-4000:]}")
            with contextlib.suppress(OSError), opener.open(self.base_url + "/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"genai serve not ready after {timeout} s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def access_lines(self) -> list[dict[str, Any]]:
        """The access log so far, parsed."""
        lines = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if data.get("event") == "request":
                    lines.append(data)
        return lines

    def terminate(self) -> None:
        """SIGTERM: a graceful shutdown (open streams finish)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown at all, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self, timeout: float = 15.0) -> None:
        """A graceful stop, then a kill if it takes longer than ``timeout``."""
        if self._timer is not None:
            self._timer.cancel()
        if self.proc is None:
            return
        self.terminate()
        self.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind, if any
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
