"""The gauges that describe what is waiting: pending payments and undelivered events.

Read from the database when metrics are scraped (and after each worker sweep), so they are
right whichever process did the work.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import OutboxEvent
from app.metrics import OUTBOX_BACKLOG, PENDING_PAYMENTS
from app.payments.domain import PaymentStatus
from app.payments.models import Payment
from app.providers import registry


async def refresh_backlog_gauges(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        rows = await session.execute(
            select(Payment.provider, func.count())
            .where(Payment.status == PaymentStatus.PENDING.value)
            .group_by(Payment.provider)
        )
        pending: dict[str, int] = {provider: count for provider, count in rows}
        backlog = await session.scalar(
            select(func.count()).where(OutboxEvent.delivery_status == "pending")
        )
    for provider in registry.names():
        PENDING_PAYMENTS.labels(provider.value).set(pending.get(provider.value, 0))
    OUTBOX_BACKLOG.set(backlog or 0)
