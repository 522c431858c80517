"""The OpenAPI document, finished: errors, examples and the storefront events.

FastAPI derives paths and schemas from the routes. What it cannot see is added here, once, the
first time the document is asked for:

- every 4xx/5xx is ``application/problem+json`` (RFC 9457) with a ``Problem`` schema and one
  example per ``code`` the operation can answer, rendered by ``app.errors.problem`` itself so the
  examples cannot drift from the wire;
- FastAPI's own 422 (``HTTPValidationError``) is replaced: the gateway never sends that shape;
- the events the gateway POSTs to storefronts, signed per Standard Webhooks, under ``webhooks``;
- examples for every request body and success response, and the provider callbacks' bodies;
- operation ids made unique (a route answering PUT and POST gets one id per method from
  FastAPI, which OpenAPI forbids).
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import PROBLEM_JSON, problem
from app.events.signing import signature_headers
from app.payments.domain import EventType

Schema = dict[str, Any]

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_REF = "#/components/schemas/"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

PROBLEM_SCHEMA: Schema = {
    "title": "Problem",
    "description": (
        "RFC 9457 problem details. Branch on `code` (stable, snake_case), never on `title` or "
        "`detail`. Some codes add members: `errors` for field-level validation, `payment_id` "
        "with `order_already_has_payment`, `checks` with `not_ready`."
    ),
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": "Identifies the problem: the base URL followed by `code`.",
        },
        "title": {"type": "string", "description": "The HTTP status phrase."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "For people; its wording may change."},
        "code": {"type": "string", "description": "Stable machine-readable code."},
        "errors": {
            "type": "array",
            "description": "Which fields were refused, and why.",
            "items": {"$ref": _REF + "ProblemFieldError"},
        },
        "payment_id": {
            "type": "string",
            "description": "With `order_already_has_payment`: the order's live payment.",
        },
        "checks": {
            "type": "object",
            "description": "With `not_ready`: each dependency and its state.",
            "additionalProperties": {"type": "string", "enum": ["ok", "unreachable"]},
        },
    },
    "additionalProperties": True,
}

PROBLEM_FIELD_ERROR_SCHEMA: Schema = {
    "title": "ProblemFieldError",
    "type": "object",
    "required": ["field", "message"],
    "properties": {
        "field": {
            "type": "string",
            "description": "Dotted path of the field, e.g. `amount` or `metadata`.",
        },
        "message": {"type": "string"},
    },
}


# --- the problems the API answers --------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    status: int
    summary: str
    detail: str
    # Set for a refused field: the body then carries errors: [{field, message: detail}].
    on_field: str | None = None
    # The field's own message where it differs from detail (schema validation).
    field_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def example(self, code: str) -> Schema:
        errors = None
        if self.on_field:
            errors = [{"field": self.on_field, "message": self.field_message or self.detail}]
        response = problem(self.status, code, self.detail, errors=errors, extra=self.extra)
        body: Schema = json.loads(bytes(response.body))
        return {"summary": self.summary, "value": body}


# Every code the gateway answers (README "Errors", app/errors.py, the routers and services).
PROBLEMS: dict[str, _Problem] = {
    "malformed_json": _Problem(400, "Body is not JSON", "The request body is not valid JSON."),
    "invalid_idempotency_key": _Problem(
        400,
        "Idempotency-Key empty or too long",
        "Idempotency-Key must be 1 to 255 printable characters.",
    ),
    "invalid_cursor": _Problem(
        400,
        "Unknown starting_after",
        "starting_after 'pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f00' is unknown",
    ),
    "unauthorized": _Problem(401, "Missing or unknown API key", "Unknown API key."),
    "not_found": _Problem(404, "No such object for this merchant", "No such payment."),
    "order_already_has_payment": _Problem(
        409,
        "The order already has a live payment",
        "Order 'ORD-1001' already has a pending payment.",
        extra={"payment_id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61"},
    ),
    "idempotency_request_in_progress": _Problem(
        409,
        "The first request with this key is still running",
        "A request with this Idempotency-Key is still running; retry shortly.",
    ),
    "payload_too_large": _Problem(413, "Body over 64 KiB", "The request body is too large."),
    "validation_error": _Problem(
        422,
        "The body does not match the schema",
        "The request is not valid.",
        on_field="metadata",
        field_message="Value error, metadata allows at most 20 keys",
    ),
    "invalid_phone_number": _Problem(
        422,
        "Not a Ugandan mobile number",
        "not a Ugandan mobile number: expected 07XXXXXXXX or 2567XXXXXXXX",
        on_field="phone_number",
    ),
    "unsupported_network": _Problem(
        422,
        "Neither MTN nor Airtel serves the number",
        "this number is not on MTN or Airtel, so it cannot pay with mobile money here",
        on_field="phone_number",
    ),
    "provider_mismatch": _Problem(
        422,
        "The number is on the other network",
        "the number is on airtel_money, not mtn_momo",
        on_field="provider",
    ),
    "provider_not_configured": _Problem(
        422,
        "The provider has no credentials here",
        "airtel_money is not configured on this gateway",
        on_field="provider",
    ),
    "unsupported_currency": _Problem(
        422,
        "Currency the provider does not take here",
        "mtn_momo payments here are in UGX",
        on_field="currency",
    ),
    "invalid_amount": _Problem(
        422,
        "Not an amount in this currency",
        "UGX has no minor unit: 500.50 has too many decimals",
        on_field="amount",
    ),
    "amount_out_of_range": _Problem(
        422,
        "Below MIN_AMOUNT or above MAX_AMOUNT",
        "amount must be between 100 and 5000000 UGX",
        on_field="amount",
    ),
    "idempotency_key_reused": _Problem(
        422,
        "Same Idempotency-Key, different body",
        "This Idempotency-Key was used with a different request.",
    ),
    "internal_error": _Problem(
        500, "Unexpected error (no details, ever)", "Something went wrong on our side."
    ),
    "provider_unavailable": _Problem(
        503,
        "The provider did not answer",
        "mtn_momo did not answer; the payment stays as it is.",
    ),
    "provider_switched_off": _Problem(
        503,
        "The payment's provider has been switched off here",
        "mtn_momo is not configured",
    ),
    "service_unavailable": _Problem(
        503,
        "The database is unreachable or out of connections: retry",
        "A dependency is unavailable; nothing was lost. Retry shortly.",
    ),
    "not_ready": _Problem(
        503,
        "A dependency does not answer",
        "unreachable: redis",
        extra={"checks": {"database": "ok", "redis": "unreachable"}},
    ),
    # Provider callbacks (app/webhooks): refusals named by app.webhooks.verification.
    "ip_denied": _Problem(
        403, "Source address not in *_ALLOWED_IPS", "This address may not send callbacks."
    ),
    "missing_signature": _Problem(
        401, "*_WEBHOOK_SECRET is set, the callback is unsigned", "The callback is not signed."
    ),
    "bad_signature": _Problem(
        401, "Signature does not match the body", "The callback signature does not match."
    ),
    "token_invalid": _Problem(
        401,
        "Wrong per-payment token in the MTN callback URL",
        "The callback token does not match this payment.",
    ),
    "callback_malformed_json": _Problem(
        400, "Body is not JSON of the provider's shape", "The callback body is not JSON."
    ),
    "callback_not_found": _Problem(404, "No such payment", "No such payment here."),
    "event_not_found": _Problem(
        404, "No such event for this merchant", "No event 'evt_0193b2c4f1a2d41f8e0c2b7a9d3e5f00'."
    ),
}

# Which codes an operation can answer, by status. Routes not listed take their group's codes.
_API_CODES: dict[int, tuple[str, ...]] = {
    400: ("malformed_json", "invalid_idempotency_key", "invalid_cursor"),
    401: ("unauthorized",),
    404: ("not_found",),
    409: ("order_already_has_payment", "idempotency_request_in_progress"),
    413: ("payload_too_large",),
    422: (
        "validation_error",
        "invalid_phone_number",
        "unsupported_network",
        "provider_mismatch",
        "provider_not_configured",
        "unsupported_currency",
        "invalid_amount",
        "amount_out_of_range",
        "idempotency_key_reused",
    ),
    500: ("internal_error",),
    503: ("service_unavailable",),
}
_CALLBACK_CODES: dict[int, tuple[str, ...]] = {
    400: ("callback_malformed_json",),
    401: ("missing_signature", "bad_signature", "token_invalid"),
    403: ("ip_denied",),
    404: ("callback_not_found",),
    500: ("internal_error",),
    503: ("service_unavailable",),
}
_OPERATION_CODES: dict[tuple[str, str], dict[int, tuple[str, ...]]] = {
    ("post", "/v1/payments"): {
        400: ("malformed_json", "invalid_idempotency_key"),
        503: ("provider_switched_off", "service_unavailable"),
    },
    ("post", "/v1/payments/{payment_id}/refresh"): {
        503: ("provider_unavailable", "provider_switched_off", "service_unavailable"),
    },
    ("get", "/v1/payments"): {400: ("invalid_cursor",), 422: ("validation_error",)},
    ("get", "/v1/events"): {400: ("invalid_cursor",), 422: ("validation_error",)},
    ("get", "/v1/events/{event_id}"): {404: ("event_not_found",)},
    ("post", "/v1/events/{event_id}/redeliver"): {404: ("event_not_found",)},
    ("get", "/readyz"): {503: ("not_ready",)},
    ("post", "/api/webhooks/mtn-momo/"): {401: ("missing_signature", "bad_signature")},
    ("put", "/api/webhooks/mtn-momo/"): {401: ("missing_signature", "bad_signature")},
    ("post", "/api/webhooks/airtel-money/"): {401: ("missing_signature", "bad_signature")},
    ("put", "/api/webhooks/airtel-money/"): {401: ("missing_signature", "bad_signature")},
}
# Example codes under another key where the same code reads differently per route group.
_WIRE_CODE = {
    "callback_malformed_json": "malformed_json",
    "callback_not_found": "not_found",
    "event_not_found": "not_found",
    "provider_switched_off": "provider_not_configured",
}


def _is_callback(path: str) -> bool:
    return path.startswith("/api/webhooks/")


def _is_api(path: str) -> bool:
    return path.startswith("/v1/")


def _codes_for(method: str, path: str, status: int) -> tuple[str, ...]:
    chosen = _OPERATION_CODES.get((method, path), {}).get(status)
    if chosen is not None:
        return chosen
    group = _CALLBACK_CODES if _is_callback(path) else _API_CODES
    return group.get(status, ())


def _problem_content(codes: tuple[str, ...], status: int) -> Schema:
    examples: Schema = {}
    for name in codes:
        spec = PROBLEMS[name]
        if spec.status == status:
            code = _WIRE_CODE.get(name, name)
            examples[code] = spec.example(code)
    media: Schema = {"schema": {"$ref": _REF + "Problem"}}
    if examples:
        media["examples"] = examples
    else:
        # A status no listed code covers still gets a truthful, generic example.
        media["examples"] = {
            "problem": _Problem(status, "Problem", "See code and detail.").example("http_error")
        }
    return {PROBLEM_JSON: media}


# --- success examples ------------------------------------------------------------------------

PAYMENT_EXAMPLE: Schema = {
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

_FINAL_PAYMENTS: dict[EventType, Schema] = {
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
_CALLBACK_REPLY_EXAMPLES: Schema = {
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
_MTN_CALLBACK_EXAMPLES: Schema = {
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
_AIRTEL_CALLBACK_EXAMPLES: Schema = {
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

# --- storefront events -------------------------------------------------------------------------

STOREFRONT_EVENT_SCHEMA: Schema = {
    "title": "StorefrontEvent",
    "description": (
        "What the gateway POSTs to the merchant's callback URL when a payment reaches a final "
        "status. Delivered at least once: dedupe on `id` (also sent as `webhook-id`)."
    ),
    "type": "object",
    "required": ["id", "type", "created_at", "data"],
    "properties": {
        "id": {"type": "string", "description": "Stable across retries and redeliveries."},
        "type": {"$ref": _REF + "EventType"},
        "created_at": {"type": "string", "format": "date-time"},
        "data": {"$ref": _REF + "PaymentOut"},
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
`payment.needs_review`, with the payment object in `data`.

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

`POST /v1/payments` takes an optional `Idempotency-Key` (kept 24 h, per merchant). The same key
with the same body answers the first response again, with `Idempotent-Replayed: true`, and calls
no provider; with another body, `422 idempotency_key_reused`; while the first request runs, `409
idempotency_request_in_progress`.
"""


