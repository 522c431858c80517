"""The payment's life: statuses, the transitions between them, actors and events.

Providers and failure codes are shared with every layer and live in ``app.vocabulary``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    EXPIRED = "expired"
    NEEDS_REVIEW = "needs_review"

    @property
    def is_terminal(self) -> bool:
        return self is not PaymentStatus.PENDING


# A payment in one of these holds its order: money has moved, may still move, or a person must
# look. A new payment for the same order is refused while one of these exists.
ORDER_BLOCKING_STATUSES = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.SUCCESSFUL, PaymentStatus.NEEDS_REVIEW}
)

# The only transitions the gateway makes. Terminal states absorb repeats; the one way out of a
# terminal state is to needs_review, when the provider later contradicts what was recorded
# (money moved after we said failed/expired, or a success the provider now calls failed).
ALLOWED_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset(
        {
            PaymentStatus.SUCCESSFUL,
            PaymentStatus.FAILED,
            PaymentStatus.EXPIRED,
            PaymentStatus.NEEDS_REVIEW,
        }
    ),
    PaymentStatus.SUCCESSFUL: frozenset({PaymentStatus.NEEDS_REVIEW}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.NEEDS_REVIEW}),
    PaymentStatus.EXPIRED: frozenset({PaymentStatus.NEEDS_REVIEW}),
    PaymentStatus.NEEDS_REVIEW: frozenset(),
}


# What a person may settle that no machine should: a payment in needs_review becomes successful
# or failed, with a note, by an operator (app.operators.resolution).
OPERATOR_RESOLUTIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.NEEDS_REVIEW: frozenset({PaymentStatus.SUCCESSFUL, PaymentStatus.FAILED}),
}

# Longer than any initiation can run (three attempts, 30 s read timeouts, backoff). A payment
# whose initiation has not finished after this was abandoned by a process that died mid-call.
ABANDONED_INITIATION_AFTER = timedelta(minutes=10)


class Actor(StrEnum):
    """Who caused a transition; recorded in the audit trail."""

    API = "api"
    CALLBACK = "callback"
    RECONCILER = "reconciler"
    OPERATOR = "operator"  # a person's resolution (app.operators.resolution)


class EventType(StrEnum):
    """Every event the storefront is sent: a payment's final statuses and its refunds'."""

    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_EXPIRED = "payment.expired"
    PAYMENT_NEEDS_REVIEW = "payment.needs_review"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    REFUND_NEEDS_REVIEW = "refund.needs_review"


def initiation_over_at(created_at: datetime, finished_at: datetime | None) -> datetime:
    """When the request-to-pay call was over: when it finished or, if the process died during
    it, once it can no longer be running."""
    return finished_at or created_at + ABANDONED_INITIATION_AFTER


EVENT_FOR_STATUS: dict[PaymentStatus, EventType] = {
    PaymentStatus.SUCCESSFUL: EventType.PAYMENT_SUCCEEDED,
    PaymentStatus.FAILED: EventType.PAYMENT_FAILED,
    PaymentStatus.EXPIRED: EventType.PAYMENT_EXPIRED,
    PaymentStatus.NEEDS_REVIEW: EventType.PAYMENT_NEEDS_REVIEW,
}
