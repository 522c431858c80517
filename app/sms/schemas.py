"""The SMS receipts API's response shapes. The payer's number only ever leaves masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.phone import mask
from app.sms.models import SmsReceipt
from app.sms.service import SmsStatus

SMS_RECEIPT_EXAMPLE: dict[str, Any] = {
    "id": "sms_0193b2c4f3a1e2d3c4b5a6978877665544",
    "object": "sms_receipt",
    "payment_id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
    "to": "2567*****456",
    "message": "Payment of UGX 50,000 to Kampala Electronics received. Order ORD-1001. "
    "Ref MP210603.1234.L06941",
    "status": "delivered",
    "attempts": 1,
    "status_code": 101,
    "failure_reason": None,
    "delivery_status": "Success",
    "created_at": "2026-01-13T09:31:12Z",
    "sent_at": "2026-01-13T09:31:13Z",
}


class SmsReceiptOut(BaseModel):
    id: str
    object: Literal["sms_receipt"] = "sms_receipt"
    payment_id: str
    to: str = Field(description="The payer's number, masked.")
    message: str
    status: SmsStatus
    attempts: int = Field(description="Sends tried so far.")
    status_code: int | None = Field(
        description="Africa's Talking's recipient statusCode (101 Sent, 405 InsufficientBalance…)."
    )
    failure_reason: str | None
    delivery_status: str | None = Field(
        description="The last delivery report's status (Success, Failed, Rejected, Buffered…)."
    )
    created_at: datetime
    sent_at: datetime | None

    model_config = ConfigDict(json_schema_extra={"examples": [SMS_RECEIPT_EXAMPLE]})

    @classmethod
    def of(cls, receipt: SmsReceipt) -> SmsReceiptOut:
        return cls(
            id=receipt.id,
            payment_id=receipt.payment_id,
            to=mask(receipt.to_number),
            message=receipt.message,
            status=SmsStatus(receipt.status),
            attempts=receipt.attempts,
            status_code=receipt.status_code,
            failure_reason=receipt.failure_reason,
            delivery_status=receipt.delivery_status,
            created_at=receipt.created_at,
            sent_at=receipt.sent_at,
        )


class SmsReceiptList(BaseModel):
    object: Literal["list"] = "list"
    data: list[SmsReceiptOut]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"object": "list", "data": [SMS_RECEIPT_EXAMPLE]}]}
    )
