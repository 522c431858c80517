"""The problems the API answers: the ``Problem`` schema, every ``code`` with an example, and
which codes each operation can answer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.errors import PROBLEM_JSON, problem
from app.openapi.schema import REF, Schema
from app.providers.spec import CALLBACK_PREFIX

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
            "items": {"$ref": REF + "ProblemFieldError"},
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
    "merchant_disabled": _Problem(
        401,
        "An operator switched this merchant off",
        "This merchant is disabled; contact the gateway's operators.",
    ),
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
        field_message="metadata allows at most 20 keys",
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
        "this number is not on MTN MoMo or Airtel Money, so it cannot pay with mobile money here",
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
        "UGX has no decimals: a whole number of shillings such as 50000",
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
    "payment_not_refundable": _Problem(
        409,
        "Only a successful payment can be refunded",
        "Only a successful payment can be refunded; this one is pending.",
        extra={"payment_id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61"},
    ),
    "refund_exceeds_payment": _Problem(
        422,
        "More than is left to refund",
        "UGX 30000 of this payment's UGX 50000 is still refundable.",
    ),
    "partial_refund_not_supported": _Problem(
        422,
        "Airtel Money refunds only the full amount, once",
        "Airtel Money refunds only the full amount (UGX 50000), once.",
    ),
    "refunds_not_configured": _Problem(
        422,
        "The provider's refund credentials are not set here",
        "Refunds through MTN MoMo are not configured on this gateway: its refund credentials "
        "are not set (see the README, Refunds).",
    ),
    "refund_validation_error": _Problem(
        422,
        "Not an amount in the payment's currency",
        "UGX has no decimals: a whole number of shillings such as 50000",
        on_field="amount",
    ),
    "refund_not_found": _Problem(
        404,
        "No such payment or refund for this merchant",
        "No refund 're_0193b2c6a8e07d4c9b1f3a2e5d7c9b10'.",
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
    401: ("unauthorized", "merchant_disabled"),
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
    ("post", "/v1/refunds"): {
        400: ("malformed_json", "invalid_idempotency_key"),
        404: ("not_found",),
        409: ("payment_not_refundable", "idempotency_request_in_progress"),
        422: (
            "refund_validation_error",
            "refund_exceeds_payment",
            "partial_refund_not_supported",
            "refunds_not_configured",
            "idempotency_key_reused",
        ),
    },
    ("get", "/v1/refunds"): {400: ("invalid_cursor",), 422: ("validation_error",)},
    ("get", "/v1/refunds/{refund_id}"): {404: ("refund_not_found",)},
}
# Example codes under another key where the same code reads differently per route group.
_WIRE_CODE = {
    "callback_malformed_json": "malformed_json",
    "callback_not_found": "not_found",
    "event_not_found": "not_found",
    "refund_not_found": "not_found",
    "refund_validation_error": "validation_error",
    "provider_switched_off": "provider_not_configured",
}


def is_callback(path: str) -> bool:
    return path.startswith(CALLBACK_PREFIX + "/")


def is_api(path: str) -> bool:
    return path.startswith("/v1/")


def codes_for(method: str, path: str, status: int) -> tuple[str, ...]:
    chosen = _OPERATION_CODES.get((method, path), {}).get(status)
    if chosen is not None:
        return chosen
    if is_callback(path) and status == 401 and "{token}" not in path:
        return ("missing_signature", "bad_signature")  # a shared route has no token to refuse
    group = _CALLBACK_CODES if is_callback(path) else _API_CODES
    return group.get(status, ())


def problem_content(codes: tuple[str, ...], status: int) -> Schema:
    examples: Schema = {}
    for name in codes:
        spec = PROBLEMS[name]
        if spec.status == status:
            code = _WIRE_CODE.get(name, name)
            examples[code] = spec.example(code)
    media: Schema = {"schema": {"$ref": REF + "Problem"}}
    if examples:
        media["examples"] = examples
    else:
        # A status no listed code covers still gets a truthful, generic example.
        media["examples"] = {
            "problem": _Problem(status, "Problem", "See code and detail.").example("http_error")
        }
    return {PROBLEM_JSON: media}
