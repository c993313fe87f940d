"""Render and extract, per bundled provider, in-process: the engine's pure stages alone.

- render: ``provider.render(request)``, the unified request to the exact HTTP request (templates);
- extract: what ``complete`` does once the body is in: ``json.loads``, the response paths, usage,
  cost and the ``CompletionResponse``;
- stream event: ``StreamState.feed`` over a recorded stream, per event.

Recorded responses: a provider's test fixture (tests/fixtures/<name>/response.json) when there is
one, else the bench server's body in its wire format; extracted text is checked against the
fixture's expected.yaml or the server's text. Streams: 200 events in the provider's format from the
bench server, else the recorded test stream.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import clients, server

STREAM_CHUNKS = 200
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def _per_call_us(fn: Callable[[], Any], n: int, repeat: int = 5) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - t0) / n / 1e3)
    return statistics.median(runs)


def wire_format(registry: Any, name: str) -> str | None:
    """The format a provider speaks when the bench server speaks it too: the root of its ``extends``
    chain, or OpenAI for a file that says it is OpenAI-compatible and posts to chat/completions (OpenAI's
    Responses API is another format)."""
    root = registry.chain(name)[-1].name
    if root in clients.MODELS:
        return root
    spec = registry.spec(name)
    chat = spec.request is not None and spec.request.path.rstrip("/").endswith("/chat/completions")
    return "openai" if chat and "openai" in (spec.description or "").lower() else None


def measure(n: int, words: int) -> dict[str, Any]:
    """Per bundled provider: render and extract µs per call, stream µs per event, and a text check."""
    import engine
    from engine.registry import Registry

    names = engine.list_providers()
    keys = {name: clients.API_KEY for name in names}
    registry = Registry(engine.Settings(api_keys=keys))
    config = {name: {key: "bench" for key, var in registry.spec(name).config.items() if var.required}
              for name in names}
    settings = engine.Settings(api_keys=keys, provider_config=config)
    rows: dict[str, Any] = {}
    for name in names:
        try:
            provider = registry.create(name, settings=settings)
        except engine.EngineError as exc:
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        if not hasattr(provider, "render"):  # a Python backend: no templates to measure
            rows[name] = {"format": "backend"}
            continue
        if registry.spec(name).request is None:  # embeddings only (voyage): no chat request to measure
            rows[name] = {"format": "embeddings only"}
            continue
        try:
            rows[name] = _provider_row(name, provider, wire_format(registry, name), n, words)
        except Exception as exc:  # one broken provider must not hide the others' figures
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return {"providers": rows}


def _recorded(name: str, fmt: str | None, model: str, words: int) -> tuple[bytes, str | None] | None:
    """A recorded response body and its expected text: the test fixture if there is one, else ours."""
    folder = FIXTURES / name
    if (folder / "response.json").is_file():
        import yaml

        expected = None
        if (folder / "expected.yaml").is_file():
            spec = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8")) or {}
            expected = ((spec.get("response") or {}).get("expect") or {}).get("content")
        return (folder / "response.json").read_bytes(), expected
    if fmt is None:
        return None
    return server.completion_body(fmt, model, words), server.completion_text(words)


def _recorded_stream(name: str, fmt: str | None, model: str) -> tuple[bytes, str | None] | None:
    """A long stream in the provider's format (ours), else its recorded test stream."""
    if fmt is not None:
        return b"".join(server.stream_events(fmt, model, STREAM_CHUNKS)), server.stream_text(STREAM_CHUNKS)
    if (FIXTURES / name / "stream.txt").is_file():
        return (FIXTURES / name / "stream.txt").read_bytes(), None
    return None


def _provider_row(name: str, provider: Any, fmt: str | None, n: int, words: int) -> dict[str, Any]:
    import engine
    from engine.extract import extract_response
    from engine.stream import StreamState

    compiled = provider.compiled
    model = compiled.spec.default_model or clients.MODELS[fmt or "openai"]
    request = engine.CompletionRequest(messages=clients.MESSAGES, model=model, max_tokens=clients.MAX_TOKENS,
                                       temperature=0.0)
    row: dict[str, Any] = {"format": fmt or "own", "render_us": _per_call_us(lambda: provider.render(request), n),
                           "valid": True}
    recorded = _recorded(name, fmt, model, words)
    if recorded is not None:
        body, expected = recorded

        def extract() -> Any:
            payload = json.loads(body)
            found = extract_response(compiled, payload)
            return provider._finish(content=found.content or "", model=found.model, requested=model,
                                    usage=found.usage, finish_reason=found.finish_reason,
                                    started=time.perf_counter(), status_code=200, raw=payload,
                                    tool_calls=found.tool_calls, warnings=found.warnings)

        row["extract_us"] = _per_call_us(extract, n)
        text = extract().content
        row["valid"] = bool(text) and (expected is None or text == expected)
    stream = _recorded_stream(name, fmt, model) if compiled.stream is not None else None
    if stream is not None:
        wire, expected = stream

        def feed() -> Any:
            state = StreamState(compiled.stream, compiled.spec.errors.kinds)
            state.feed(wire)
            state.close()
            return state

        state = feed()
        row["stream_event_us"] = _per_call_us(feed, max(1, n // 100)) / max(1, len(state.events))
        row["valid"] = row["valid"] and state.ended and state.error is None and (
            expected is None or state.content == expected)
    return row
