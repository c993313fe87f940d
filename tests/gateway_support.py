"""Shared parts of the gateway tests: a real ``redis-server`` on a free loopback port, keys, and configs.

`RedisServer` runs the system's ``redis-server`` (CI's ``.ci/run`` installs it when absent) on 127.0.0.1 with a
temporary folder, no persistence and a bounded lifetime, and stops it at the end; tests that need it are skipped
with a reason when it is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-genai-test-team-key-0123456789"
TINY_KEY = "sk-genai-test-tiny-key-0123456789"
UPSTREAM_KEY = "sk-upstream-SECRET-abcdef0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1, in a temporary folder, stopped by `stop` (and by itself after a while)."""

    def __init__(self, folder: Path, max_seconds: int = 900) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (.ci/run installs it from the system packages)")
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(folder), "--save", "",
             "--appendonly", "no", "--maxmemory", "64mb", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.deadline = time.monotonic() + max_seconds
        self.url = f"redis://127.0.0.1:{self.port}/0"
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def command(self, *args: str) -> bytes:
        """One command over a plain socket (no client library): the raw reply."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), 2) as sock:
            sock.sendall(payload.encode())
            return sock.recv(65536)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def child_env(**extra: str) -> dict[str, str]:
    """Env for a subprocess that must import this checkout's engine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def config(**overrides: Any) -> dict[str, Any]:
    """A gateway config: a full-access key, a tiny-budget key, two routes."""
    base: dict[str, Any] = {
        "keys": [
            {"name": "team", "key_env": "TEAM_KEY"},
            {"name": "tiny", "key_env": "TINY_KEY", "models": ["openai/*"], "budget": {"usd": 0.001, "period": "day"}},
        ],
        "routes": {"smart": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]},
        "state": {"sqlite": "ledger.db"},
        "settings": {"max_retries": 0, "timeout": 10},
    }
    base.update(overrides)
    return base


def keys_env() -> dict[str, str]:
    return {"TEAM_KEY": KEY, "TINY_KEY": TINY_KEY}
