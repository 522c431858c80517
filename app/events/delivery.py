"""Delivering events to the storefront: signed POSTs, every attempt recorded, retried on a
schedule until a 2xx or the attempts run out.

At-least-once: an event may arrive twice (a lost acknowledgement, a redelivery), always with the
same ``webhook-id``, which the storefront dedupes on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.events import repository
from app.events.models import OutboxEvent
from app.events.schedule import retry_delay
from app.events.signing import signature_headers
from app.merchants.models import Merchant
from app.metrics import DELIVERY_ATTEMPTS
from app.saleor.installations import installation_for_merchant
from app.saleor.reporting import SaleorReporter

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Longer than one attempt can take, so a claimed event is not sent by two workers at once; if
# the sender dies, the event is due again once the lease runs out.
CLAIM_LEASE = timedelta(seconds=60)
USER_AGENT = "momo-gateway-webhooks/1"


def build_delivery_client() -> httpx.AsyncClient:
    # Redirects are not followed: a signed event goes only where the merchant said.
    return httpx.AsyncClient(
        timeout=DELIVERY_TIMEOUT,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True)
class DeliveryResult:
    event_id: str
    # False: not due, already delivered, claimed by someone else, or its merchant is disabled
    sent: bool
    delivered: bool = False
    status_code: int | None = None


def signing_secrets(merchant: Merchant, now: datetime) -> tuple[str, str | None]:
    """The secret to sign with, and the one it replaced while its grace period lasts: a
    storefront still holding the old secret keeps verifying deliveries until then."""
    expires_at = merchant.previous_secret_expires_at
    if merchant.previous_webhook_secret is not None and expires_at is not None and expires_at > now:
        return merchant.webhook_secret, merchant.previous_webhook_secret
    return merchant.webhook_secret, None


def event_body(event: OutboxEvent) -> bytes:
    return json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()


class EventDelivery:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: httpx.AsyncClient,
        saleor: SaleorReporter | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client = client
        # A Saleor installation's merchant is told through Saleor's API, not by signed POSTs.
        self._saleor = saleor

    async def deliver(self, event_id: str) -> DeliveryResult:
        """Send one event if it is due and nobody else is sending it."""
        now = utcnow()
        async with self._sessions.begin() as session:
            if not await repository.claim_for_delivery(
                session, event_id, now=now, lease=CLAIM_LEASE
            ):
                return DeliveryResult(event_id, sent=False)
            event, merchant = await repository.event_and_merchant(session, event_id)
            url, body = merchant.callback_url, event_body(event)
            secret, previous_secret = signing_secrets(merchant, now)
            attempt_number = event.attempt_count + 1
            saleor = None
            if self._saleor is not None:
                saleor = await installation_for_merchant(session, merchant.id)

        if saleor is not None:
            assert self._saleor is not None
            started = time.perf_counter()
            outcome = await self._saleor.deliver(saleor, event)
            status_code, error = outcome.status_code, outcome.error
            latency_ms = _elapsed_ms(started)
            delivered = error is None
            if outcome.skipped:
                error = f"nothing to report to Saleor for {event.type}"
        else:
            status_code, error, latency_ms = await self._post(
                url, event_id, body, secret=secret, previous_secret=previous_secret
            )
            delivered = status_code is not None and 200 <= status_code < 300
        DELIVERY_ATTEMPTS.labels(
            "delivered" if delivered else ("error" if status_code is None else "rejected")
        ).inc()
        await self._record(event_id, attempt_number, delivered, status_code, error, latency_ms)
        log = logger.info if delivered else logger.warning
        log(
            "event delivery attempt %d: %s",
            attempt_number,
            status_code if status_code is not None else error,
            extra={"event_id": event_id, "merchant_id": merchant.id},
        )
        return DeliveryResult(event_id, sent=True, delivered=delivered, status_code=status_code)

    async def _post(
        self, url: str, event_id: str, body: bytes, *, secret: str, previous_secret: str | None
    ) -> tuple[int | None, str | None, int]:
        signed = signature_headers(
            secret, event_id, int(time.time()), body, previous_secret=previous_secret
        )
        headers = {"Content-Type": "application/json", **signed}
        started = time.perf_counter()
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return None, "timeout", _elapsed_ms(started)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:255], _elapsed_ms(started)
        error = None
        if response.is_redirect:
            error = f"redirect to {response.headers.get('location', '?')} not followed"[:255]
        elif not response.is_success:
            error = f"HTTP {response.status_code}"
        return response.status_code, error, _elapsed_ms(started)

    async def _record(
        self,
        event_id: str,
        attempt_number: int,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        latency_ms: int,
    ) -> None:
        now = utcnow()
        async with self._sessions.begin() as session:
            repository.add_attempt(
                session,
                event_id,
                at=now,
                status_code=status_code,
                latency_ms=latency_ms,
                error=error,
            )
            if delivered:
                await repository.mark_delivered(
                    session, event_id, attempt_count=attempt_number, at=now
                )
            elif attempt_number >= self._settings.event_max_attempts:
                await repository.mark_failed(session, event_id, attempt_count=attempt_number)
            else:
                delay = retry_delay(attempt_number, self._settings.event_retry_base_seconds)
                await repository.schedule_retry(
                    session, event_id, attempt_count=attempt_number, at=now + delay
                )

    async def due_events(self, limit: int = 500) -> Sequence[str]:
        async with self._sessions() as session:
            return await repository.due_event_ids(session, now=utcnow(), limit=limit)


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
