"""What an operator does to a payment besides resolving it, for the console and the CLI alike:
ask the provider now, send an event again, refund. Each writes its audit entry.

Unlike a resolution, these change nothing by themselves that needs the audit entry in the same
transaction: the provider's answer and the refund are recorded by their services (with their
own audit trail), so the operator's entry is written once the action is done, saying what it
did. An action that is refused (an unknown id, a refund the rules forbid) changed nothing and
is not written down; one whose provider could not be reached is, since a person did ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.events.models import OutboxEvent
from app.events.service import EventWithAttempts
from app.identifiers import is_identifier
from app.operators.audit import record_action
from app.operators.models import Operator
from app.payments import repository as payments_repository
from app.payments.domain import Actor
from app.payments.models import Payment
from app.providers.errors import ProviderError
from app.refunds.models import Refund
from app.refunds.service import NewRefund
from app.runtime import Runtime


class NoSuchObject(LookupError):
    """No payment or event by that id; the message names it."""


@dataclass(frozen=True)
class Acting:
    """Who acts, as the audit log records it: the operator (None for an unnamed CLI command),
    how a person reads who it was (their email, or ``cli:<user>``), and from where (the
    console client's address, or "cli")."""

    operator: Operator | None
    actor: str
    source: str

    @classmethod
    def operator_at(cls, operator: Operator, source: str) -> Acting:
        return cls(operator=operator, actor=operator.email, source=source)


async def record(
    runtime: Runtime,
    acting: Acting,
    action: str,
    *,
    target_type: str | None,
    target_id: str | None,
    detail: Mapping[str, Any],
) -> None:
    """One audit entry for an action that needs no other write with it (a refresh, a
    redelivery, a number revealed, an export)."""
    async with runtime.sessions.begin() as session:
        await record_action(
            session,
            operator=acting.operator,
            actor=acting.actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            source=acting.source,
            detail=detail,
        )


async def refresh_payment(runtime: Runtime, payment_id: str, acting: Acting) -> Payment:
    """Ask the provider about the payment now and apply its answer (audited as
    ``payment.refresh`` with the status before and after).

    Raises NoSuchObject, or the ProviderError when the provider could not be reached (audited
    too, with the error's kind: the attempt is part of the story).
    """
    payment = await _payment(runtime, payment_id)
    before = payment.status
    try:
        # Actor.API, as for the merchant's own refresh: Actor.OPERATOR marks a person's
        # resolution, which later provider answers must not overturn. This is only a read.
        refreshed = await runtime.payments.check_with_provider(payment, Actor.API)
    except ProviderError as unreachable:
        await _record_refresh(runtime, acting, payment, {"error": type(unreachable).__name__})
        raise
    await _record_refresh(runtime, acting, payment, {"from": before, "to": refreshed.status})
    return refreshed


async def _record_refresh(
    runtime: Runtime, acting: Acting, payment: Payment, outcome: Mapping[str, Any]
) -> None:
    await record(
        runtime,
        acting,
        "payment.refresh",
        target_type="payment",
        target_id=payment.id,
        detail={"provider": payment.provider, **outcome},
    )


async def redeliver_event(runtime: Runtime, event_id: str, acting: Acting) -> EventWithAttempts:
    """Queue one more delivery of the event (same id), audited as ``event.redeliver`` with its
    payment, so the audit log links to the payment's page."""
    event = None
    if is_identifier(event_id):  # anything else names nothing (and PostgreSQL text refuses NUL)
        async with runtime.sessions() as session:
            event = await session.get(OutboxEvent, event_id)
    if event is None:
        raise NoSuchObject(f"no event {event_id}")
    queued = await runtime.events.redeliver(event.merchant_id, event.id)
    await record(
        runtime,
        acting,
        "event.redeliver",
        target_type="event",
        target_id=event.id,
        detail={"payment_id": event.payment_id, "type": event.type},
    )
    return queued


async def create_refund(
    runtime: Runtime,
    payment_id: str,
    acting: Acting,
    *,
    amount: str | None,
    reason: str | None,
) -> Refund:
    """Refund the payment (``amount`` None: everything still refundable) through the refund
    service, which applies every rule the API does: an AppError (404, 409, 422) says why not.
    Audited as ``refund.create``; the refund's own first audit row names the operator too."""
    payment = await _payment(runtime, payment_id)
    new = NewRefund(
        payment_id=payment.id,
        amount=amount,
        reason=reason,
        metadata={},
        audit_detail=f"created by {acting.actor} ({acting.source})"[:255],
    )
    refund = await runtime.refunds.create_refund(payment.merchant_id, new)
    await record(
        runtime,
        acting,
        "refund.create",
        target_type="refund",
        target_id=refund.id,
        detail={
            "payment_id": payment.id,
            "amount_minor": refund.amount_minor,
            "currency": refund.currency,
            "reason": reason,
            "status": refund.status,
        },
    )
    return refund


async def _payment(runtime: Runtime, payment_id: str) -> Payment:
    payment = None
    if is_identifier(payment_id):
        async with runtime.sessions() as session:
            payment = await payments_repository.get(session, payment_id)
    if payment is None:
        raise NoSuchObject(f"no payment {payment_id}")
    return payment
