"""Settling what callbacks did not: claim due pending payments, ask the provider, apply.

A claim (``repository.claim_due``) skips rows another reconciler has locked and moves each
claimed payment's ``next_check_at`` forward in the same transaction, so concurrent reconcilers
(several workers) take disjoint sets and a payment is checked once per sweep. Each payment backs
off on its own schedule; a payment whose initiation is still in flight is never claimed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.metrics import RECONCILE_CHECKS, RECONCILE_RUNS
from app.payments import repository
from app.payments.domain import Actor, PaymentStatus
from app.payments.models import Payment
from app.payments.service import PaymentService
from app.providers import registry
from app.providers.errors import ProviderError
from app.vocabulary import Provider

logger = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
# MTN caps status checks at about 10 per second; Airtel publishes nothing, so the same.
DEFAULT_CHECKS_PER_SECOND = 10.0


class RateLimiter:
    """At most ``rate`` starts per second, spaced evenly (per process)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self._interval
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class SweepReport:
    claimed: int = 0
    settled: int = 0
    unreachable: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def next_check_delay(check_count: int, settings: Settings) -> timedelta:
    """Per-payment backoff: the reconcile interval, doubling with each check, capped."""
    base = max(settings.reconcile_interval_seconds, 1.0)
    delay = timedelta(seconds=base * 2 ** min(max(check_count - 1, 0), 16))
    return min(delay, MAX_BACKOFF)


class Reconciler:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        payments: PaymentService,
        concurrency: int = 10,
        rates: Mapping[Provider, float] | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._payments = payments
        self._concurrency = concurrency
        rates = rates or {}
        # Shared with the refund reconciler: a provider's cap covers all its status reads.
        self.limiters = {
            provider: RateLimiter(rates.get(provider, DEFAULT_CHECKS_PER_SECOND))
            for provider in registry.names()
        }

    async def claim_due(self, *, limit: int, due_by: datetime | None = None) -> Sequence[Payment]:
        """Claim up to ``limit`` pending payments whose check was due by ``due_by``, and push
        each one's next check back along its own backoff."""
        now = utcnow()
        async with self._sessions.begin() as session:
            claimed = await repository.claim_due(
                session, limit=limit, due_by=due_by or now, now=now
            )
            await repository.schedule_next_checks(
                session, {payment.id: self._next_check_at(payment, now) for payment in claimed}
            )
            return claimed

    def _next_check_at(self, payment: Payment, now: datetime) -> datetime:
        next_at = now + next_check_delay(payment.check_count, self._settings)
        # Never back off past the moment the payment would expire: that check settles it.
        expires_at = payment.created_at + timedelta(seconds=self._settings.payment_timeout_seconds)
        if now < expires_at < next_at:
            next_at = expires_at + timedelta(seconds=1)
        return next_at

    async def reconcile(self, *, batch: int = 100, max_payments: int = 10_000) -> SweepReport:
        """One sweep: claim what was due when the sweep began, batch by batch, and check each
        payment once. A claimed payment's next check moves past the sweep's start, so it is
        never claimed twice in one sweep, even by another worker sweeping beside this one."""
        started = utcnow()
        report = SweepReport()
        semaphore = asyncio.Semaphore(self._concurrency)
        # A sweep looks at every provider's due payments, so it counts once for each: a
        # provider's series moving says its payments are being looked at. A sweep that stops
        # on an error (the database gone) counts as such; a check the provider did not answer
        # does not, it is momo_reconcile_checks_total{result="unreachable"}.
        try:
            while report.claimed < max_payments:
                claimed = await self.claim_due(limit=batch, due_by=started)
                if not claimed:
                    break
                report.claimed += len(claimed)
                await asyncio.gather(
                    *(self._check(payment, semaphore, report) for payment in claimed)
                )
        except Exception:
            for provider in registry.names():
                RECONCILE_RUNS.labels(provider.value, "error").inc()
            raise
        for provider in registry.names():
            RECONCILE_RUNS.labels(provider.value, "ok").inc()
        if report.claimed:
            logger.info(
                "reconcile sweep: %d claimed, %d settled, %d unreachable",
                report.claimed,
                report.settled,
                report.unreachable,
            )
        return report

    async def _check(
        self, payment: Payment, semaphore: asyncio.Semaphore, report: SweepReport
    ) -> None:
        async with semaphore:
            await self.limiters[Provider(payment.provider)].wait()
            try:
                updated = await self._payments.check_with_provider(payment, Actor.RECONCILER)
            except ProviderError as exc:
                RECONCILE_CHECKS.labels(payment.provider, "unreachable").inc()
                report.unreachable += 1
                logger.warning(
                    "reconcile: provider did not answer (%s)",
                    type(exc).__name__,
                    extra={"payment_id": payment.id, "provider": payment.provider},
                )
                return
            except Exception:
                report.unreachable += 1
                logger.exception("reconcile: check failed", extra={"payment_id": payment.id})
                return
            RECONCILE_CHECKS.labels(payment.provider, updated.status).inc()
            report.statuses[updated.status] = report.statuses.get(updated.status, 0) + 1
            if updated.status != PaymentStatus.PENDING.value:
                report.settled += 1
