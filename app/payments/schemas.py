"""The payments API's request and response shapes."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.money import CURRENCY_EXPONENTS, amount_hint, format_amount
from app.payments.domain import PaymentStatus
from app.payments.models import Payment
from app.providers import registry
from app.vocabulary import FailureCode, Provider

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


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """The limits every object's ``metadata`` keeps: few keys, small, plain JSON."""
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


def _registered_provider(value: str) -> Provider:
    if not registry.is_registered(value):
        expected = " or ".join(f"'{name}'" for name in registry.names())
        raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected})
    return Provider(value)


def _provider_enum(schema: dict[str, Any]) -> None:
    # Read when the document is made, so that a provider registered later is listed too.
    schema["enum"] = list(registry.names())


# A registered provider's name: which ones exist is the registry's business, not the schema's.
ProviderName = Annotated[
    str,
    AfterValidator(_registered_provider),
    Field(json_schema_extra=_provider_enum, examples=["mtn_momo"]),
]


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
    # Before amount: fields are validated in this order, and amount's messages name the
    # currency ("a whole number of shillings").
    currency: str = Field(default="UGX", pattern=r"^[A-Z]{3}$")
    amount: StrictStr | StrictInt = Field(
        description="Decimal string (or integer) in major units; UGX has no decimals."
    )
    phone_number: StrictStr = Field(max_length=32, description="Ugandan mobile number.")
    provider: ProviderName | None = Field(
        default=None, description="Omit to detect the network from the number."
    )
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)

    @field_validator("amount", mode="wrap")
    @classmethod
    def _amount_shape(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> str | int:
        # Refused here, before the str | int union runs, so the developer reads one message
        # about the amount rather than one per union branch. The rest (digits, decimals, sign,
        # range) is checked with the currency in app.payments.validation.
        currency = info.data.get("currency")  # absent when the currency itself was refused
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PydanticCustomError("amount_type", _json_amount_message(value, currency))
        if isinstance(value, str) and value.strip().lower() in {"nan", "inf", "infinity", "-inf"}:
            raise PydanticCustomError(
                "amount_not_finite", f"amount must be {amount_hint(currency)}"
            )
        checked: str | int = handler(value)
        return checked


def _json_amount_message(value: Any, currency: str | None) -> str:
    """Why a JSON value that is neither a string nor an integer is not an amount."""
    hint = amount_hint(currency)
    if not isinstance(value, float) or not math.isfinite(value):
        return f"amount must be {hint}"
    if currency is not None and CURRENCY_EXPONENTS.get(currency) == 0:
        if not value.is_integer():
            return f"{currency} has no decimals: {hint}"
        # 50000.0 or 1e5: the value is fine, the spelling is not (money never travels as a
        # float, so only strings and integers are taken).
        return f"amount must be {hint}, written without a decimal point or exponent"
    return (
        'amount must be a string such as "12.50" or an integer such as 50000, '
        "not a JSON number with a decimal point or exponent"
    )


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
    "amount_refunded": "0",
    "created_at": "2026-01-13T09:30:00Z",
    "updated_at": "2026-01-13T09:30:00Z",
    "completed_at": None,
}


class PaymentOut(BaseModel):
    id: str
    object: Literal["payment"] = "payment"
    status: PaymentStatus
    provider: ProviderName
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
    amount_refunded: str = Field(
        description='The sum of the payment\'s succeeded refunds ("0" when none); the payment '
        "itself stays `successful`."
    )
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
            amount_refunded=format_amount(payment.amount_refunded_minor or 0, payment.currency),
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
