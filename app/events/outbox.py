"""Writing a storefront event into the outbox.

An event is inserted in the same transaction as the payment change it announces, so the two
commit or vanish together; delivery (``app.events.delivery``) picks it up after the commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import new_id
from app.events.models import OutboxEvent
from app.payments.domain import EventType
from app.payments.models import Payment
from app.payments.schemas import payment_json

_EVENTS: Table = OutboxEvent.__table__  # type: ignore[assignment]
# Built once, so SQLAlchemy compiles it once: it runs with every status change.
_INSERT_EVENT = _EVENTS.insert()


async def insert_event(
    connection: AsyncConnection,
    payment: Payment,
    event_type: EventType,
    at: datetime,
    *,
    operator_action_id: int | None = None,
) -> str:
    """Insert the event announcing ``payment`` as it now is, on ``connection``'s transaction,
    due for delivery at once. Returns the event's id. ``operator_action_id``: the audit entry of
    the operator's resolution that caused it."""
    return await _insert(
        connection,
        merchant_id=payment.merchant_id,
        payment_id=payment.id,
        refund_id=None,
        event_type=event_type,
        data=payment_json(payment),
        at=at,
        operator_action_id=operator_action_id,
    )


async def insert_refund_event(
    connection: AsyncConnection,
    *,
    merchant_id: str,
    payment_id: str,
    refund_id: str,
    event_type: EventType,
    data: dict[str, Any],
    at: datetime,
    operator_action_id: int | None = None,
) -> str:
    """Insert the event announcing a refund (``data``: the refund object as it now is)."""
    return await _insert(
        connection,
        merchant_id=merchant_id,
        payment_id=payment_id,
        refund_id=refund_id,
        event_type=event_type,
        data=data,
        at=at,
        operator_action_id=operator_action_id,
    )


async def _insert(
    connection: AsyncConnection,
    *,
    merchant_id: str,
    payment_id: str,
    refund_id: str | None,
    event_type: EventType,
    data: dict[str, Any],
    at: datetime,
    operator_action_id: int | None,
) -> str:
    event_id = new_id("evt")
    await connection.execute(
        _INSERT_EVENT,
        {
            "id": event_id,
            "merchant_id": merchant_id,
            "payment_id": payment_id,
            "refund_id": refund_id,
            "operator_action_id": operator_action_id,
            "type": event_type.value,
            "payload": {
                "id": event_id,
                "type": event_type.value,
                "created_at": at.isoformat().replace("+00:00", "Z"),
                "data": data,
            },
            "delivery_status": "pending",
            "attempt_count": 0,
            "next_attempt_at": at,
            "created_at": at,
        },
    )
    return event_id
