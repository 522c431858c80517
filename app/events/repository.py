"""Every query on events and delivery attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import DeliveryAttempt, OutboxEvent
from app.pagination import newest_first_page


async def claim_for_delivery(
    session: AsyncSession, event_id: str, *, now: datetime, lease: timedelta
) -> bool:
    """Take an event that is due, pushing its next attempt past the lease so nobody else
    sends it meanwhile (the sweep and a job may both try). Returns whether we got it."""
    result = await session.execute(
        update(OutboxEvent)
        .where(
            OutboxEvent.id == event_id,
            OutboxEvent.delivery_status == "pending",
            or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
        )
        .values(next_attempt_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


async def due_event_ids(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[str]:
    return (
        await session.scalars(
            select(OutboxEvent.id)
            .where(
                OutboxEvent.delivery_status == "pending",
                or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
            )
            .order_by(OutboxEvent.next_attempt_at)
            .limit(limit)
        )
    ).all()


async def get_for_merchant(
    session: AsyncSession, merchant_id: str, event_id: str
) -> OutboxEvent | None:
    return await session.scalar(
        select(OutboxEvent).where(
            OutboxEvent.id == event_id, OutboxEvent.merchant_id == merchant_id
        )
    )


async def attempts_for(
    session: AsyncSession, event_ids: Sequence[str]
) -> dict[str, list[DeliveryAttempt]]:
    attempts: dict[str, list[DeliveryAttempt]] = {event_id: [] for event_id in event_ids}
    if not event_ids:
        return attempts
    rows = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.event_id.in_(event_ids))
        .order_by(DeliveryAttempt.attempted_at, DeliveryAttempt.id)
    )
    for attempt in rows:
        attempts[attempt.event_id].append(attempt)
    return attempts


async def list_page(
    session: AsyncSession,
    merchant_id: str,
    *,
    limit: int,
    payment_id: str | None,
    event_type: str | None,
    after: OutboxEvent | None,
) -> tuple[Sequence[OutboxEvent], bool]:
    query = select(OutboxEvent).where(OutboxEvent.merchant_id == merchant_id)
    if payment_id is not None:
        query = query.where(OutboxEvent.payment_id == payment_id)
    if event_type is not None:
        query = query.where(OutboxEvent.type == event_type)
    return await newest_first_page(
        session,
        query,
        id_column=OutboxEvent.id,
        created_column=OutboxEvent.created_at,
        after=after,
        limit=limit,
    )
