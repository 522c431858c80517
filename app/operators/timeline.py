"""Everything that happened to a payment, in time order: for the console and ``payments show
--timeline``.

One list from six records: the payment's transitions (with who caused each), the provider
callbacks about it (with what the checks made of them), the status reads from the provider,
the events sent to the storefront with each delivery attempt, its refunds and their own
transitions, and the operators' actions on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.models import DeliveryAttempt, OutboxEvent
from app.money import format_amount
from app.operators.models import Operator, OperatorAction
from app.payments.models import Payment, PaymentTransition
from app.refunds.models import Refund, RefundTransition
from app.status_reads import ProviderStatusRead
from app.webhooks.models import ProviderCallback

# Entries at the same instant keep this order: what caused a change before the change, the
# change before what it announced.
_ORDER = {
    "operator_action": 0,
    "callback": 1,
    "status_read": 2,
    "transition": 3,
    "refund": 4,
    "refund_transition": 5,
    "event": 6,
    "delivery_attempt": 7,
}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # one of _ORDER's keys
    summary: str  # one line for a person
    actor: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "summary": self.summary,
            "actor": self.actor,
            "detail": self.detail,
        }


async def payment_timeline(
    sessions: async_sessionmaker[AsyncSession], payment_id: str
) -> list[TimelineEntry] | None:
    """The payment's whole history, oldest first; None when there is no such payment."""
    async with sessions() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            return None
        refunds = (
            await session.scalars(select(Refund).where(Refund.payment_id == payment_id))
        ).all()
        refund_ids = [refund.id for refund in refunds]
        operators = await _operator_emails(session)
        entries = [
            *await _transitions(session, payment_id, operators),
            *await _callbacks(session, payment_id),
            *await _status_reads(session, payment_id),
            *await _events(session, payment_id),
            *_refunds(refunds),
            *await _refund_transitions(session, refund_ids, operators),
            *await _operator_actions(session, payment_id, refund_ids),
        ]
    return sorted(entries, key=lambda entry: (entry.at, _ORDER[entry.kind]))


async def _operator_emails(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(Operator.id, Operator.email))
    return {operator_id: email for operator_id, email in rows}


def _actor(actor: str, operator_id: str | None, operators: dict[str, str]) -> str:
    if operator_id is not None:
        return f"operator {operators.get(operator_id, operator_id)}"
    return actor


async def _transitions(
    session: AsyncSession, payment_id: str, operators: dict[str, str]
) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(PaymentTransition).where(PaymentTransition.payment_id == payment_id)
    )
    return [
        TimelineEntry(
            at=row.created_at,
            kind="transition",
            summary=f"{row.from_status or 'created'} → {row.to_status}",
            actor=_actor(row.actor, row.operator_id, operators),
            detail={"from": row.from_status, "to": row.to_status, "note": row.detail},
        )
        for row in rows
    ]


async def _callbacks(session: AsyncSession, payment_id: str) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(ProviderCallback).where(ProviderCallback.payment_id == payment_id)
    )
    return [
        TimelineEntry(
            at=row.received_at,
            kind="callback",
            summary=f"{row.provider} callback{' about a refund' if row.refund_id else ''}: "
            f"{row.outcome}",
            actor=row.provider,
            detail={"outcome": row.outcome, "source_ip": row.source_ip, "refund_id": row.refund_id},
        )
        for row in rows
    ]


async def _status_reads(session: AsyncSession, payment_id: str) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(ProviderStatusRead).where(ProviderStatusRead.payment_id == payment_id)
    )
    entries = []
    for row in rows:
        about = f"refund {row.refund_id}" if row.refund_id else "payment"
        said = row.status + (f" ({row.failure_code})" if row.failure_code else "")
        entries.append(
            TimelineEntry(
                at=row.at,
                kind="status_read",
                summary=f"{row.provider} status of the {about}: {said}",
                actor=row.actor,
                detail={
                    "status": row.status,
                    "refund_id": row.refund_id,
                    "amount_minor": row.amount_minor,
                    "currency": row.currency,
                    "provider_transaction_id": row.provider_transaction_id,
                    "failure_code": row.failure_code,
                    "detail": row.detail,
                },
            )
        )
    return entries


async def _events(session: AsyncSession, payment_id: str) -> list[TimelineEntry]:
    events = (
        await session.scalars(select(OutboxEvent).where(OutboxEvent.payment_id == payment_id))
    ).all()
    attempts: Sequence[DeliveryAttempt] = []
    if events:
        attempts = (
            await session.scalars(
                select(DeliveryAttempt).where(
                    DeliveryAttempt.event_id.in_([event.id for event in events])
                )
            )
        ).all()
    types = {event.id: event.type for event in events}
    entries = [
        TimelineEntry(
            at=event.created_at,
            kind="event",
            summary=f"event {event.type} ({event.delivery_status})",
            detail={
                "event_id": event.id,
                "type": event.type,
                "refund_id": event.refund_id,
                "delivery_status": event.delivery_status,
                "attempts": event.attempt_count,
            },
        )
        for event in events
    ]
    entries += [
        TimelineEntry(
            at=attempt.attempted_at,
            kind="delivery_attempt",
            summary=f"delivery of {types[attempt.event_id]}: "
            + (f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error or "error"),
            detail={
                "event_id": attempt.event_id,
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
            },
        )
        for attempt in attempts
    ]
    return entries


def _refunds(refunds: Sequence[Refund]) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=refund.created_at,
            kind="refund",
            summary=f"refund {refund.id} of {refund.currency} "
            f"{format_amount(refund.amount_minor, refund.currency)} ({refund.status})",
            detail={
                "refund_id": refund.id,
                "status": refund.status,
                "amount": format_amount(refund.amount_minor, refund.currency),
                "reason": refund.reason,
                "provider_reference": refund.provider_reference,
            },
        )
        for refund in refunds
    ]


async def _refund_transitions(
    session: AsyncSession, refund_ids: list[str], operators: dict[str, str]
) -> list[TimelineEntry]:
    if not refund_ids:
        return []
    rows = await session.scalars(
        select(RefundTransition).where(RefundTransition.refund_id.in_(refund_ids))
    )
    return [
        TimelineEntry(
            at=row.created_at,
            kind="refund_transition",
            summary=f"refund {row.refund_id}: {row.from_status or 'created'} → {row.to_status}",
            actor=_actor(row.actor, row.operator_id, operators),
            detail={
                "refund_id": row.refund_id,
                "from": row.from_status,
                "to": row.to_status,
                "note": row.detail,
            },
        )
        for row in rows
    ]


async def _operator_actions(
    session: AsyncSession, payment_id: str, refund_ids: list[str]
) -> list[TimelineEntry]:
    about: ColumnElement[bool] = (OperatorAction.target_type == "payment") & (
        OperatorAction.target_id == payment_id
    )
    if refund_ids:
        about = or_(
            about,
            (OperatorAction.target_type == "refund") & OperatorAction.target_id.in_(refund_ids),
        )
    rows = await session.scalars(select(OperatorAction).where(about))
    return [
        TimelineEntry(
            at=row.at,
            kind="operator_action",
            summary=f"{row.actor} {row.action} ({row.source})",
            actor=row.actor,
            detail={"action": row.action, "source": row.source, **row.detail},
        )
        for row in rows
    ]
