"""Who asked for which payment's status, and when.

Several gateway processes (API replicas, workers) share one simulator; to tell their status
checks apart, a process may name itself by putting ``/_as/{caller}`` in front of the paths it
calls, i.e. by using ``http://simulator/_as/worker-1`` as its provider base URL. The simulator
serves such a request exactly as it would without the prefix, and every payment status request
(MTN's request-to-pay status, Airtel's enquiry) is logged with the payment's reference, the
caller, the moment it arrived (before any injected latency or fault: a request that meets a
fault has still asked) and, once answered, when and with which HTTP status.
``GET /_simulator/status-calls`` returns the log: the evidence that two reconcilers never poll
one payment in the same round, which requests were retries of an answer that failed, and which
are still in flight.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.simulator.config import Endpoint

CALLER_PREFIX = "/_as/"
# Where the caller a request named is kept in its ASGI scope.
CALLER_SCOPE_KEY = "simulator.caller"
_CALLER = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# The status endpoints, and the path parameter that names the payment in each.
STATUS_REFERENCE_PARAMS = {
    Endpoint.MTN_REQUEST_TO_PAY_STATUS: "reference",
    Endpoint.AIRTEL_ENQUIRY: "transaction_id",
}
# A long benchmark must not grow the log without end: the most recent calls are kept.
MAX_LOGGED_CALLS = 100_000


class CallerPrefix:
    """ASGI middleware: serve ``/_as/{caller}/rest`` as ``/rest``, remembering the caller.

    A path whose caller name is not a plain token is left alone (and so finds no route)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CALLER_PREFIX):
            caller, slash, rest = scope["path"][len(CALLER_PREFIX) :].partition("/")
            if slash and _CALLER.fullmatch(caller):
                # A plain-token caller is spelled the same in the raw (still encoded) path.
                cut = len(CALLER_PREFIX) + len(caller)
                raw_path = scope.get("raw_path")
                scope = {**scope, "path": "/" + rest, CALLER_SCOPE_KEY: caller}
                if raw_path is not None:
                    scope["raw_path"] = raw_path[cut:]
        await self.app(scope, receive, send)


def caller_of(scope: Scope) -> str | None:
    caller: str | None = scope.get(CALLER_SCOPE_KEY)
    return caller


@dataclass
class StatusCall:
    provider: str
    reference: str
    caller: str | None  # None: the request named no caller
    at: float  # arrival, seconds since the epoch
    answered_at: float | None = None  # None: still in flight
    status_code: int | None = None


class StatusCallLog:
    """Every payment status request, in order of arrival (the most recent
    ``MAX_LOGGED_CALLS``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: deque[StatusCall] = deque(maxlen=MAX_LOGGED_CALLS)

    def arrived(self, provider: str, reference: str, caller: str | None) -> StatusCall:
        call = StatusCall(provider=provider, reference=reference, caller=caller, at=time.time())
        with self._lock:
            self._calls.append(call)
        return call

    def answered(self, call: StatusCall, status_code: int) -> None:
        with self._lock:
            call.answered_at = time.time()
            call.status_code = status_code

    def snapshot(self, reference: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(c) for c in self._calls if reference in (None, c.reference)]

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
