"""Extract: a provider's response or error body becomes unified fields. Pure, no I/O."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .compiled import USAGE_FIELDS, CompiledProvider
from .errors import ErrorKind, kind_for_status
from .limits import DEFAULT, LimitExceeded, Limits, parse_json
from .pricing import Usage
from .spec import ResponseSpec
from .types import ToolCall

_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S | re.I)
_SPACE = re.compile(r"\s+")

# Counts and costs a server reports are checked: a negative, non-finite, non-integral or absurd value is
# treated as not reported (with a warning on the response), never passed on into a cost.
MAX_TOKENS = 10**10  # more tokens than any call could use
MAX_BILLED_USD = 10**6  # more than any single call could cost


def token_count(value: Any) -> tuple[int | None, bool]:
    """A usage count as an int, and whether a value was present but rejected."""
    if value is None:
        return None, False
    if type(value) is int:
        return (value, False) if 0 <= value <= MAX_TOKENS else (None, True)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and 0 <= value <= MAX_TOKENS:
            return int(value), False
        return None, True
    if isinstance(value, str) and (text := value.strip()).isascii() and text.isdigit() and len(text) <= 12:
        count = int(text)  # a count in a header is text (isascii: "²" is a digit to isdigit, not to int)
        return (count, False) if count <= MAX_TOKENS else (None, True)
    return None, True


def billed_cost(value: Any) -> tuple[float | None, bool]:
    """A cost in USD the provider reports, and whether a value was present but rejected."""
    if value is None:
        return None, False
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, True
    try:
        cost = float(value)
    except (ValueError, OverflowError):
        return None, True
    return (cost, False) if math.isfinite(cost) and 0 <= cost <= MAX_BILLED_USD else (None, True)


def unify_usage(raw: dict[str, Any], flags: ResponseSpec | None,
                warnings: list[str] | None = None) -> Usage:
    """Token counts made comparable: input includes cached tokens, output includes reasoning.

    A count that is not a sane whole number counts as not reported; a note goes to ``warnings``.
    """
    counts: dict[str, int | None] = {}
    rejected: list[str] = []
    for name in USAGE_FIELDS:
        counts[name], bad = token_count(raw.get(name))
        if bad:
            rejected.append(name)
    if rejected and warnings is not None:
        shown = ", ".join(f"{name}={str(raw[name])[:40]!r}" for name in rejected)
        warnings.append(f"usage counts that are not whole numbers from 0 to {MAX_TOKENS:,} were ignored: {shown}")
    if flags is not None and flags.usage_omits_zeros and any(v is not None for v in counts.values()):
        counts = {name: 0 if value is None and name in raw and name not in rejected else value
                  for name, value in counts.items()}
    if flags is not None:
        input_tokens, output_tokens = counts["input_tokens"], counts["output_tokens"]
        if not flags.input_includes_cached and input_tokens is not None:
            counts["input_tokens"] = input_tokens + (counts["cached_input_tokens"] or 0) + (
                counts["cache_write_tokens"] or 0)
        if not flags.output_includes_reasoning and output_tokens is not None:
            counts["output_tokens"] = output_tokens + (counts["reasoning_tokens"] or 0)
    return Usage(**counts)


def billed(value: Any, warnings: list[str]) -> float | None:
    """The provider's billed cost, or ``None`` (with a warning when it was there but not a sane amount)."""
    cost, bad = billed_cost(value)
    if bad:
        warnings.append(f"the billed cost {str(value)[:40]!r} is not an amount from 0 to {MAX_BILLED_USD:,} USD; "
                        "the price table is used instead")
    return cost


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
    warnings: list[str]
    tool_calls: list[ToolCall]
    thinking: list[dict[str, Any]]
    service_tier: str | None = None


Secrets = str | tuple[str, ...] | None  # the API key, or it and the secret config values


def _secrets(secrets: Secrets) -> tuple[str, ...]:
    if not secrets:
        return ()
    return (secrets,) if isinstance(secrets, str) else secrets


