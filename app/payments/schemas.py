"""The payments API's request and response shapes."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from app.money import format_amount
from app.payments.domain import FailureCode, PaymentStatus, Provider
from app.payments.models import Payment

MAX_METADATA_KEYS = 20
MAX_METADATA_BYTES = 4096
DESCRIPTION_MAX_LENGTH = 128


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class CreatePaymentRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ORD-1001",
                    "amount": "50000",
                    "currency": "UGX",
                    "phone_number": "0772 123 456",
                    "provider": "mtn_momo",
                    "description": "Order ORD-1001",
                    "metadata": {"cart": "c_77"},
                }
            ]
        },
    )

    order_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.:/#]*$",
        description="The storefront's order; one live payment per order.",
    )
    amount: StrictStr | StrictInt = Field(
        description="Decimal string (or integer) in major units; UGX has no decimals."
    )
    currency: str = Field(default="UGX", pattern=r"^[A-Z]{3}$")
    phone_number: StrictStr = Field(max_length=32, description="Ugandan mobile number.")
    provider: Provider | None = Field(
        default=None, description="Omit to detect the network from the number."
    )
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata allows at most {MAX_METADATA_KEYS} keys")
        try:
            encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except ValueError:
            raise ValueError("metadata must be plain JSON (no NaN or Infinity)") from None
        if _holds_nul(value):
            # PostgreSQL's JSON cannot hold U+0000.
            raise ValueError("metadata must not contain NUL characters")
        if len(encoded.encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return value

    @field_validator("amount")
    @classmethod
    def _amount_is_finite(cls, value: str | int) -> str | int:
        if isinstance(value, str) and value.strip().lower() in {"nan", "inf", "infinity", "-inf"}:
            raise ValueError("amount must be a finite number")
        if isinstance(value, float) and not math.isfinite(value):  # pragma: no cover
            raise ValueError("amount must be a finite number")
        return value


PAYMENT_EXAMPLE: dict[str, Any] = {
    "id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
    "object": "payment",
    "status": "pending",
    "provider": "mtn_momo",
    "order_id": "ORD-1001",
    "amount": "50000",
    "currency": "UGX",
    "phone_number": "256772123456",
    "description": "Order ORD-1001",
    "metadata": {"cart": "c_77"},
    "provider_reference": "8f1c2a4e-6b1d-4d55-9a53-2f7f3c1e9b10",
    "provider_transaction_id": None,
    "failure_code": None,
    "failure_message": None,
    "created_at": "2026-01-13T09:30:00Z",
    "updated_at": "2026-01-13T09:30:00Z",
    "completed_at": None,
}


class PaymentOut(BaseModel):
    id: str
    object: Literal["payment"] = "payment"
    status: PaymentStatus
    provider: Provider
    order_id: str
    amount: str
    currency: str
    phone_number: str
    description: str
    metadata: dict[str, Any]
    provider_reference: str
    provider_transaction_id: str | None
    failure_code: FailureCode | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    model_config = ConfigDict(json_schema_extra={"examples": [PAYMENT_EXAMPLE]})

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            status=PaymentStatus(payment.status),
            provider=Provider(payment.provider),
            order_id=payment.order_id,
            amount=format_amount(payment.amount_minor, payment.currency),
            currency=payment.currency,
            phone_number=payment.phone_number,
            description=payment.description,
            metadata=payment.payment_metadata or {},
            provider_reference=payment.provider_reference,
            provider_transaction_id=payment.provider_transaction_id,
            failure_code=FailureCode(payment.failure_code) if payment.failure_code else None,
            failure_message=payment.failure_message,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
            completed_at=payment.completed_at,
        )


class PaymentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[PaymentOut]
    has_more: bool


def payment_json(payment: Payment) -> dict[str, Any]:
    """The payment object as plain JSON (for event payloads)."""
    return PaymentOut.of(payment).model_dump(mode="json")
