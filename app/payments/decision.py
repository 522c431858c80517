"""What a provider's answer means for a payment: which status change, if any, to attempt.

A pure function of the payment, the answer, the time and the two deadlines: no database, clock
or settings, so every case can be tested on a payment built in memory. Its only side effect is
the ERROR line an operator must see when the provider disagrees with what was recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.payments.domain import Actor, PaymentStatus, initiation_over_at
from app.payments.models import Payment
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import FailureCode

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Change:
    """A status change to attempt, and what to record with it."""

    to_status: PaymentStatus
    actor: Actor
    detail: str | None = None
    failure_code: FailureCode | None = None
    failure_message: str | None = None
    provider_transaction_id: str | None = None
    reported_amount_minor: int | None = None
    reported_currency: str | None = None

    def payment_values(self, at: datetime) -> dict[str, Any]:
        """The payment's columns after the change. A field the change leaves unset keeps the
        payment's value (a failure that names no transaction does not erase one)."""
        values: dict[str, Any] = {
            "status": self.to_status.value,
            "updated_at": at,
            "completed_at": at,
        }
        if self.failure_code is not None:
            values["failure_code"] = self.failure_code.value
        if self.failure_message is not None:
            values["failure_message"] = self.failure_message[:255]
        if self.provider_transaction_id is not None:
            values["provider_transaction_id"] = self.provider_transaction_id
        if self.reported_amount_minor is not None:
            values["reported_amount_minor"] = self.reported_amount_minor
        if self.reported_currency is not None:
            values["reported_currency"] = self.reported_currency
        return values


@dataclass(frozen=True, kw_only=True)
class Deadlines:
    """The two waits the decision depends on (from the settings)."""

    # A payment still pending at the provider this long after creation has expired.
    payment_timeout: timedelta
    # An unknown reference means "never accepted" only this long after its initiation was over:
    # the provider may not have recorded a request it accepted a moment ago.
    not_found_grace: timedelta


def decide(
    payment: Payment,
    answer: StatusResult,
    *,
    actor: Actor,
    now: datetime,
    deadlines: Deadlines,
) -> Change | None:
    """The change ``answer`` calls for on ``payment``, or None for "nothing to do"."""
    status = PaymentStatus(payment.status)

    if answer.status is ProviderPaymentStatus.PENDING:
        if status is PaymentStatus.PENDING and now - payment.created_at > deadlines.payment_timeout:
            return Change(
                to_status=PaymentStatus.EXPIRED,
                actor=actor,
                detail="still pending at the provider past the payment timeout",
                failure_message="The payer did not complete the payment in time.",
            )
        return None

    if answer.status is ProviderPaymentStatus.NOT_FOUND:
        # A slow first attempt may still land until the initiation is over, and the grace after.
        over_at = initiation_over_at(payment.created_at, payment.initiation_finished_at)
        if (
            status is PaymentStatus.PENDING
            and now >= over_at
            and now - over_at >= deadlines.not_found_grace
        ):
            return Change(
                to_status=PaymentStatus.FAILED,
                actor=actor,
                detail="provider does not know the reference",
                failure_code=FailureCode.NOT_FOUND_AT_PROVIDER,
                failure_message="The provider has no record of this payment.",
            )
        return None

    # From here the provider says successful or failed: it must be about our amount.
    mismatch = amount_mismatch(payment.amount_minor, payment.currency, answer)
    if mismatch is not None:
        logger.error(
            "provider reports another amount: %s",
            mismatch,
            extra={"payment_id": payment.id, "provider": payment.provider},
        )
        if status is PaymentStatus.NEEDS_REVIEW:
            return None
        return Change(
            to_status=PaymentStatus.NEEDS_REVIEW,
            actor=actor,
            detail=mismatch,
            failure_message=f"Provider reported {answer.status.value}: {mismatch}"[:255],
            reported_amount_minor=answer.amount_minor,
            reported_currency=answer.currency,
            provider_transaction_id=answer.provider_transaction_id,
        )

    if answer.status is ProviderPaymentStatus.SUCCESSFUL:
        if status is PaymentStatus.PENDING:
            return Change(
                to_status=PaymentStatus.SUCCESSFUL,
                actor=actor,
                provider_transaction_id=answer.provider_transaction_id,
            )
        if status in (PaymentStatus.FAILED, PaymentStatus.EXPIRED):
            return _contradiction(payment, answer, actor)
        return None

    # Failed at the provider.
    if status is PaymentStatus.PENDING:
        return Change(
            to_status=PaymentStatus.FAILED,
            actor=actor,
            failure_code=answer.failure_code or FailureCode.PROVIDER_ERROR,
            failure_message=answer.failure_message,
        )
    if status is PaymentStatus.SUCCESSFUL:
        return _contradiction(payment, answer, actor)
    return None


def amount_mismatch(amount_minor: int, currency: str, answer: StatusResult) -> str | None:
    """How ``answer`` contradicts the amount and currency we asked for, or None.

    A provider that does not report the amount or currency (Airtel's enquiry) is not
    contradicting it.
    """
    if answer.amount_minor is not None and answer.amount_minor != amount_minor:
        return f"amount {answer.amount_minor} != {amount_minor} (minor units)"
    if answer.currency is not None and answer.currency != currency:
        return f"currency {answer.currency} != {currency}"
    return None


def _contradiction(payment: Payment, answer: StatusResult, actor: Actor) -> Change:
    detail = f"provider now says {answer.status.value}, we recorded {payment.status}"
    logger.error(detail, extra={"payment_id": payment.id, "provider": payment.provider})
    return Change(
        to_status=PaymentStatus.NEEDS_REVIEW,
        actor=actor,
        detail=detail,
        failure_message=detail,
        provider_transaction_id=answer.provider_transaction_id,
    )
