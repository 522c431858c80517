"""MTN MoMo's callback body in the OpenAPI document: its schema and examples."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

MTN_CALLBACK_SCHEMA: Schema = {
    "title": "MtnCallback",
    "description": (
        "MTN's request-to-pay status body (on a refund's URL, the refund status body, with "
        "`payee` instead of `payer`). MTN does not sign it and usually leaves out `referenceId`: "
        "the per-payment (per-refund) URL names the payment (refund). Nothing in it is believed: "
        "the gateway re-reads the status from MTN before anything changes."
    ),
    "type": "object",
    "properties": {
        "referenceId": {"type": "string", "description": "Sometimes present; the X-Reference-Id."},
        "externalId": {"type": "string", "description": "The order id the gateway sent."},
        "financialTransactionId": {"type": "string"},
        "amount": {"type": "string"},
        "currency": {"type": "string"},
        "payer": {
            "type": "object",
            "properties": {"partyIdType": {"type": "string"}, "partyId": {"type": "string"}},
        },
        "payee": {
            "type": "object",
            "description": "A refund's: who is paid back.",
            "properties": {"partyIdType": {"type": "string"}, "partyId": {"type": "string"}},
        },
        "payerMessage": {"type": "string"},
        "payeeNote": {"type": "string"},
        "status": {"type": "string", "enum": ["PENDING", "SUCCESSFUL", "FAILED"]},
        "reason": {
            "description": "A string today; an object `{code, message}` in MTN's old swagger.",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            ],
        },
    },
    "additionalProperties": True,
}
MTN_CALLBACK_EXAMPLES: Schema = {
    "successful": {
        "summary": "Paid",
        "value": {
            "financialTransactionId": "7481522923",
            "externalId": "ORD-1001",
            "amount": "50000",
            "currency": "UGX",
            "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
            "payerMessage": "Order ORD-1001",
            "payeeNote": "Order ORD-1001",
            "status": "SUCCESSFUL",
        },
    },
    "failed": {
        "summary": "Refused",
        "value": {
            "externalId": "ORD-1001",
            "amount": "50000",
            "currency": "UGX",
            "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
            "status": "FAILED",
            "reason": "NOT_ENOUGH_FUNDS",
        },
    },
    "refunded": {
        "summary": "A refund paid back (on /mtn-momo/refunds/{reference}/{token})",
        "value": {
            "financialTransactionId": "8123457701",
            "externalId": "ORD-1001",
            "amount": "20000",
            "currency": "UGX",
            "payee": {"partyIdType": "MSISDN", "partyId": "256772123456"},
            "payerMessage": "Item out of stock",
            "payeeNote": "Item out of stock",
            "status": "SUCCESSFUL",
        },
    },
}
