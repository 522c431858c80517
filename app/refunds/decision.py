"""What a provider's answer means for a refund: which status change, if any, to attempt.

A pure function, like ``app.payments.decision``, with one rule of its own: only the provider's
explicit word fails a refund. A refund the provider does not know, or one still pending past the
timeout, goes to ``needs_review`` — a refund wrongly recorded as failed invites a second payout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.payments.decision import amount_mismatch
from app.payments.domain import Actor
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.refunds.domain import RefundStatus
from app.refunds.models import Refund
from app.vocabulary import FailureCode

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RefundChange:
    """A refund status change to attempt, and what to record with it."""

    to_status: RefundStatus
    actor: Actor
    detail: str | None = None
    failure_code: FailureCode | None = None
    failure_message: str | None = None
    provider_transaction_id: str | None = None
    reported_amount_minor: int | None = None
    reported_currency: str | None = None

    def refund_values(self, at: datetime) -> dict[str, Any]:
        """The refund's columns after the change; unset fields keep the refund's values."""
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


def decide_refund(
    refund: Refund,
    answer: StatusResult | None,
    *,
    actor: Actor,
    now: datetime,
    timeout: timedelta,
) -> RefundChange | None:
    """The change ``answer`` calls for on ``refund``, or None. ``answer`` is None when the
    provider cannot be asked about a refund (Airtel): then only the timeout can act."""
    status = RefundStatus(refund.status)
    if answer is None or answer.status in (
        ProviderPaymentStatus.PENDING,
        ProviderPaymentStatus.NOT_FOUND,
    ):
        return _timed_out(refund, answer, actor=actor, now=now, timeout=timeout)

    mismatch = amount_mismatch(refund.amount_minor, refund.currency, answer)
    if mismatch is not None:
        logger.error(
            "provider reports another refund amount: %s",
            mismatch,
            extra={"refund_id": refund.id, "provider": refund.provider},
        )
        if status is RefundStatus.NEEDS_REVIEW:
            return None
        return RefundChange(
            to_status=RefundStatus.NEEDS_REVIEW,
            actor=actor,
            detail=mismatch,
            failure_message=f"Provider reported {answer.status.value}: {mismatch}"[:255],
            reported_amount_minor=answer.amount_minor,
            reported_currency=answer.currency,
            provider_transaction_id=answer.provider_transaction_id,
        )

    if answer.status is ProviderPaymentStatus.SUCCESSFUL:
        if status is RefundStatus.PENDING:
            return RefundChange(
                to_status=RefundStatus.SUCCEEDED,
                actor=actor,
                provider_transaction_id=answer.provider_transaction_id,
            )
        if status is RefundStatus.FAILED:
            return _contradiction(refund, answer, actor)
        return None

    # Failed at the provider.
    if status is RefundStatus.PENDING:
        return RefundChange(
            to_status=RefundStatus.FAILED,
            actor=actor,
            failure_code=answer.failure_code or FailureCode.PROVIDER_ERROR,
            failure_message=answer.failure_message,
        )
    if status is RefundStatus.SUCCEEDED:
        return _contradiction(refund, answer, actor)
    return None


def _timed_out(
    refund: Refund,
    answer: StatusResult | None,
    *,
    actor: Actor,
    now: datetime,
    timeout: timedelta,
) -> RefundChange | None:
    if refund.status != RefundStatus.PENDING.value or now - refund.created_at <= timeout:
        return None
    if answer is None:
        detail = "no answer from the provider, which has no refund status to ask"
    elif answer.status is ProviderPaymentStatus.NOT_FOUND:
        detail = "the provider does not know the refund's reference"
    else:
        detail = "still pending at the provider"
    detail = f"{detail} past the timeout: a person must check it with the provider"
    logger.error(detail, extra={"refund_id": refund.id, "provider": refund.provider})
    return RefundChange(
        to_status=RefundStatus.NEEDS_REVIEW, actor=actor, detail=detail, failure_message=detail
    )


def _contradiction(refund: Refund, answer: StatusResult, actor: Actor) -> RefundChange:
    detail = f"provider now says {answer.status.value}, we recorded {refund.status}"
    logger.error(detail, extra={"refund_id": refund.id, "provider": refund.provider})
    return RefundChange(
        to_status=RefundStatus.NEEDS_REVIEW,
        actor=actor,
        detail=detail,
        failure_message=detail,
        provider_transaction_id=answer.provider_transaction_id,
    )
