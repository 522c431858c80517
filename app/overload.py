"""Shedding load instead of queueing it: past ``MAX_REQUESTS_IN_FLIGHT`` payment creations in
flight in this process, ``POST /v1/payments`` answers ``503 overloaded`` with ``Retry-After`` at
once, before reading the body or touching the database.

Queued requests all wait and the tail grows without bound; refused ones cost microseconds and
tell the storefront to come back, so the accepted ones keep their latency. A refused request has
done nothing, so retrying it (with its Idempotency-Key) is always safe.

Under overload refusals come by the thousand per second, and every one takes CPU from the
requests that were accepted. So the limit is the outermost layer and a refusal is one prebuilt
response: no request id, route matching or access line per refusal. Refusals are counted in
``momo_overload_refusals_total`` and logged as one WARNING line per second at most, with how many
there were.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import problem
from app.metrics import OVERLOAD_REFUSALS

logger = logging.getLogger(__name__)

GUARDED = ("POST", "/v1/payments")
RETRY_AFTER_SECONDS = 1
LOG_INTERVAL_SECONDS = 1.0


class InFlightLimit:
    """Pure ASGI (no per-request objects): it sits in front of every request."""

    def __init__(
        self, app: ASGIApp, limit: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.limit = limit  # 0: no limit
        self.in_flight = 0
        refusal = problem(
            503,
            "overloaded",
            "The gateway is at capacity; retry after the Retry-After delay.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        self._refusal_start = {
            "type": "http.response.start",
            "status": refusal.status_code,
            "headers": refusal.raw_headers,
        }
        self._refusal_body = {"type": "http.response.body", "body": bytes(refusal.body)}
        self._clock = clock
        self._unlogged_refusals = 0
        self._last_logged: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.limit <= 0
            or scope["type"] != "http"
            or (scope["method"], scope["path"].rstrip("/")) != GUARDED
        ):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self._count_refusal()
            await send(self._refusal_start)
            await send(self._refusal_body)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _count_refusal(self) -> None:
        OVERLOAD_REFUSALS.inc()
        self._unlogged_refusals += 1
        now = self._clock()
        if self._last_logged is not None and now - self._last_logged < LOG_INTERVAL_SECONDS:
            return
        logger.warning(
            "overloaded: refused %d payment request(s) with %d in flight "
            "(MAX_REQUESTS_IN_FLIGHT); each was answered 503 with Retry-After",
            self._unlogged_refusals,
            self.in_flight,
        )
        self._unlogged_refusals = 0
        self._last_logged = now
