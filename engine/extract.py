"""Extract: a provider's response or error body becomes unified fields. Pure, no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .compiled import USAGE_FIELDS, CompiledProvider
from .errors import ErrorKind, kind_for_status
from .pricing import Usage
from .spec import ResponseSpec

_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S | re.I)
_SPACE = re.compile(r"\s+")

def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def unify_usage(raw: dict[str, Any], flags: ResponseSpec | None) -> Usage:
    """Token counts made comparable: input includes cached tokens, output includes reasoning."""
    counts = {name: _int(raw.get(name)) for name in USAGE_FIELDS}
    if flags is not None and flags.usage_omits_zeros and any(v is not None for v in counts.values()):
        counts = {name: 0 if value is None and name in raw else value for name, value in counts.items()}
    if flags is not None:
        if not flags.input_includes_cached and counts["input_tokens"] is not None:
            counts["input_tokens"] += (counts["cached_input_tokens"] or 0) + (counts["cache_write_tokens"] or 0)
        if not flags.output_includes_reasoning and counts["output_tokens"] is not None:
            counts["output_tokens"] += counts["reasoning_tokens"] or 0
    return Usage(**counts)


@dataclass(slots=True)
class Extracted:
    """What a successful response body says."""

    content: str | None
    content_found: bool
    reasoning: str | None
    cost: float | None
    model: str | None
    finish_reason: str | None
    usage: Usage


def extract_response(compiled: CompiledProvider, payload: Any) -> Extracted:
    """Read content, model, finish reason and usage from a response body."""
    paths = compiled.response
    raw: dict[str, Any] = {}
    for name in USAGE_FIELDS:
        if name in paths:
            raw[name] = paths[name].value(payload)
    content_path = paths["content"]
    content = content_path.text(payload)
    model = paths["model"].value(payload) if "model" in paths else None
    finish = paths["finish_reason"].value(payload) if "finish_reason" in paths else None
    return Extracted(
        content=content,
        # An empty answer with a finish reason (a length or safety stop) is an answer, not a broken body.
        content_found=content is not None or content_path.found(payload) or finish is not None,
        reasoning=paths["reasoning"].text(payload) if "reasoning" in paths else None,
        cost=number(paths["cost"].value(payload)) if "cost" in paths else None,
        model=model if isinstance(model, str) else None,
        finish_reason=None if finish is None else str(finish),
        usage=unify_usage(raw, compiled.spec.response),
    )


def scrub(text: str, secret: str | None) -> str:
    """The text with the API key masked, in case a provider echoes it."""
    if secret and len(secret) >= 4 and secret in text:
        return text.replace(secret, "***")
    return text


def body_snippet(body: bytes, limit: int = 200) -> str:
    """A short readable excerpt of a non-JSON body (an HTML error page becomes its text)."""
    text = body.decode("utf-8", "replace")
    if "<" in text and ">" in text:
        text = _TAGS.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return text[:limit] + ("…" if len(text) > limit else "")


def error_details(compiled: CompiledProvider, payload: Any) -> tuple[str | None, str | None]:
    """The provider's own error message and type, when its error paths find them."""
    message = compiled.error_message.text(payload) if compiled.error_message else None
    kind = compiled.error_type.value(payload) if compiled.error_type else None
    return message, None if kind is None else str(kind)


def kind_for(compiled: CompiledProvider, error_type: str | None, status: int | None,
             message: str | None = None) -> ErrorKind:
    """The unified kind: the provider file's mappings (error type, message text, status), then the status."""
    errors = compiled.spec.errors
    if error_type is not None and error_type in errors.kinds:
        return errors.kinds[error_type]
    if message and errors.message_kinds:
        for text, kind in errors.message_kinds.items():
            if text in message:
                return kind
    if status is not None and status in errors.status_kinds:
        return errors.status_kinds[status]
    return kind_for_status(status) if status is not None else ErrorKind.SERVER


def http_error(compiled: CompiledProvider, status: int, body: bytes,
               secret: str | None) -> tuple[str, ErrorKind, Any]:
    """Message, kind and parsed body of an HTTP error response."""
    payload: Any = None
    message = error_type = None
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if payload is not None:
        message, error_type = error_details(compiled, payload)
    if not message:
        message = body_snippet(body) if body else "(empty body)"
        if payload is None and body:
            message = f"non-JSON error body: {message}"
    text = scrub(f"HTTP {status}: {message}" + (f" ({error_type})" if error_type else ""), secret)
    if payload is None and body:
        payload = scrub(body.decode("utf-8", "replace"), secret)
    return text, kind_for(compiled, error_type, status, message), payload
