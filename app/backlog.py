"""The gauges that describe what is waiting: pending payments and undelivered events.

Read from the database when metrics are scraped (and after each worker sweep), so they are
right whichever process did the work.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events import repository as events
from app.metrics import OUTBOX_BACKLOG, PENDING_PAYMENTS
from app.payments import repository as payments
from app.providers import registry


async def refresh_backlog_gauges(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        pending = await payments.pending_counts(session)
        backlog = await events.pending_delivery_count(session)
    for provider in registry.names():
        PENDING_PAYMENTS.labels(provider.value).set(pending.get(provider.value, 0))
    OUTBOX_BACKLOG.set(backlog)
