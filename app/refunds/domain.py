"""A refund's life: statuses and the transitions between them.

A refund is money leaving the merchant: a refund recorded as failed that in fact went through
invites a second one. So nothing moves a refund to ``failed`` except the provider's own word;
an answer that never comes, or a reference the provider does not know, ends in ``needs_review``
for a person to settle.
"""

from __future__ import annotations

from enum import StrEnum

from app.payments.domain import EventType


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"


# Refunds in these statuses hold part of the payment: the money went back, may still go back,
# or a person must look. A new refund may only take what the others do not hold.
HOLDING_STATUSES = frozenset(
    {RefundStatus.PENDING, RefundStatus.SUCCEEDED, RefundStatus.NEEDS_REVIEW}
)

ALLOWED_REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING: frozenset(
        {RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.NEEDS_REVIEW}
    ),
    # The provider later contradicting a final answer: a person looks.
    RefundStatus.SUCCEEDED: frozenset({RefundStatus.NEEDS_REVIEW}),
    RefundStatus.FAILED: frozenset({RefundStatus.NEEDS_REVIEW}),
    RefundStatus.NEEDS_REVIEW: frozenset(),
}

# What a person may settle: a refund in needs_review becomes succeeded or failed, with a note.
OPERATOR_REFUND_RESOLUTIONS = frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED})

EVENT_FOR_REFUND_STATUS: dict[RefundStatus, EventType] = {
    RefundStatus.SUCCEEDED: EventType.REFUND_SUCCEEDED,
    RefundStatus.FAILED: EventType.REFUND_FAILED,
    RefundStatus.NEEDS_REVIEW: EventType.REFUND_NEEDS_REVIEW,
}
