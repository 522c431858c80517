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

# What each refund event's refund object shows (over REFUND_EXAMPLE).
FINAL_REFUNDS: dict[EventType, Schema] = {
    EventType.REFUND_SUCCEEDED: {"status": "succeeded", "provider_transaction_id": "8123457701"},
    EventType.REFUND_FAILED: {
        "status": "failed",
        "failure_code": "insufficient_funds",
        "failure_message": "NOT_ENOUGH_FUNDS",
    },
    EventType.REFUND_NEEDS_REVIEW: {
        "status": "needs_review",
        "failure_message": "still pending at the provider past the timeout: a person must check "
        "it with the provider",
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
