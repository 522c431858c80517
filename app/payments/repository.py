"""Every query on payments lives here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.pagination import newest_first_page
from app.payments.domain import ORDER_BLOCKING_STATUSES, PaymentStatus
from app.payments.models import Payment, PaymentTransition


async def get_for_merchant(
    session: AsyncSession, merchant_id: str, payment_id: str
) -> Payment | None:
    return await session.scalar(
        select(Payment).where(Payment.id == payment_id, Payment.merchant_id == merchant_id)
    )


async def get(session: AsyncSession, payment_id: str) -> Payment | None:
    return await session.get(Payment, payment_id, populate_existing=True)


async def get_by_reference(session: AsyncSession, reference: str) -> Payment | None:
    return await session.scalar(select(Payment).where(Payment.provider_reference == reference))


async def live_payment_for_order(
    session: AsyncSession, merchant_id: str, order_id: str
) -> Payment | None:
    return await session.scalar(
        select(Payment).where(
            Payment.merchant_id == merchant_id,
            Payment.order_id == order_id,
            Payment.status.in_([status.value for status in ORDER_BLOCKING_STATUSES]),
        )
    )


async def list_page(
    session: AsyncSession,
    merchant_id: str,
    *,
    limit: int,
    order_id: str | None = None,
    status: PaymentStatus | None = None,
    after: Payment | None = None,
) -> tuple[Sequence[Payment], bool]:
    """Newest first; ``after`` is the last payment of the previous page."""
    query = select(Payment).where(Payment.merchant_id == merchant_id)
    if order_id is not None:
        query = query.where(Payment.order_id == order_id)
    if status is not None:
        query = query.where(Payment.status == status.value)
    return await newest_first_page(
        session,
        query,
        id_column=Payment.id,
        created_column=Payment.created_at,
        after=after,
        limit=limit,
    )


async def conditional_update(
    session: AsyncSession, payment_id: str, from_status: PaymentStatus, values: dict[str, Any]
) -> bool:
    """``UPDATE … WHERE status = from_status``: the database picks exactly one winner among
    concurrent writers. Returns whether this one won."""
    result = await session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == from_status.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


async def update_returning(
    session: AsyncSession, payment_id: str, values: dict[str, Any]
) -> Payment:
    """Update and read back in one round trip."""
    result = await session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(**values)
        .returning(Payment)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one()


async def update_fields(session: AsyncSession, payment_id: str, values: dict[str, Any]) -> None:
    await session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def add_transition(
    session: AsyncSession,
    *,
    payment_id: str,
    from_status: PaymentStatus | None,
    to_status: PaymentStatus,
    actor: str,
    detail: str | None,
    at: datetime,
) -> None:
    session.add(
        PaymentTransition(
            payment_id=payment_id,
            from_status=from_status.value if from_status else None,
            to_status=to_status.value,
            actor=actor,
            detail=detail[:255] if detail else None,
            created_at=at,
        )
    )
