"""The refunds API's request and response shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.identifiers import IDENTIFIER_PATTERN
from app.money import format_amount
from app.payments.schemas import ProviderName, check_metadata
from app.refunds.domain import RefundStatus
from app.refunds.models import Refund
from app.vocabulary import FailureCode, Provider

REASON_MAX_LENGTH = 160


class CreateRefundRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "payment_id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
                    "amount": "20000",
                    "reason": "Item out of stock",
                    "metadata": {"return": "r_12"},
                },
                {"payment_id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61"},
            ]
        },
    )

    payment_id: str = Field(pattern=IDENTIFIER_PATTERN, max_length=64)
    amount: StrictStr | StrictInt | None = Field(
        default=None,
        description="Decimal string (or integer) in the payment's currency; omit to refund "
        "everything still refundable. Airtel Money refunds only the full amount, once.",
    )
    reason: str | None = Field(default=None, max_length=REASON_MAX_LENGTH)
    metadata: Annotated[dict[str, Any], AfterValidator(check_metadata)] = Field(
        default_factory=dict
    )


REFUND_EXAMPLE: dict[str, Any] = {
    "id": "re_0193b2c6a8e07d4c9b1f3a2e5d7c9b10",
    "object": "refund",
    "payment_id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
    "status": "pending",
    "amount": "20000",
    "currency": "UGX",
    "reason": "Item out of stock",
    "metadata": {"return": "r_12"},
    "provider": "mtn_momo",
    "provider_reference": "5b0e1f3c-2a7d-4c8e-9f61-0d2b4a6c8e10",
    "provider_transaction_id": None,
    "failure_code": None,
    "failure_message": None,
    "created_at": "2026-01-14T10:02:00Z",
    "updated_at": "2026-01-14T10:02:00Z",
    "completed_at": None,
}


class RefundOut(BaseModel):
    id: str
    object: Literal["refund"] = "refund"
    payment_id: str
    status: RefundStatus
    amount: str
    currency: str
    reason: str | None
    metadata: dict[str, Any]
    provider: ProviderName
    provider_reference: str
    provider_transaction_id: str | None
    failure_code: FailureCode | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    model_config = ConfigDict(json_schema_extra={"examples": [REFUND_EXAMPLE]})

    @classmethod
    def of(cls, refund: Refund) -> RefundOut:
        return cls(
            id=refund.id,
            payment_id=refund.payment_id,
            status=RefundStatus(refund.status),
            amount=format_amount(refund.amount_minor, refund.currency),
            currency=refund.currency,
            reason=refund.reason,
            metadata=refund.refund_metadata or {},
            provider=Provider(refund.provider),
            provider_reference=refund.provider_reference,
            provider_transaction_id=refund.provider_transaction_id,
            failure_code=FailureCode(refund.failure_code) if refund.failure_code else None,
            failure_message=refund.failure_message,
            created_at=refund.created_at,
            updated_at=refund.updated_at,
            completed_at=refund.completed_at,
        )


class RefundList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RefundOut]
    has_more: bool


def refund_json(refund: Refund) -> dict[str, Any]:
    """The refund object as plain JSON (for event payloads and stored idempotent answers)."""
    return RefundOut.of(refund).model_dump(mode="json")
