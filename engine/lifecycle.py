"""Model lifecycle: a model's provider deprecates it, then retires it, on dates its provider file records.

The rule: from ``deprecated`` a call works and its response carries a warning; from ``retired`` (00:00 UTC) a
call fails before anything is sent (``not_found``), because the provider no longer serves it. Two exceptions
send it anyway, with a warning: a model whose provider still answers after retirement
(``retired_calls: warn``, e.g. by serving its replacement), and the setting ``allow_retired``
(``GENAI_ALLOW_RETIRED=1``) for when your account or region keeps it longer.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import ModelInfo


def today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def status(info: ModelInfo, day: datetime.date | None = None) -> str:
    """One line for listings: ``current``, ``deprecated 2026-06-11, retires 2026-12-11 (use gpt-6.1-sol)``,
    ``retired 2026-10-23``."""
    state = info.lifecycle(day or today())
    instead = f" (use {info.replacement})" if info.replacement else ""
    if state == "retired":
        return f"retired {info.retired}{instead}"
    if state == "deprecated":
        retires = f", retires {info.retired}" if info.retired else ""
        return f"deprecated {info.deprecated}{retires}{instead}"
    if info.retired is not None:  # announced for later, not yet deprecated by date
        return f"retires {info.retired}{instead}"
    return "current"


def notice(provider: str, info: ModelInfo, allow_retired: bool,
           day: datetime.date | None = None) -> tuple[str | None, str | None]:
    """``(warning, error)`` for a call to a model on a day: an error means the call must not be sent."""
    state = info.lifecycle(day or today())
    if state is None:
        return None, None
    name = f"{provider}/{info.id}"
    instead = f"; use {info.replacement}" if info.replacement else ""
    source = f" (notice: {info.notice})" if info.notice else ""
    if state == "retired":
        text = f"{name} was retired on {info.retired}{instead}{source}"
        if info.retired_calls == "fail" and not allow_retired:
            return None, text + "; the call was not sent (set GENAI_ALLOW_RETIRED=1 to send it anyway)"
        return text, None
    retires = f" and retires on {info.retired}" if info.retired else ""
    return f"{name} is deprecated since {info.deprecated}{retires}{instead}{source}", None


def dated(models: list[ModelInfo]) -> Mapping[str, ModelInfo]:
    """The models with lifecycle dates, by id (what a call has to look up)."""
    return {m.id: m for m in models if m.deprecated is not None or m.retired is not None}
