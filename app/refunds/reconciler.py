"""Settling refunds whose answer did not come with the call or a callback.

The payment reconciler's shape: claims skip rows another worker holds (SKIP LOCKED) and push
each claimed refund's next check forward in the same transaction, each refund backs off on its
own schedule, and a provider's status reads share one rate limit with its payments'.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.payments.domain import Actor
from app.payments.reconciler import RateLimiter, SweepReport, next_check_delay
from app.providers.errors import ProviderError
from app.refunds import repository
from app.refunds.domain import RefundStatus
from app.refunds.models import Refund
from app.refunds.service import RefundService
from app.vocabulary import Provider

logger = logging.getLogger(__name__)


class RefundReconciler:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        refunds: RefundService,
        limiters: Mapping[Provider, RateLimiter],
        concurrency: int = 10,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._refunds = refunds
        self._limiters = limiters
        self._concurrency = concurrency

    async def claim_due(self, *, limit: int, due_by: datetime | None = None) -> Sequence[Refund]:
        now = utcnow()
        async with self._sessions.begin() as session:
            claimed = await repository.claim_due(
                session, limit=limit, due_by=due_by or now, now=now
            )
            await repository.schedule_next_checks(
                session, {refund.id: self._next_check_at(refund, now) for refund in claimed}
            )
            return claimed

    def _next_check_at(self, refund: Refund, now: datetime) -> datetime:
        next_at = now + next_check_delay(refund.check_count, self._settings)
        # The check just past the timeout is the one that hands the refund to a person.
        review_at = refund.created_at + timedelta(seconds=self._settings.payment_timeout_seconds)
        if now < review_at < next_at:
            next_at = review_at + timedelta(seconds=1)
        return next_at

    async def reconcile(self, *, batch: int = 100, max_refunds: int = 10_000) -> SweepReport:
        """One sweep over the refunds that were due when it began; each is checked once."""
        started = utcnow()
        report = SweepReport()
        semaphore = asyncio.Semaphore(self._concurrency)
        while report.claimed < max_refunds:
            claimed = await self.claim_due(limit=batch, due_by=started)
            if not claimed:
                break
            report.claimed += len(claimed)
            await asyncio.gather(*(self._check(refund, semaphore, report) for refund in claimed))
        if report.claimed:
            logger.info(
                "refund reconcile sweep: %d claimed, %d settled, %d unreachable",
                report.claimed,
                report.settled,
                report.unreachable,
            )
        return report

    async def _check(
        self, refund: Refund, semaphore: asyncio.Semaphore, report: SweepReport
    ) -> None:
        async with semaphore:
            limiter = self._limiters.get(Provider(refund.provider))
            if limiter is not None:
                await limiter.wait()
            try:
                updated = await self._refunds.check_with_provider(refund, Actor.RECONCILER)
            except ProviderError as exc:
                report.unreachable += 1
                logger.warning(
                    "refund reconcile: provider did not answer (%s)",
                    type(exc).__name__,
                    extra={"refund_id": refund.id, "provider": refund.provider},
                )
                return
            except Exception:
                report.unreachable += 1
                logger.exception("refund reconcile: check failed", extra={"refund_id": refund.id})
                return
            report.statuses[updated.status] = report.statuses.get(updated.status, 0) + 1
            if updated.status != RefundStatus.PENDING.value:
                report.settled += 1
