"""Prometheus metrics on ``/metrics``: requests, errors by kind, latency, tokens and cost by provider, model and key.

| metric | labels | what |
|---|---|---|
| ``genai_gateway_requests_total`` | api, key, provider, model, status | requests answered |
| ``genai_gateway_errors_total`` | api, key, provider, model, kind | failed requests by error kind |
| ``genai_gateway_request_seconds`` | api, stream | time to the whole reply (histogram) |
| ``genai_gateway_first_byte_seconds`` | api | time to the first streamed bytes (histogram) |
| ``genai_gateway_tokens_total`` | key, provider, model, type | input, output, cached and reasoning tokens |
| ``genai_gateway_cost_usd_total`` | key, provider, model | cost in USD |
| ``genai_gateway_in_flight`` | api | requests being served |

``provider`` and ``model`` are those that served the call (``-`` when none did, e.g. a refused request). With
``--workers N`` the workers write to a shared folder (prometheus_client's multiprocess mode, set up by
``genai serve``), and any worker answers ``/metrics`` for all of them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Outcome

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_TYPES = ("input", "output", "cached", "reasoning")


class Metrics:
    """The gateway's metrics in a registry of their own (several gateways can share a process in tests)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self.registry  # multiprocess values are collected from files
        self.requests = Counter("genai_gateway_requests", "Requests answered.",
                                ["api", "key", "provider", "model", "status"], registry=registry)
        self.errors = Counter("genai_gateway_errors", "Failed requests by error kind.",
                              ["api", "key", "provider", "model", "kind"], registry=registry)
        self.latency = Histogram("genai_gateway_request_seconds", "Time to the whole reply.", ["api", "stream"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.first_byte = Histogram("genai_gateway_first_byte_seconds", "Time to the first streamed bytes.",
                                    ["api"], buckets=LATENCY_BUCKETS, registry=registry)
        self.tokens = Counter("genai_gateway_tokens", "Tokens by type (input, output, cached, reasoning).",
                              ["key", "provider", "model", "type"], registry=registry)
        self.cost = Counter("genai_gateway_cost_usd", "Cost in USD.", ["key", "provider", "model"], registry=registry)
        self.in_flight = Gauge("genai_gateway_in_flight", "Requests being served.", ["api"], registry=registry,
                               multiprocess_mode="livesum")
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def in_flight_of(self, api: str) -> Any:
        return self._child(self.in_flight, api)

    def observe(self, outcome: Outcome, seconds: float, started: float | None = None) -> None:
        response = outcome.response
        key = outcome.key.name if outcome.key is not None else "-"
        provider = (response.provider if response is not None else None) or "-"
        model = (response.model if response is not None else None) or "-"
        child = self._child
        child(self.requests, outcome.api, key, provider, model, str(outcome.status)).inc()
        kind = outcome.problem.kind if outcome.problem is not None else (
            str(response.error_kind) if response is not None and not response.success and response.error_kind
            else None)
        if kind is not None:
            child(self.errors, outcome.api, key, provider, model, kind).inc()
        child(self.latency, outcome.api, "true" if outcome.stream else "false").observe(seconds)
        if outcome.first_byte is not None and started is not None:
            child(self.first_byte, outcome.api).observe(outcome.first_byte - started)
        if response is not None:
            counts = (response.input_tokens, response.output_tokens, response.cached_input_tokens,
                      response.reasoning_tokens)
            for kind_name, count in zip(TOKEN_TYPES, counts, strict=True):
                if count:
                    child(self.tokens, key, provider, model, kind_name).inc(count)
            if response.cost_usd:
                child(self.cost, key, provider, model).inc(response.cost_usd)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
