"""Sending provider callbacks: MTN to each payment's or refund's X-Callback-Url, Airtel to its
one portal URL (Airtel documents no refund callback, so none is sent).

A callback that fails is logged and kept in the attempt log, never raised: the provider does not
care whether the merchant heard it, and neither does the payment's status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from app.simulator.config import SimulatorConfig
from app.simulator.ledger import Payment
from app.simulator.refund_ledger import Refund
from app.simulator.stats import Stats
from app.simulator.wire import (
    airtel_callback_body,
    compact_json,
    mtn_refund_body,
    mtn_status_body,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallbackAttempt:
    provider: str
    reference: str
    method: str
    url: str
    attempt: int
    status_code: int | None
    error: str | None
    body: str
    at: float
    kind: str = "payment"  # or "refund"

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "delivered": self.delivered}


@dataclass(frozen=True)
class _Request:
    provider: str
    reference: str
    kind: str
    method: str
    url: str
    body: bytes


class CallbackSender:
    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._client: httpx.AsyncClient | None = None
        self._attempts: deque[CallbackAttempt] = deque(maxlen=2000)

    def attach(self, client: httpx.AsyncClient | None) -> None:
        self._client = client

    def attempts(self) -> list[CallbackAttempt]:
        return list(self._attempts)

    def clear(self) -> None:
        self._attempts.clear()

    async def deliver(self, payment: Payment, config: SimulatorConfig) -> CallbackAttempt | None:
        """Send the payment's callback, retrying as configured; the last attempt, or None when
        the payment has nowhere to be sent."""
        return await self._deliver(self._request_for(payment, config), config)

    async def deliver_refund(
        self, refund: Refund, config: SimulatorConfig
    ) -> CallbackAttempt | None:
        """Send an MTN refund's callback (its status body, by the refund's own verb)."""
        if refund.provider != "mtn_momo" or not refund.callback_url:
            return None
        body = compact_json(mtn_refund_body(refund, config.mtn_reason_format)).encode()
        request = _Request(
            refund.provider,
            refund.reference,
            "refund",
            refund.callback_method,
            refund.callback_url,
            body,
        )
        return await self._deliver(request, config)

    async def _deliver(
        self, request: _Request | None, config: SimulatorConfig
    ) -> CallbackAttempt | None:
        if request is None:
            return None
        last: CallbackAttempt | None = None
        for attempt in range(1, config.callback_retries + 2):
            last = await self._send(request, attempt, config.callback_timeout_seconds)
            if last.delivered:
                break
            if attempt <= config.callback_retries:
                await asyncio.sleep(config.callback_retry_delay_seconds)
        return last

    @staticmethod
    def _request_for(payment: Payment, config: SimulatorConfig) -> _Request | None:
        if payment.provider == "mtn_momo":
            if not payment.callback_url:
                return None
            body = compact_json(mtn_status_body(payment, config.mtn_reason_format)).encode()
            return _Request(
                payment.provider,
                payment.reference,
                "payment",
                config.mtn_callback_method,
                payment.callback_url,
                body,
            )
        if not config.airtel_callback_url:
            return None
        body = airtel_callback_body(payment, config.airtel_callback_secret)
        return _Request(
            payment.provider, payment.reference, "payment", "POST", config.airtel_callback_url, body
        )

    async def _send(
        self, request: _Request, attempt: int, timeout_seconds: float
    ) -> CallbackAttempt:
        status_code: int | None = None
        error: str | None = None
        if self._client is None:
            error = "the simulator was started without its lifespan; no HTTP client"
        else:
            try:
                response = await self._client.request(
                    request.method,
                    request.url,
                    content=request.body,
                    headers={"Content-Type": "application/json"},
                    timeout=timeout_seconds,
                )
                status_code = response.status_code
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = f"{type(exc).__name__}: {exc}"
        result = CallbackAttempt(
            provider=request.provider,
            reference=request.reference,
            method=request.method,
            url=request.url,
            attempt=attempt,
            status_code=status_code,
            error=error,
            body=request.body.decode(),
            at=time.time(),
            kind=request.kind,
        )
        self._attempts.append(result)
        self._stats.count_callback("delivered" if result.delivered else "failed")
        if not result.delivered:
            logger.warning(
                "simulator %s %s callback for %s to %s failed (attempt %d): %s",
                request.provider,
                request.kind,
                request.reference,
                request.url,
                attempt,
                error or f"HTTP {status_code}",
            )
        return result
