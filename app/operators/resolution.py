"""Resolving what no machine should: an operator settles a payment or refund in needs_review.

The checks a person deserves are made before anything changes: an admin who is enabled, a note
that says why (at least ``MIN_NOTE_LENGTH`` characters), an object that is in needs_review. The
change itself is one transaction (the service's ``resolve``): status, the audit trail with the
operator as actor, the operator audit log entry, and the event announcing it, tied to that entry.
A payment resolved to failed frees its order for a new payment.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.operators.audit import record_action
from app.operators.models import Operator
from app.operators.service import operator_for_action
from app.payments import repository as payments_repository
from app.payments.domain import OPERATOR_RESOLUTIONS, PaymentStatus
from app.payments.models import Payment
from app.payments.service import RecordAudit
from app.refunds import repository as refunds_repository
from app.refunds.domain import OPERATOR_REFUND_RESOLUTIONS, RefundStatus
from app.refunds.models import Refund
from app.runtime import Runtime

MIN_NOTE_LENGTH = 10
PAYMENT_OUTCOMES = sorted(s.value for s in OPERATOR_RESOLUTIONS[PaymentStatus.NEEDS_REVIEW])
REFUND_OUTCOMES = sorted(s.value for s in OPERATOR_REFUND_RESOLUTIONS)


class ResolutionRefused(ValueError):
    """The resolution cannot be made; the message says why, for the operator."""


class NothingToResolve(LookupError):
    """No payment or refund by that id."""


def checked_note(note: str) -> str:
    text = " ".join(note.split())
    if len(text) < MIN_NOTE_LENGTH:
        raise ResolutionRefused(
            f"a note of at least {MIN_NOTE_LENGTH} characters must say why (what was checked, "
            "with whom)"
        )
    return text[:255]


async def resolve_payment(
    runtime: Runtime,
    payment_id: str,
    *,
    status: str,
    note: str,
    operator_email: str,
    source: str,
) -> Payment:
    """Settle a needs_review payment as ``successful`` or ``failed``; emits the matching event."""
    if status not in PAYMENT_OUTCOMES:
        raise ResolutionRefused(f"a payment resolves to {' or '.join(PAYMENT_OUTCOMES)}")
    text = checked_note(note)
    operator = await operator_for_action(runtime.sessions, operator_email)
    async with runtime.sessions() as session:
        payment = await payments_repository.get(session, payment_id)
    if payment is None:
        raise NothingToResolve(f"no payment {payment_id}")
    _require_needs_review("payment", payment.id, payment.status)
    audit = _audit(operator, "payment.resolve", "payment", payment.id, source, status, text)
    resolved = await runtime.payments.resolve(
        payment.id, PaymentStatus(status), note=text, operator_id=operator.id, record_audit=audit
    )
    if resolved is None:
        raise ResolutionRefused(f"payment {payment.id} was resolved by someone else meanwhile")
    return resolved


async def resolve_refund(
    runtime: Runtime,
    refund_id: str,
    *,
    status: str,
    note: str,
    operator_email: str,
    source: str,
) -> Refund:
    """Settle a needs_review refund as ``succeeded`` or ``failed``; emits the matching event and
    brings the payment's refunded total along."""
    if status not in REFUND_OUTCOMES:
        raise ResolutionRefused(f"a refund resolves to {' or '.join(REFUND_OUTCOMES)}")
    text = checked_note(note)
    operator = await operator_for_action(runtime.sessions, operator_email)
    async with runtime.sessions() as session:
        refund = await refunds_repository.get(session, refund_id)
    if refund is None:
        raise NothingToResolve(f"no refund {refund_id}")
    _require_needs_review("refund", refund.id, refund.status)
    audit = _audit(operator, "refund.resolve", "refund", refund.id, source, status, text)
    resolved = await runtime.refunds.resolve(
        refund.id, RefundStatus(status), note=text, operator_id=operator.id, record_audit=audit
    )
    if resolved is None:
        raise ResolutionRefused(f"refund {refund.id} was resolved by someone else meanwhile")
    return resolved


def _require_needs_review(kind: str, identifier: str, status: str) -> None:
    if status != PaymentStatus.NEEDS_REVIEW.value:
        raise ResolutionRefused(
            f"{kind} {identifier} is {status}: only a {kind} in needs_review is resolved by hand"
        )


def _audit(
    operator: Operator,
    action: str,
    target_type: str,
    target_id: str,
    source: str,
    status: str,
    note: str,
) -> RecordAudit:
    detail: dict[str, Any] = {"from": "needs_review", "to": status, "note": note}

    async def record(connection: AsyncConnection) -> int:
        return await record_action(
            connection,
            operator=operator,
            actor=operator.email,
            action=action,
            target_type=target_type,
            target_id=target_id,
            source=source,
            detail=detail,
        )

    return record