def parse_body(body: bytes, limits: Limits, secrets: Secrets) -> Any:
    """A JSON body parsed within the limits, with secrets masked if the server echoed them.

    Raises ``ValueError`` for a body that is not JSON and `LimitExceeded` past the depth limit.
    """
    for secret in _secrets(secrets):
        if len(secret) >= 4:
            key = secret.encode()
            if key in body:
                body = body.replace(key, b"***")
    return parse_json(body, limits)


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
    warnings: list[str] = []
    return Extracted(
        content=content,
        # An empty answer with a finish reason (a length or safety stop) is an answer, not a broken body.
        content_found=content is not None or content_path.found(payload) or finish is not None,
        reasoning=paths["reasoning"].text(payload) if "reasoning" in paths else None,
        cost=billed(paths["cost"].value(payload), warnings) if "cost" in paths else None,
        model=model if isinstance(model, str) else None,
        finish_reason=short(finish),
        usage=unify_usage(raw, compiled.spec.response, warnings),
        warnings=warnings,
        tool_calls=tool_calls(compiled.tool_calls.items(payload)) if compiled.tool_calls else [],
        thinking=thinking_blocks(compiled.thinking.items(payload)) if compiled.thinking else [],
        service_tier=tier_name(paths["service_tier"].value(payload)) if "service_tier" in paths else None,
    )


def tier_name(value: Any) -> str | None:
    """A service tier the reply names, as bounded text (a number or a structure is not a name)."""
    return short(value, 64) if isinstance(value, str) and value else None


def _text(value: Any) -> str | None:
    """A value read from a reply as text: strings as they are, structures as JSON text."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def tool_calls(items: list[tuple[Any, dict[str, Any]]]) -> list[ToolCall]:
    """Tool calls from the items a reply holds (a call without a name is not a call)."""
    from .shapes import stable_call_id

    calls: list[ToolCall] = []
    for position, (_, values) in enumerate(items):
        name = values.get("name")
        if not isinstance(name, str) or not name:
            continue
        arguments = _text(values.get("arguments")) or "{}"
        call_id = values.get("id")
        calls.append(ToolCall(id=call_id if isinstance(call_id, str) and call_id else
                              stable_call_id(name, arguments, position),
                              name=name[:256], arguments=arguments, signature=_text(values.get("signature"))))
    return calls


def thinking_blocks(items: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Reasoning blocks to replay: ``{text, signature}`` or ``{redacted}``, with the block's ``id`` when the API
    gives one."""
    blocks: list[dict[str, Any]] = []
    for _, values in items:
        block: dict[str, Any] = {key: _text(values[key]) for key in ("text", "signature", "redacted", "id")
                                 if key in values}
        if "text" in block or "redacted" in block:
            blocks.append(block)
    return blocks


def unified_finish(compiled: CompiledProvider, native: str | None, has_calls: bool) -> str | None:
    """The unified finish reason of the provider's own word; a reply holding tool calls reports ``tool_calls``."""
    if native is None:
        return "tool_calls" if has_calls else None
    unified = compiled.finish_reasons.get(native, "other")
    return "tool_calls" if has_calls and unified in ("stop", "other") else unified


def short(value: Any, limit: int = 200) -> str | None:
    """A scalar a server sent (a finish reason, an error type) as bounded text."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def scrub(text: str, secrets: Secrets) -> str:
    """The text with secrets masked, in case a provider echoes them."""
    for secret in _secrets(secrets):
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
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
    return short(message, 2000), short(kind)


def kind_for(compiled: CompiledProvider, error_type: str | None, status: int | None,
             message: str | None = None) -> ErrorKind:
    """The unified kind: the provider file's mappings (error type, message text, status), then the status."""
    errors = compiled.spec.errors
    if error_type is not None and str(error_type) in compiled.error_kinds:
        return compiled.error_kinds[str(error_type)]
    if message and errors.message_kinds:
        for text, kind in errors.message_kinds.items():
            if text in message:
                return kind
    if status is not None and status in errors.status_kinds:
        return errors.status_kinds[status]
    return kind_for_status(status) if status is not None else ErrorKind.SERVER


@dataclass(slots=True)
class Failure:
    """What an error reply says: the formatted ``error``, its kind, the parsed body, and the provider's own
    message and type/code as they came (``None`` when its error paths find nothing)."""

    error: str
    kind: ErrorKind
    payload: Any
    message: str | None = None
    code: str | None = None


def format_error(status: int | None, message: str, code: str | None) -> str:
    """The form of ``CompletionResponse.error``: ``HTTP <status>: <message> (<type or code>)``."""
    return (f"HTTP {status}: " if status is not None else "") + message + (f" ({code})" if code else "")


