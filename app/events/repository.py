"""Every query on events and delivery attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import DeliveryAttempt, OutboxEvent
from app.merchants.models import Merchant
from app.pagination import newest_first_page


async def claim_for_delivery(
    session: AsyncSession, event_id: str, *, now: datetime, lease: timedelta
) -> bool:
    """Take an event that is due, pushing its next attempt past the lease so nobody else
    sends it meanwhile (the sweep and a job may both try). Returns whether we got it.

    A disabled merchant's events are not taken: they wait, untouched (no attempt, nothing
    counted against their retries), until the merchant is enabled again."""
    result = await session.execute(
        update(OutboxEvent)
        .where(
            OutboxEvent.id == event_id,
            OutboxEvent.delivery_status == "pending",
            or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
            _merchant_enabled(),
        )
        .values(next_attempt_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def _merchant_enabled() -> ColumnElement[bool]:
    return (
        select(Merchant.id)
        .where(Merchant.id == OutboxEvent.merchant_id, Merchant.disabled_at.is_(None))
        .exists()
    )


async def event_and_merchant(session: AsyncSession, event_id: str) -> tuple[OutboxEvent, Merchant]:
    """An event that exists (e.g. just claimed) and the merchant it goes to."""
    event = await session.get(OutboxEvent, event_id)
    assert event is not None
    merchant = await session.get(Merchant, event.merchant_id)
    assert merchant is not None
    return event, merchant


def add_attempt(
    session: AsyncSession,
    event_id: str,
    *,
    at: datetime,
    status_code: int | None,
    latency_ms: int,
    error: str | None,
) -> None:
    """Record one attempt; the row is written with the session's next statement or commit."""
    session.add(
        DeliveryAttempt(
            event_id=event_id,
            attempted_at=at,
            status_code=status_code,
            latency_ms=latency_ms,
            error=error,
        )
    )


async def mark_delivered(
    session: AsyncSession, event_id: str, *, attempt_count: int, at: datetime
) -> None:
    await _update(
        session,
        event_id,
        attempt_count=attempt_count,
        delivery_status="delivered",
        delivered_at=at,
        next_attempt_at=None,
    )


async def mark_failed(session: AsyncSession, event_id: str, *, attempt_count: int) -> None:
    """No more attempts: the storefront never took it."""
    await _update(
        session,
        event_id,
        attempt_count=attempt_count,
        delivery_status="failed",
        next_attempt_at=None,
    )


async def schedule_retry(
    session: AsyncSession, event_id: str, *, attempt_count: int, at: datetime
) -> None:
    await _update(session, event_id, attempt_count=attempt_count, next_attempt_at=at)


async def queue_redelivery(session: AsyncSession, event_id: str, *, at: datetime) -> None:
    """Due again at ``at``, whatever happened before (delivered and failed events too)."""
    await _update(session, event_id, delivery_status="pending", next_attempt_at=at)


async def _update(session: AsyncSession, event_id: str, **values: object) -> None:
    await session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(**values))


async def pending_delivery_count(session: AsyncSession) -> int:
    """Events not yet delivered that will still be tried."""
    count = await session.scalar(
        select(func.count()).where(OutboxEvent.delivery_status == "pending")
    )
    return count or 0


async def due_event_ids(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[str]:
    """Events due for an attempt, oldest due first; a disabled merchant's events are not."""
    return (
        await session.scalars(
            select(OutboxEvent.id)
            .join(Merchant, Merchant.id == OutboxEvent.merchant_id)
            .where(
                OutboxEvent.delivery_status == "pending",
                or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
                Merchant.disabled_at.is_(None),
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
