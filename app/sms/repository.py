"""The SQL behind SMS receipts: finding payments owed a receipt, inserting receipts without
ever doubling one, and claiming due ones so that two senders never take the same receipt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import OutboxEvent
from app.merchants.models import Merchant
from app.payments.domain import EventType
from app.payments.models import Payment
from app.sms.models import SmsReceipt

PENDING = "pending"


async def events_owed_a_receipt(session: AsyncSession, *, limit: int) -> Sequence[Any]:
    """``payment.succeeded`` events of merchants with receipts on, from after they switched them
    on, whose payment has a Ugandan mobile number and which have no receipt yet."""
    query = (
        select(
            OutboxEvent.id.label("event_id"),
            OutboxEvent.payment_id,
            OutboxEvent.merchant_id,
            Payment.phone_number,
            Payment.amount_minor,
            Payment.currency,
            Payment.order_id,
            Payment.provider_transaction_id,
            Merchant.name.label("merchant_name"),
            Merchant.sms_template,
        )
        .join(Merchant, Merchant.id == OutboxEvent.merchant_id)
        .join(Payment, Payment.id == OutboxEvent.payment_id)
        .outerjoin(SmsReceipt, SmsReceipt.event_id == OutboxEvent.id)
        .where(
            OutboxEvent.type == EventType.PAYMENT_SUCCEEDED.value,
            Merchant.sms_receipts.is_(True),
            Merchant.sms_receipts_since.is_not(None),
            OutboxEvent.created_at >= Merchant.sms_receipts_since,
            SmsReceipt.id.is_(None),
            # A provider's test number (MTN's sandbox payers) cannot be texted.
            Payment.phone_number.like("2567%"),
            func.length(Payment.phone_number) == 12,
        )
        .order_by(OutboxEvent.created_at)
        .limit(limit)
    )
    return (await session.execute(query)).all()


async def insert_receipts(session: AsyncSession, receipts: Sequence[Mapping[str, Any]]) -> int:
    """Insert what is not there yet: a receipt whose event already has one (another sweep got
    there first) is skipped by the database, not by a read before the write."""
    if not receipts:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(SmsReceipt)
        .values(list(receipts))
        .on_conflict_do_nothing(index_elements=[SmsReceipt.event_id])
        .returning(SmsReceipt.id)
    )
    return len((await session.execute(statement)).all())


async def claim_due(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int
) -> Sequence[Any]:
    """Claim up to ``limit`` pending receipts due by ``now``: count the attempt and move their
    next attempt past the lease, so that another sender leaves them alone while this one
    sends (and takes them again if this one dies). SKIP LOCKED on PostgreSQL, as the
    reconciler's claim."""
    due = (
        select(SmsReceipt.id)
        .where(SmsReceipt.status == PENDING, SmsReceipt.next_attempt_at <= now)
        .order_by(SmsReceipt.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = await session.execute(
        update(SmsReceipt)
        .where(SmsReceipt.id.in_(due.scalar_subquery()))
        .values(attempts=SmsReceipt.attempts + 1, next_attempt_at=now + lease, updated_at=now)
        .returning(
            SmsReceipt.id,
            SmsReceipt.payment_id,
            SmsReceipt.to_number,
            SmsReceipt.message,
            SmsReceipt.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    return claimed.all()


async def update_receipt(session: AsyncSession, receipt_id: str, values: Mapping[str, Any]) -> None:
    await session.execute(
        update(SmsReceipt)
        .where(SmsReceipt.id == receipt_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
