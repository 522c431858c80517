"""Storefront events: what the gateway POSTs to merchants, signed per Standard Webhooks, under
the document's ``webhooks``."""

from __future__ import annotations

import json

from app.events.signing import signature_headers
from app.openapi.examples import FINAL_PAYMENTS, FINAL_REFUNDS
from app.openapi.schema import REF, Schema
from app.payments.domain import EventType
from app.payments.schemas import PAYMENT_EXAMPLE
from app.refunds.schemas import REFUND_EXAMPLE

STOREFRONT_EVENT_SCHEMA: Schema = {
    "title": "StorefrontEvent",
    "description": (
        "What the gateway POSTs to the merchant's callback URL when a payment reaches a final "
        "status, or one of its refunds does (`refund.*`: `data` is then the refund). "
        "Delivered at least once: dedupe on `id` (also sent as `webhook-id`)."
    ),
    "type": "object",
    "required": ["id", "type", "created_at", "data"],
    "properties": {
        "id": {"type": "string", "description": "Stable across retries and redeliveries."},
        "type": {"$ref": REF + "EventType"},
        "created_at": {"type": "string", "format": "date-time"},
        "data": {"oneOf": [{"$ref": REF + "PaymentOut"}, {"$ref": REF + "RefundOut"}]},
    },
}

# The secret of the Standard Webhooks documentation: the signature examples below are real, so
# an integrator can check their verifier against them.
EXAMPLE_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - public example
_EXAMPLE_TIMESTAMP = 1768296672  # 2026-01-13T09:31:12Z, the example event's created_at


def _event_headers(payload: Schema) -> list[Schema]:
    # Signed over the bytes delivery sends: compact JSON, as app.events.delivery.event_body.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    signed = signature_headers(EXAMPLE_WEBHOOK_SECRET, payload["id"], _EXAMPLE_TIMESTAMP, body)
    descriptions = {
        "webhook-id": "The event id; the same on every retry: dedupe on it.",
        "webhook-timestamp": "Unix seconds when this attempt was signed; refuse old ones.",
        "webhook-signature": (
            'v1,base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{raw body}")), key '
            "being the base64-decoded part of the merchant's whsec_ secret after the prefix. "
            f"This example is signed with {EXAMPLE_WEBHOOK_SECRET} over the compact JSON body."
        ),
    }
    schemas: dict[str, Schema] = {
        "webhook-timestamp": {"type": "string", "pattern": "^[0-9]+$"},
    }
    return [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": descriptions[name],
            "schema": schemas.get(name, {"type": "string"}),
            "example": signed[name],
        }
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    ]


STOREFRONT_EVENTS_DESCRIPTION = """
## Storefront events

When a payment reaches a final status the gateway POSTs an event (see **Webhooks**) to the
merchant's callback URL: `payment.succeeded`, `payment.failed`, `payment.expired` or
`payment.needs_review`, with the payment object in `data`. Each refund that reaches a final
status sends `refund.succeeded`, `refund.failed` or `refund.needs_review`, once per refund, with
the refund object in `data` (its `payment_id` names the payment).

Deliveries are signed per [Standard Webhooks](https://www.standardwebhooks.com/), so any Standard
Webhooks library verifies them with the merchant's `whsec_…` secret:

- `webhook-id`: the event id, the same on every retry: dedupe on it;
- `webhook-timestamp`: Unix seconds; refuse a delivery more than 5 minutes old;
- `webhook-signature`: `v1,` + base64(HMAC-SHA256(key, `"{id}.{timestamp}.{body}"`)), where `key`
  is the base64-decoded part of the secret after `whsec_` and `body` the raw bytes received.

Any 2xx within 10 s counts as delivered. Anything else is retried after
`EVENT_RETRY_BASE_SECONDS * 4^(n-1)` (±20 %, at most 12 h apart): by default 30 s, 2 min, 8 min,
32 min, 2 h, 8.5 h, then every 12 h, 12 attempts over about 3 days. `GET /v1/events` shows each
attempt; `POST /v1/events/{id}/redeliver` sends one more.

## Idempotency

`POST /v1/payments` and `POST /v1/refunds` take an optional `Idempotency-Key` (kept 24 h, per
merchant). The same key
with the same body answers the first response again, with `Idempotent-Replayed: true`, and calls
no provider; with another body, `422 idempotency_key_reused`; while the first request runs, `409
idempotency_request_in_progress`.
"""


def event_example(event_type: EventType) -> Schema:
    final = {"updated_at": "2026-01-13T09:31:12Z", "completed_at": "2026-01-13T09:31:12Z"}
    if event_type in FINAL_REFUNDS:
        data = {**REFUND_EXAMPLE, **FINAL_REFUNDS[event_type], **final}
    else:
        data = {**PAYMENT_EXAMPLE, **FINAL_PAYMENTS[event_type], **final}
    return {
        "id": "evt_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
        "type": event_type.value,
        "created_at": "2026-01-13T09:31:12Z",
        "data": data,
    }


def storefront_webhooks() -> Schema:
    webhooks: Schema = {}
    for event_type in EventType:
        name = event_type.value
        example = event_example(event_type)
        webhooks[name] = {
            "post": {
                "tags": ["storefront events"],
                "summary": f"{name}, POSTed to the merchant's callback URL",
                "description": (
                    "Signed per Standard Webhooks; retried until a 2xx answer. See the "
                    "introduction for verification and the retry schedule."
                ),
                "operationId": "event_" + name.replace(".", "_"),
                "parameters": _event_headers(example),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": REF + "StorefrontEvent"},
                            "example": example,
                        }
                    },
                },
                "responses": {
                    "2XX": {"description": "Delivered: not sent again."},
                    "default": {"description": "Anything else, or no answer within 10 s: retried."},
                },
            }
        }
    return webhooks
