"""Limits on what the engine reads and renders, so that a hostile server or provider file cannot exhaust
memory or CPU. Each has a setting (``GENAI_<NAME>``) and a documented default; past a limit a call fails with
``invalid_response`` (or a file with a load error) naming the limit and its setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force; `Settings.limits` builds them from settings."""

    max_response_bytes: int = 64 * MiB  # a non-streamed body (or error body), after decompression
    max_stream_bytes: int = 512 * MiB  # a whole streamed body, after decompression
    max_event_bytes: int = 8 * MiB  # one SSE event or NDJSON line
    max_json_depth: int = 128  # nesting of arrays and objects in any JSON the engine parses
    max_file_bytes: int = 1 * MiB  # a provider or pricing file
    max_request_bytes: int = 64 * MiB  # a rendered request body
    template_max_string: int = 1 * MiB  # a string or sequence a template builds by repetition or formatting
    template_max_range: int = 100_000  # the length of range() in a template
    template_max_power: int = 4096  # bits of the result of ** in a template
    template_max_format_width: int = 10_000  # a width or precision in a format spec

    @staticmethod
    def setting(name: str) -> str:
        """The env variable of a limit: ``GENAI_<NAME>``."""
        return f"GENAI_{name.upper()}"


DEFAULT = Limits()
NAMES = tuple(f.name for f in fields(Limits))


class LimitExceeded(Exception):
    """A limit was passed; the message names the limit and its setting."""

    def __init__(self, name: str, limit: int, what: str) -> None:
        self.name, self.limit = name, limit
        super().__init__(f"{what} is over the limit of {limit:,} ({name}; set {Limits.setting(name)} to change it)")


def json_depth_ok(value: object, limit: int) -> bool:
    """Whether parsed JSON nests no deeper than ``limit`` (iterative: safe on any depth)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: object = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))  # type: ignore[attr-defined]
    return True


def parse_json(data: bytes | str, limits: Limits = DEFAULT) -> object:
    """Parse JSON within the depth limit. Raises ``ValueError`` for bad JSON and `LimitExceeded` past the limit.

    A document with fewer brackets than the limit cannot nest deeper, so the common case costs at most two
    counts (none for a short document, such as a stream event).
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise LimitExceeded("max_json_depth", limits.max_json_depth, "JSON nesting depth") from None
    limit = limits.max_json_depth
    if len(data) <= 2 * limit + 1:  # nesting deeper than the limit takes more brackets than that
        return value
    raw = data.encode() if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") > limit and not json_depth_ok(value, limit):
        raise LimitExceeded("max_json_depth", limits.max_json_depth, "JSON nesting depth")
    return value
