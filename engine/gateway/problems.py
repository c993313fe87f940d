"""What the gateway answers when it cannot or will not serve a request, and the status each kind of failure gets.

A `Problem` carries the kind (the engine's `ErrorKind` values, plus the gateway's own ``permission`` and
``budget``), the HTTP status and the message; each API module writes it in its own error shape. The status of a
failed call follows the engine's kind, so an SDK raises the same error class it would get from the provider
itself: ``auth`` 401, ``rate_limit`` 429, ``invalid_request`` 400, ``not_found`` 404, ``server`` the provider's
5xx (else 500), ``timeout`` 504, ``connection`` and ``invalid_response`` 502.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ErrorKind
from ..types import CompletionResponse

PERMISSION = "permission"  # the key may not call this model
BUDGET = "budget"  # the key's budget for the period is spent

STATUS: dict[str, int] = {
    ErrorKind.AUTH: 401, ErrorKind.RATE_LIMIT: 429, ErrorKind.INVALID_REQUEST: 400, ErrorKind.NOT_FOUND: 404,
    ErrorKind.SERVER: 500, ErrorKind.TIMEOUT: 504, ErrorKind.CONNECTION: 502, ErrorKind.INVALID_RESPONSE: 502,
    PERMISSION: 403, BUDGET: 429,
}


@dataclass
class Problem(Exception):
    """A request the gateway answers with an error."""

    kind: str
    message: str
    status: int = 0
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None  # seconds, sent as Retry-After
    retry: bool | None = None  # sent as x-should-retry (the SDKs honour it)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = STATUS.get(self.kind, 500)
        super().__init__(self.message)


def failed_call(response: CompletionResponse) -> Problem:
    """The problem of a failed engine call: its kind, the provider's message, a status for the kind."""
    kind = response.error_kind or ErrorKind.SERVER
    status = STATUS[kind]
    if kind is ErrorKind.SERVER and response.status_code is not None and 500 <= response.status_code <= 599:
        status = response.status_code
    message = response.error_message or response.error or "the call failed"
    retry_after = None
    raw = response.raw_response
    if response.error_code == "cooling_down" and isinstance(raw, dict):  # a route whose deployments all cool down
        retry_after = raw.get("retry_after")
    return Problem(str(kind), message, status, code=response.error_code, retry_after=retry_after)
