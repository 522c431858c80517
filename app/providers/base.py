"""The interface every provider adapter implements, and the domain types it speaks.

The payment service only ever sees these types. Each adapter keeps its provider's JSON in its own
``wire.py`` and maps it here at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from app.vocabulary import FailureCode, Provider


@dataclass(frozen=True, kw_only=True)
class PaymentRequest:
    """One request-to-pay, fully decided before the provider is called.

    ``reference`` is the payment's provider reference for life (MTN ``X-Reference-Id``, Airtel
    ``transaction.id``): it is persisted before the call and re-sent unchanged on every retry.
    """

    reference: str
    order_id: str
    amount_minor: int
    currency: str
    msisdn: str  # 2567XXXXXXXX (or an MTN sandbox test number)
    description: str
    callback_url: str | None = None  # MTN only: the per-payment X-Callback-Url


class InitiationOutcome(StrEnum):
    ACCEPTED = "accepted"  # the provider took the request; the result comes later
    REFUSED = "refused"  # a definitive "no": the payment fails now, nothing can move
    UNKNOWN = "unknown"  # unreachable or ambiguous after retries: leave pending, reconcile


@dataclass(frozen=True, kw_only=True)
class InitiationResult:
    outcome: InitiationOutcome
    failure_code: FailureCode | None = None
    failure_message: str | None = None

    @classmethod
    def accepted(cls) -> InitiationResult:
        return cls(outcome=InitiationOutcome.ACCEPTED)

    @classmethod
    def refused(cls, code: FailureCode, message: str) -> InitiationResult:
        return cls(
            outcome=InitiationOutcome.REFUSED, failure_code=code, failure_message=message[:255]
        )

    @classmethod
    def unknown(cls, message: str) -> InitiationResult:
        return cls(outcome=InitiationOutcome.UNKNOWN, failure_message=message[:255])


class ProviderPaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    NOT_FOUND = "not_found"  # the provider does not know the reference


@dataclass(frozen=True, kw_only=True)
class StatusResult:
    """What the provider says about a reference, in the gateway's terms.

    ``amount_minor``/``currency`` are what the provider reports, when it reports them (Airtel's
    enquiry does not), so the service can refuse to settle on a mismatch.
    """

    status: ProviderPaymentStatus
    amount_minor: int | None = None
    currency: str | None = None
    provider_transaction_id: str | None = None
    failure_code: FailureCode | None = None
    failure_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    """One refund, fully decided before the provider is called.

    ``reference`` is the refund's own provider reference for life (MTN ``X-Reference-Id``): it is
    persisted before the call and re-sent unchanged on every retry, never replaced by a new one.
    """

    reference: str
    payment_reference: str  # the refunded payment's provider reference (MTN referenceIdToRefund)
    # The provider's id of the refunded payment's transaction (Airtel ``airtel_money_id``).
    payment_transaction_id: str | None
    amount_minor: int
    currency: str
    order_id: str  # the storefront's order, for the provider's external id
    note: str  # why: the adapter makes it fit the provider's message fields
    callback_url: str | None = None  # MTN only: the per-refund X-Callback-Url


class RefundOutcome(StrEnum):
    ACCEPTED = "accepted"  # the provider took the refund; the result comes later
    SUCCEEDED = "succeeded"  # the provider's reply itself says the money went back (Airtel)
    REFUSED = "refused"  # a definitive "no": the refund fails now, no money moved
    UNKNOWN = "unknown"  # no usable answer: stays pending, never sent under another reference


@dataclass(frozen=True, kw_only=True)
class RefundResult:
    outcome: RefundOutcome
    provider_transaction_id: str | None = None
    failure_code: FailureCode | None = None
    failure_message: str | None = None

    @classmethod
    def accepted(cls) -> RefundResult:
        return cls(outcome=RefundOutcome.ACCEPTED)

    @classmethod
    def succeeded(cls, provider_transaction_id: str | None) -> RefundResult:
        return cls(outcome=RefundOutcome.SUCCEEDED, provider_transaction_id=provider_transaction_id)

    @classmethod
    def refused(cls, code: FailureCode, message: str) -> RefundResult:
        return cls(outcome=RefundOutcome.REFUSED, failure_code=code, failure_message=message[:255])

    @classmethod
    def unknown(cls, message: str) -> RefundResult:
        return cls(outcome=RefundOutcome.UNKNOWN, failure_message=message[:255])


class RefundProvider(Protocol):
    """A provider's refund operation, as the refund service uses it.

    Like ``PaymentProvider``: transient failures are retried inside (same reference every time),
    a provider's business answer is a ``RefundResult``, never an exception.
    """

    name: Provider

    async def request_refund(self, request: RefundRequest) -> RefundResult:
        """Ask the provider to give money back. Safe to call again with the same reference."""
        ...

    async def get_refund_status(self, reference: str) -> StatusResult:
        """Read a refund's status by its reference (``amount_minor``/``currency`` as reported).

        Raises ``ProviderUnavailable`` when the provider cannot be asked, or has no way to be
        asked (``RefundSupport.status_readable`` is False).
        """
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...


class PaymentProvider(Protocol):
    """A mobile-money provider, as the payment service uses it.

    Implementations retry transient failures themselves (same reference every time) and never
    raise for a provider's business answer: a refusal is an ``InitiationResult``, an unknown
    reference is ``ProviderPaymentStatus.NOT_FOUND``.
    """

    name: Provider

    async def request_payment(self, request: PaymentRequest) -> InitiationResult:
        """Ask the payer to approve a payment. Safe to call again with the same reference."""
        ...

    async def get_status(self, reference: str) -> StatusResult:
        """Read the current status of a reference.

        Raises ``ProviderUnavailable`` when the provider cannot be asked (after retries).
        """
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...