def _event_example(event_type: EventType) -> Schema:
    payment = {
        **PAYMENT_EXAMPLE,
        **_FINAL_PAYMENTS[event_type],
        "updated_at": "2026-01-13T09:31:12Z",
        "completed_at": "2026-01-13T09:31:12Z",
    }
    return {
        "id": "evt_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
        "type": event_type.value,
        "created_at": "2026-01-13T09:31:12Z",
        "data": payment,
    }


def _storefront_webhooks() -> Schema:
    webhooks: Schema = {}
    for event_type in EventType:
        name = event_type.value
        example = _event_example(event_type)
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
                            "schema": {"$ref": _REF + "StorefrontEvent"},
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


# --- assembling ----------------------------------------------------------------------------------

_TAGS: list[Schema] = [
    {"name": "payments", "description": "Start payments and follow them to a final status."},
    {
        "name": "events",
        "description": "What the gateway told the storefront, with every delivery attempt.",
    },
    {
        "name": "provider callbacks",
        "description": (
            "Called by MTN MoMo and Airtel Money, not by storefronts. A callback is a hint: the "
            "gateway re-reads the status from the provider before a payment changes."
        ),
    },
    {"name": "operations", "description": "Probes for orchestrators and load balancers."},
    {
        "name": "storefront events",
        "description": "Sent by the gateway to the merchant's callback URL (Standard Webhooks).",
    },
]


