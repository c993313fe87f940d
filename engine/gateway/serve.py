"""Running the gateway: ``genai serve`` binds the socket, then runs uvicorn with one or ``--workers N`` processes.

The configuration is checked first (keys, routes, provider keys, Redis), so a mistake stops the command before
a port is bound. uvicorn uses uvloop and httptools when they are installed, asyncio and h11 otherwise. With
several workers the socket is shared by them, and Prometheus metrics go through a folder of their own (removed
at exit). SIGTERM or Ctrl-C shuts down gracefully: no new connections, open streams run to their end (up to
``server.graceful_seconds``), then the state is closed.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError

DEFAULT_PORT = 4000


def _uvicorn() -> object:
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("genai serve needs the server extra: pip install 'genai-engine[server]'") from None
    return uvicorn


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and without it a reply written
    # as headers then body waits for the client's delayed ACK (40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _more_files() -> None:
    """Raise the open-files limit to its ceiling: every open stream holds two sockets."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def serve(config_path: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, workers: int = 1,
          access_log: bool = True, log_level: str = "info",
          announce: Callable[[str], None] | None = None) -> int:
    """Check the configuration, bind, and serve until stopped; returns the exit code."""
    import asyncio

    from .config import load_config
    from .logs import log_config
    from .state import check

    uvicorn = _uvicorn()
    path = Path(config_path).resolve()
    config = load_config(path)
    check(config)
    if config.redis_url:
        asyncio.run(_ping(config.redis_url))
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    os.environ["GENAI_GATEWAY_CONFIG"] = str(path)
    os.environ["GENAI_GATEWAY_ACCESS_LOG"] = "1" if access_log else "0"
    _more_files()
    sock = bind(host, port)
    metrics_dir = None
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="genai-gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    shown_host = f"[{host}]" if ":" in host else host
    (announce or _print)(f"LISTENING http://{shown_host}:{sock.getsockname()[1]}")
    settings = uvicorn.Config(  # type: ignore[attr-defined]
        "engine.gateway.app:from_env", factory=True, workers=workers, log_config=log_config(log_level),
        access_log=False, lifespan="on", server_header=False,
        timeout_graceful_shutdown=math.ceil(config.server.graceful_seconds),  # whole seconds; never rounded to 0
        timeout_keep_alive=math.ceil(config.server.keep_alive_seconds))
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(settings, sockets=[sock]).run()
            return 0
        server = uvicorn.Server(settings)  # type: ignore[attr-defined]
        server.run(sockets=[sock])
        return 0 if server.started else 3
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


async def _ping(url: str) -> None:
    from .redis_state import client
    from .state import redact_url

    redis = client(url)
    try:
        await redis.ping()
    except Exception as exc:
        raise ConfigError(f"cannot reach Redis at {redact_url(url)}: {exc}") from None
    finally:
        await redis.aclose()


def _print(line: str) -> None:
    print(line, flush=True)
    sys.stdout.flush()
