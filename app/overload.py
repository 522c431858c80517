"""Shedding load instead of queueing it: past ``MAX_REQUESTS_IN_FLIGHT`` payment creations in
flight in this process, ``POST /v1/payments`` answers ``503 overloaded`` with ``Retry-After`` at
once, before reading the body or touching the database.

Queued requests all wait and the tail grows without bound; refused ones cost microseconds and
tell the storefront to come back, so the accepted ones keep their latency. A refused request has
done nothing, so retrying it (with its Idempotency-Key) is always safe.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import problem

GUARDED = ("POST", "/v1/payments")
RETRY_AFTER_SECONDS = 1


class InFlightLimit:
    """Pure ASGI (no per-request objects): it sits in front of every request."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit  # 0: no limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.limit <= 0
            or scope["type"] != "http"
            or (scope["method"], scope["path"].rstrip("/")) != GUARDED
        ):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            response = problem(
                503,
                "overloaded",
                "The gateway is at capacity; retry after the Retry-After delay.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