def _operations(document: Schema) -> Iterator[tuple[str, str, Schema]]:
    for path, item in document.get("paths", {}).items():
        for method in _HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _unique_operation_ids(document: Schema) -> None:
    """FastAPI names both methods of a PUT+POST route after the first one; OpenAPI wants each
    operation id once, so the later ones take their own method's name."""
    seen: set[str] = set()
    for _path, method, operation in _operations(document):
        operation_id = operation.get("operationId")
        if operation_id is None:
            continue
        if operation_id in seen:
            stem = re.sub(rf"_(?:{'|'.join(_HTTP_METHODS)})$", "", operation_id)
            candidate, number = f"{stem}_{method}", 2
            while candidate in seen:
                candidate, number = f"{stem}_{method}_{number}", number + 1
            operation["operationId"] = operation_id = candidate
        seen.add(operation_id)


def _validates_nothing(operation: Schema) -> bool:
    """No body, and only unconstrained string parameters: nothing can fail validation."""
    if "requestBody" in operation:
        return False
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if schema.get("type") != "string" or set(schema) - {"type", "title", "description"}:
            return False
    return True


def _references(value: Any, name: str) -> bool:
    return f'"{_REF}{name}"' in json.dumps(value)


def _add_problems(path: str, method: str, operation: Schema) -> None:
    responses: Schema = operation.setdefault("responses", {})
    chosen: dict[int, tuple[str, ...]] = {}
    if _references(responses.get("422", {}), "HTTPValidationError"):
        # FastAPI's own 422: the gateway answers validation_error as problem+json instead, and
        # nothing at all where no parameter can be invalid.
        if _validates_nothing(operation):
            del responses["422"]
        else:
            responses["422"] = {"description": "A parameter is not valid (problem+json)."}
            chosen[422] = ("validation_error",)
    if _is_api(path) or _is_callback(path):
        # Every one of these reads or writes the database.
        responses.setdefault("500", {"description": "Unexpected error (problem+json)."})
        responses.setdefault(
            "503", {"description": "A dependency is unavailable: retry later (problem+json)."}
        )
    for status_text, response in responses.items():
        if not status_text.isdigit() or int(status_text) < 400:
            continue
        status = int(status_text)
        codes = chosen.get(status) or _codes_for(method, path, status)
        response["content"] = _problem_content(codes, status)
        if status in (409, 503):
            response.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before retrying, when retrying can help.",
                "schema": {"type": "integer"},
            }


