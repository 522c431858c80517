"""Success examples: the payment, the health probes, and the provider callbacks with their
replies."""

from __future__ import annotations

from app.openapi.schema import Schema
from app.payments.domain import EventType

FINAL_PAYMENTS: dict[EventType, Schema] = {
    EventType.PAYMENT_SUCCEEDED: {"status": "successful", "provider_transaction_id": "7481522923"},
    EventType.PAYMENT_FAILED: {
        "status": "failed",
        "failure_code": "insufficient_funds",
        "failure_message": "NOT_ENOUGH_FUNDS",
    },
    EventType.PAYMENT_EXPIRED: {
        "status": "expired",
        "failure_message": "The payer did not complete the payment in time.",
    },
    EventType.PAYMENT_NEEDS_REVIEW: {
        "status": "needs_review",
        "provider_transaction_id": "7481522923",
        "failure_message": "Provider reported successful: amount 4000000 != 5000000 (minor units)",
    },
}

HEALTH_SCHEMA: Schema = {
    "title": "Health",
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok"]}},
    "examples": [{"status": "ok"}],
}

READINESS_SCHEMA: Schema = {
    "title": "Readiness",
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ready"]},
        "checks": {
            "type": "object",
            "description": "`database`, and `redis` when REDIS_URL is set.",
            "additionalProperties": {"type": "string", "enum": ["ok", "unreachable"]},
        },
    },
    "examples": [{"status": "ready", "checks": {"database": "ok", "redis": "ok"}}],
}

CALLBACK_REPLY_SCHEMA: Schema = {
    "title": "CallbackReply",
    "type": "object",
    "required": ["status", "message"],
    "properties": {
        "status": {"type": "string", "enum": ["success"]},
        "message": {"type": "string", "enum": ["Webhook processed", "Already processed"]},
    },
}
CALLBACK_REPLY_EXAMPLES: Schema = {
    "processed": {
        "summary": "First delivery",
        "value": {"status": "success", "message": "Webhook processed"},
    },
    "repeat": {
        "summary": "The same callback again (answered 2xx, never 409)",
        "value": {"status": "success", "message": "Already processed"},
    },
}

MTN_CALLBACK_SCHEMA: Schema = {
    "title": "MtnCallback",
    "description": (
        "MTN's request-to-pay status body. MTN does not sign it and usually leaves out "
        "`referenceId`: the per-payment URL names the payment. Nothing in it is believed: the "
        "gateway re-reads the status from MTN before anything changes."
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
}

AIRTEL_CALLBACK_SCHEMA: Schema = {
    "title": "AirtelCallback",
    "description": (
        "Airtel's callback to the URL registered in its portal. `transaction.id` is the "
        "gateway's own reference. With callback authentication on, `hash` is "
        "base64(HMAC-SHA256(AIRTEL_MONEY_WEBHOOK_SECRET, transaction)). The gateway re-reads "
        "the status from Airtel before anything changes."
    ),
    "type": "object",
    "required": ["transaction"],
    "properties": {
        "transaction": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string"},
                "message": {"type": "string"},
                "status_code": {"type": "string", "enum": ["TS", "TF"]},
                "airtel_money_id": {"type": "string"},
            },
        },
        "hash": {"type": "string"},
    },
    "additionalProperties": True,
}
AIRTEL_CALLBACK_EXAMPLES: Schema = {
    "successful": {
        "summary": "Paid",
        "value": {
            "transaction": {
                "id": "8f1c2a4e6b1d4d559a532f7f3c1e9b10",
                "message": (
                    "Paid UGX 50000 to MERCHANT Charge UGX 0, Trans ID MP240113.0930.A12345."
                ),
                "status_code": "TS",
                "airtel_money_id": "MP240113.0930.A12345",
            }
        },
    },
    "failed": {
        "summary": "Refused",
        "value": {
            "transaction": {
                "id": "8f1c2a4e6b1d4d559a532f7f3c1e9b10",
                "message": "Insufficient funds",
                "status_code": "TF",
                "airtel_money_id": "",
            }
        },
    },
}
