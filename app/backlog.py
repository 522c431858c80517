"""The gauges that describe what is waiting: pending and needs_review payments, the oldest
pending payment's age, and undelivered events.

Read from the database when metrics are scraped (and after each worker sweep), so they are
right whichever process did the work.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.events import repository as events
from app.metrics import (
    NEEDS_REVIEW_PAYMENTS,
    OLDEST_PENDING_AGE,
    OUTBOX_BACKLOG,
    PENDING_PAYMENTS,
)
from app.payments import repository as payments
from app.payments.domain import PaymentStatus
from app.providers import registry

PENDING = PaymentStatus.PENDING.value
NEEDS_REVIEW = PaymentStatus.NEEDS_REVIEW.value


async def refresh_backlog_gauges(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        waiting = await payments.waiting_counts(session)
        backlog = await events.pending_delivery_count(session)
    now = utcnow()
    for provider in registry.names():
        pending, oldest = waiting.get((provider.value, PENDING), (0, now))
        needs_review, _ = waiting.get((provider.value, NEEDS_REVIEW), (0, now))
        PENDING_PAYMENTS.labels(provider.value).set(pending)
        NEEDS_REVIEW_PAYMENTS.labels(provider.value).set(needs_review)
        OLDEST_PENDING_AGE.labels(provider.value).set(max(0.0, (now - oldest).total_seconds()))
    OUTBOX_BACKLOG.set(backlog)