def _add_success_examples(path: str, method: str, operation: Schema) -> None:
    for status_text, response in operation.get("responses", {}).items():
        if not status_text.startswith("2"):
            continue
        media = response.get("content", {}).get("application/json")
        if media is None:
            continue
        if path == "/healthz":
            media["schema"] = {"$ref": _REF + "Health"}
        elif path == "/readyz":
            media["schema"] = {"$ref": _REF + "Readiness"}
        elif _is_callback(path):
            media["schema"] = {"$ref": _REF + "CallbackReply"}
            media["examples"] = copy.deepcopy(_CALLBACK_REPLY_EXAMPLES)
    if (method, path) == ("post", "/v1/payments"):
        created = operation.get("responses", {}).get("201")
        if created is not None:
            created["description"] = (
                "The payment: `pending` until the payer approves, or `failed` at once if the "
                "provider refused it."
            )
            created.setdefault("headers", {})["Idempotent-Replayed"] = {
                "description": "`true` when this is the stored answer to an earlier request.",
                "schema": {"type": "string", "enum": ["true"]},
            }
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "Idempotency-Key":
                parameter.setdefault("example", "ORD-1001-attempt-1")


def _add_callback_bodies(path: str, operation: Schema) -> None:
    if not _is_callback(path) or "requestBody" in operation:
        return
    mtn = "/mtn-momo/" in path
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": _REF + ("MtnCallback" if mtn else "AirtelCallback")},
                "examples": copy.deepcopy(
                    _MTN_CALLBACK_EXAMPLES if mtn else _AIRTEL_CALLBACK_EXAMPLES
                ),
            }
        },
    }
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "reference":
            parameter.setdefault("description", "The payment's provider reference.")
        elif parameter.get("name") == "token":
            parameter.setdefault(
                "description", "Keyed hash of the reference; a wrong one is refused (401)."
            )


