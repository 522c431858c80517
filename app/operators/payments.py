"""Payments as an operator sees them: every merchant's, with their refunds, events and (on
request) the whole timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import OutboxEvent
from app.operators.timeline import payment_timeline
from app.payments.models import Payment
from app.payments.schemas import payment_json
from app.refunds.models import Refund
from app.refunds.schemas import refund_json


def _operator_view(payment: Payment) -> dict[str, Any]:
    return {**payment_json(payment), "merchant_id": payment.merchant_id}


async def payment_details(
    sessions: async_sessionmaker[AsyncSession], payment_id: str, *, timeline: bool = False
) -> dict[str, Any] | None:
    """The payment object plus its merchant, refunds and events (each with its delivery
    status); with ``timeline``, everything that happened to it. None when there is none."""
    async with sessions() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            return None
        refunds = (
            await session.scalars(
                select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.created_at)
            )
        ).all()
        events = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.payment_id == payment_id)
                .order_by(OutboxEvent.created_at)
            )
        ).all()
    details = {
        **_operator_view(payment),
        "refunds": [refund_json(refund) for refund in refunds],
        "events": [
            {
                "id": event.id,
                "type": event.type,
                "refund_id": event.refund_id,
                "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
                "delivery_status": event.delivery_status,
                "attempts": event.attempt_count,
            }
            for event in events
        ],
    }
    if timeline:
        entries = await payment_timeline(sessions, payment_id) or []
        details["timeline"] = [entry.as_json() for entry in entries]
    return details


async def list_payments(
    sessions: async_sessionmaker[AsyncSession],
    *,
    status: str | None = None,
    merchant_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first, across merchants unless ``merchant_id`` is given."""
    query = select(Payment)
    if status is not None:
        query = query.where(Payment.status == status)
    if merchant_id is not None:
        query = query.where(Payment.merchant_id == merchant_id)
    query = query.order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit)
    async with sessions() as session:
        payments = (await session.scalars(query)).all()
    return [_operator_view(payment) for payment in payments]
