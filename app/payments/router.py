"""``/v1/payments``: parse, call the service, render."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from app.deps import CurrentMerchant, PaymentServiceDep, RuntimeDep
from app.errors import AppError
from app.idempotency import request_fingerprint
from app.idempotency_http import (
    IDEMPOTENCY_KEY_DESCRIPTION,
    IdempotentCreation,
    create_idempotently,
)
from app.identifiers import IDENTIFIER_PATTERN, is_identifier
from app.payments.domain import PaymentStatus
from app.payments.models import Payment
from app.payments.schemas import CreatePaymentRequest, PaymentList, PaymentOut
from app.payments.validation import validate_new_payment

router = APIRouter(prefix="/v1/payments", tags=["payments"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON, bad Idempotency-Key or cursor (problem+json)."},
    401: {"description": "Missing or unknown API key (problem+json)."},
    404: {"description": "No such payment for this merchant (problem+json)."},
    409: {"description": "Order already has a live payment, or the key is in use."},
    413: {"description": "Body over 64 KiB (problem+json)."},
    422: {"description": "Validation failed; see `code` and `errors` (problem+json)."},
}


@router.post(
    "",
    status_code=201,
    response_model=PaymentOut,
    summary="Start a payment",
    responses={
        **{k: v for k, v in _PROBLEMS.items() if k != 404},
        503: {
            "description": "`overloaded`: MAX_REQUESTS_IN_FLIGHT payments are being made; "
            "nothing was done, retry after `Retry-After` seconds (problem+json)."
        },
    },
)
async def create_payment(
    body: CreatePaymentRequest,
    merchant: CurrentMerchant,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY_KEY_DESCRIPTION)
    ] = None,
) -> Response:
    """Send a request-to-pay to MTN MoMo or Airtel Money. The payer approves on their phone;
    the payment stays `pending` until the provider's answer is confirmed."""
    new = validate_new_payment(body, runtime.payment_rules)

    async def create(hooks: IdempotentCreation[Payment] | None) -> Payment:
        return await runtime.payments.create_payment(merchant.id, new, hooks)

    return await create_idempotently(
        runtime.idempotency,
        merchant_id=merchant.id,
        key=idempotency_key,
        fingerprint=request_fingerprint("POST", "/v1/payments", body.model_dump(mode="json")),
        create=create,
        render=_created_response,
    )


def _created_response(payment: Payment) -> Response:
    # pydantic writes the JSON itself: no intermediate dict for json.dumps to walk.
    body = PaymentOut.of(payment).model_dump_json()
    return Response(body, status_code=201, media_type="application/json")


@router.get(
    "",
    response_model=PaymentList,
    summary="List payments, newest first",
    responses={400: _PROBLEMS[400], 401: _PROBLEMS[401], 422: _PROBLEMS[422]},
)
async def list_payments(
    merchant: CurrentMerchant,
    service: PaymentServiceDep,
    order_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    status: PaymentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[
        str | None,
        Query(pattern=IDENTIFIER_PATTERN, description="Last payment id of the previous page."),
    ] = None,
) -> PaymentList:
    payments, has_more = await service.list_payments(
        merchant.id, limit=limit, order_id=order_id, status=status, starting_after=starting_after
    )
    return PaymentList(data=[PaymentOut.of(p) for p in payments], has_more=has_more)


@router.get(
    "/{payment_id}",
    response_model=PaymentOut,
    summary="Get a payment",
    responses={401: _PROBLEMS[401], 404: _PROBLEMS[404]},
)
async def get_payment(
    payment_id: str, merchant: CurrentMerchant, service: PaymentServiceDep
) -> PaymentOut:
    return PaymentOut.of(await service.get_payment(merchant.id, _checked_id(payment_id)))


@router.post(
    "/{payment_id}/refresh",
    response_model=PaymentOut,
    summary="Ask the provider now",
    responses={
        401: _PROBLEMS[401],
        404: _PROBLEMS[404],
        503: {"description": "The provider did not answer (problem+json)."},
    },
)
async def refresh_payment(
    payment_id: str, merchant: CurrentMerchant, service: PaymentServiceDep
) -> PaymentOut:
    """Re-read the status from the provider and apply it (the payment changes only on the
    provider's answer)."""
    return PaymentOut.of(await service.refresh_payment(merchant.id, _checked_id(payment_id)))


def _checked_id(payment_id: str) -> str:
    if not is_identifier(payment_id):
        raise AppError(404, "not_found", "No such payment.")
    return payment_id