def _add_component_examples(schemas: Schema) -> None:
    payment = schemas.get("PaymentOut")
    if payment is not None and not payment.get("examples"):
        payment["examples"] = [PAYMENT_EXAMPLE]
    payment_example = (payment or {}).get("examples", [PAYMENT_EXAMPLE])[0]
    listing = schemas.get("PaymentList")
    if listing is not None and not listing.get("examples"):
        listing["examples"] = [{"object": "list", "data": [payment_example], "has_more": False}]
    event = schemas.get("EventOut")
    events = schemas.get("EventList")
    if events is not None and not events.get("examples") and event and event.get("examples"):
        events["examples"] = [{"object": "list", "data": [event["examples"][0]], "has_more": True}]
    created = schemas.get("StorefrontEvent")
    if created is not None:
        created["examples"] = [_event_example(EventType.PAYMENT_SUCCEEDED)]


def _drop_unreferenced(document: Schema) -> None:
    schemas = document["components"]["schemas"]
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if name not in schemas:
            continue
        rest = {key: value for key, value in document.items() if key != "components"}
        others = {key: value for key, value in schemas.items() if key != name}
        if not _references(rest, name) and not _references(others, name):
            del schemas[name]


def build_openapi(app: FastAPI) -> Schema:
    """The document FastAPI would serve, with everything this module adds."""
    with warnings.catch_warnings():
        # Duplicate ids come from PUT+POST routes; _unique_operation_ids renames them below.
        warnings.filterwarnings("ignore", message="Duplicate Operation ID", category=UserWarning)
        document = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=(app.description or "").rstrip() + "\n" + STOREFRONT_EVENTS_DESCRIPTION,
            terms_of_service=app.terms_of_service,
            contact=app.contact,
            license_info=app.license_info,
            routes=app.routes,
            webhooks=app.webhooks.routes,
            tags=app.openapi_tags,
            servers=app.servers,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )
    _unique_operation_ids(document)

    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", copy.deepcopy(PROBLEM_SCHEMA))
    schemas["Problem"]["examples"] = [
        PROBLEMS["validation_error"].example("validation_error")["value"]
    ]
    schemas.setdefault("ProblemFieldError", copy.deepcopy(PROBLEM_FIELD_ERROR_SCHEMA))
    schemas.setdefault("Health", copy.deepcopy(HEALTH_SCHEMA))
    schemas.setdefault("Readiness", copy.deepcopy(READINESS_SCHEMA))
    schemas.setdefault("CallbackReply", copy.deepcopy(CALLBACK_REPLY_SCHEMA))
    schemas.setdefault("MtnCallback", copy.deepcopy(MTN_CALLBACK_SCHEMA))
    schemas.setdefault("AirtelCallback", copy.deepcopy(AIRTEL_CALLBACK_SCHEMA))
    schemas.setdefault("StorefrontEvent", copy.deepcopy(STOREFRONT_EVENT_SCHEMA))

    readyz = document.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz.setdefault("responses", {}).setdefault(
            "503", {"description": "The database or Redis does not answer (problem+json)."}
        )
    for path, method, operation in _operations(document):
        # Problems first: the callback bodies added next are read raw, never validated.
        _add_problems(path, method, operation)
        _add_callback_bodies(path, operation)
        _add_success_examples(path, method, operation)
    _add_component_examples(schemas)

    document.setdefault("webhooks", {}).update(_storefront_webhooks())
    known = {tag["name"] for tag in document.get("tags", [])}
    document.setdefault("tags", []).extend(t for t in _TAGS if t["name"] not in known)
    bearer = components.get("securitySchemes", {}).get("HTTPBearer")
    if bearer is not None:
        bearer.setdefault("bearerFormat", "API key (mgw_…)")
    _drop_unreferenced(document)
    return document


def customise_openapi(app: FastAPI) -> None:
    """Serve the finished document at ``/openapi.json`` (and ``/docs``). Built on first use, when
    every route is in place, then kept."""

    def openapi() -> Schema:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
