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
