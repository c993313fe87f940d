"""Structured logs: one JSON object per line, on stderr. The access log has a line per request; uvicorn's own
messages (start-up, shutdown, errors) are written the same way.

An access line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``event: request``, ``id`` (also the reply's
``x-request-id``), ``pid`` (the worker process), ``method``, ``path``, ``client``, ``status``, ``api``, ``key``
(its name, never the key), ``model`` (as asked), ``provider`` and ``served_model`` (what answered), ``stream``,
``input_tokens``, ``output_tokens``, ``cost_usd``, ``latency_ms``, ``first_byte_ms`` (streams), ``error_kind``
and ``error``. Message content is never logged.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Outcome

ACCESS = "genai.gateway.access"


class JSONFormatter(logging.Formatter):
    """A record as one JSON line; a record whose message is a dict is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                                + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                                "logger": record.name}
        if isinstance(record.msg, dict):
            line.update(record.msg)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the gateway and uvicorn: JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JSONFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "genai": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class AccessLog:
    """Writes the access line of each request (when enabled) and the gateway's own errors."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.logger = logging.getLogger(ACCESS)
        self.errors = logging.getLogger("genai.gateway")
        self.pid = os.getpid()

    def write(self, outcome: Outcome, rid: str, started: float, seconds: float, scope: dict[str, Any]) -> None:
        if not self.enabled or not self.logger.isEnabledFor(logging.INFO):
            return
        response, call, problem = outcome.response, outcome.call, outcome.problem
        client = scope.get("client")
        line: dict[str, Any] = {
            "event": "request", "id": rid, "pid": self.pid, "method": scope.get("method"),
            "path": scope.get("path"), "client": f"{client[0]}:{client[1]}" if client else None,
            "status": outcome.status, "api": outcome.api,
            "key": outcome.key.name if outcome.key is not None else None,
            "model": call.model if call is not None else None, "stream": outcome.stream,
            "latency_ms": round(seconds * 1000, 3),
        }
        if response is not None:
            line.update(provider=response.provider, served_model=response.model, input_tokens=response.input_tokens,
                        output_tokens=response.output_tokens, cost_usd=response.cost_usd)
        if outcome.first_byte is not None:
            line["first_byte_ms"] = round((outcome.first_byte - started) * 1000, 3)
        if problem is not None:
            line.update(error_kind=problem.kind, error=problem.message)
        elif response is not None and not response.success:
            line.update(error_kind=str(response.error_kind), error=response.error)
        self.logger.info(line)

    def error(self, rid: str, exc: BaseException) -> None:
        self.errors.error({"event": "error", "id": rid, "error": f"{type(exc).__name__}: {exc}"}, exc_info=exc)