def http_error(compiled: CompiledProvider, status: int, body: bytes, secret: Secrets,
               limits: Limits = DEFAULT) -> Failure:
    """What an HTTP error response says."""
    payload: Any = None
    message = error_type = None
    try:
        payload = parse_body(body, limits, secret) if body else None
    except (ValueError, LimitExceeded):
        payload = None
    if payload is not None:
        message, error_type = error_details(compiled, payload)
    shown = message
    if not shown:
        shown = body_snippet(body) if body else "(empty body)"
        if payload is None and body:
            shown = f"non-JSON error body: {shown}"
    text = scrub(format_error(status, shown, error_type), secret)
    if payload is None and body:
        payload = scrub(body.decode("utf-8", "replace"), secret)
    return Failure(text, kind_for(compiled, error_type, status, shown), payload,
                   scrub(message, secret) if message else None, error_type)


def failed_envelope(compiled: CompiledProvider, payload: Any, status: int) -> Failure | None:
    """A 2xx body that says the call failed (`errors.when`), or ``None``."""
    if not any(condition.holds(payload) for condition in compiled.failed_when):
        return None
    message, error_type = error_details(compiled, payload)
    shown = message or "the reply says the call failed (errors.when)"
    return Failure(format_error(status, shown, error_type), kind_for(compiled, error_type, None, message),
                   payload, message, error_type)


# -- embeddings --------------------------------------------------------------------------------------------

class BadVectors(ValueError):
    """The reply's vectors are not what was asked: wrong count, not numbers, or of different lengths."""


@dataclass(slots=True)
class ExtractedEmbeddings:
    vectors: list[list[float]]
    model: str | None
    input_tokens: int | None
    warnings: list[str]


def extract_embeddings(compiled: CompiledProvider, payload: Any, expected: int) -> ExtractedEmbeddings:
    """The vectors of one batch, in input order, checked: ``expected`` of them, each a list of finite numbers,
    all of one length. Raises `BadVectors` otherwise (never a silently short or shifted answer)."""
    spec = compiled.embeddings
    assert spec is not None
    found = spec.vectors.all(payload)
    if spec.index is not None:
        order = spec.index.all(payload)
        if len(order) == len(found) and sorted(o for o in order if type(o) is int) == list(range(len(found))):
            found = [vector for _, vector in sorted(zip(order, found, strict=True), key=lambda pair: pair[0])]
        else:
            raise BadVectors(f"the reply's vector indexes {short(order, 80)} are not 0 to {len(found) - 1}")
    if len(found) != expected:
        raise BadVectors(f"sent {expected} input{'s' if expected != 1 else ''}, got {len(found)} "
                         f"vector{'s' if len(found) != 1 else ''}")
    vectors = [_vector(value, i) for i, value in enumerate(found)]
    if len({len(v) for v in vectors}) > 1:
        raise BadVectors(f"the vectors have different lengths: {sorted({len(v) for v in vectors})}")
    warnings: list[str] = []
    tokens: int | None = None
    if spec.input_tokens is not None:
        counts = [token_count(value) for value in spec.input_tokens.all(payload)]
        valid = [count for count, _ in counts if count is not None]
        tokens = sum(valid) if valid else None
        if any(bad for _, bad in counts):
            warnings.append("input token counts that are not whole numbers were ignored")
    model = spec.model.text(payload) if spec.model is not None else None
    return ExtractedEmbeddings(vectors, short(model), tokens, warnings)


def _vector(value: Any, index: int) -> list[float]:
    if isinstance(value, str):  # base64 of little-endian float32 (OpenAI's encoding_format "base64")
        import array
        import base64
        import sys

        try:
            floats = array.array("f", base64.b64decode(value, validate=True))
        except ValueError as exc:
            raise BadVectors(f"vector {index} is text that is not base64 float32: {exc}") from None
        if sys.byteorder == "big":
            floats.byteswap()
        value = floats.tolist()
    if not isinstance(value, list) or not value:
        raise BadVectors(f"vector {index} is not a list of numbers: {short(value, 80)}")
    if not all(type(x) is float or (type(x) is int) for x in value) or not all(math.isfinite(x) for x in value):
        raise BadVectors(f"vector {index} holds something other than finite numbers")
    return [float(x) for x in value]
