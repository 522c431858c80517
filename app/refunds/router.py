"""``/v1/refunds``: parse, call the service, render."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from app.deps import CurrentMerchant, RuntimeDep
from app.errors import AppError
from app.idempotency import request_fingerprint
from app.idempotency_http import (
    IDEMPOTENCY_KEY_DESCRIPTION,
    IdempotentCreation,
    create_idempotently,
)
from app.identifiers import IDENTIFIER_PATTERN, is_identifier
from app.refunds.domain import RefundStatus
from app.refunds.models import Refund
from app.refunds.schemas import CreateRefundRequest, RefundList, RefundOut, refund_json
from app.refunds.service import NewRefund

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON, bad Idempotency-Key or cursor (problem+json)."},
    401: {"description": "Missing or unknown API key (problem+json)."},
    404: {"description": "No such payment or refund for this merchant (problem+json)."},
    409: {
        "description": "`payment_not_refundable`: the payment is not `successful` (pending, "
        "failed, expired or needs_review); or the Idempotency-Key is in use."
    },
    413: {"description": "Body over 64 KiB (problem+json)."},
    422: {
        "description": "`refund_exceeds_payment` (the detail names what is still refundable), "
        "`partial_refund_not_supported` (Airtel Money: the full amount, once), "
        "`refunds_not_configured` (e.g. MTN without Disbursement credentials), "
        "`validation_error` (amount ≤ 0, too many decimals, not a number)."
    },
}


@router.post(
    "",
    status_code=201,
    response_model=RefundOut,
    summary="Refund a payment",
    responses=_PROBLEMS,
)
async def create_refund(
    body: CreateRefundRequest,
    merchant: CurrentMerchant,
    runtime: RuntimeDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY_KEY_DESCRIPTION)
    ] = None,
) -> Response:
    """Give money back for a `successful` payment, through its own provider: all that is still
    refundable when `amount` is omitted. The answer is `pending` until the provider confirms
    (MTN), `succeeded` when its reply already says so (Airtel), or `failed` with a
    `failure_code` when the provider refused at once; `refund.*` events follow."""
    new = NewRefund(
        payment_id=_checked_id(body.payment_id, "payment"),
        amount=body.amount,
        reason=body.reason,
        metadata=body.metadata,
    )

    async def create(hooks: IdempotentCreation[Refund] | None) -> Refund:
        return await runtime.refunds.create_refund(merchant.id, new, hooks)

    return await create_idempotently(
        runtime.idempotency,
        merchant_id=merchant.id,
        key=idempotency_key,
        fingerprint=request_fingerprint("POST", "/v1/refunds", body.model_dump(mode="json")),
        create=create,
        render=_created_response,
    )


def _created_response(refund: Refund) -> JSONResponse:
    return JSONResponse(refund_json(refund), status_code=201)


@router.get(
    "",
    response_model=RefundList,
    summary="List refunds, newest first",
    responses={400: _PROBLEMS[400], 401: _PROBLEMS[401], 422: _PROBLEMS[422]},
)
async def list_refunds(
    merchant: CurrentMerchant,
    runtime: RuntimeDep,
    payment_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    status: RefundStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[
        str | None,
        Query(pattern=IDENTIFIER_PATTERN, description="Last refund id of the previous page."),
    ] = None,
) -> RefundList:
    refunds, has_more = await runtime.refunds.list_refunds(
        merchant.id,
        limit=limit,
        payment_id=payment_id,
        status=status,
        starting_after=starting_after,
    )
    return RefundList(data=[RefundOut.of(refund) for refund in refunds], has_more=has_more)


@router.get(
    "/{refund_id}",
    response_model=RefundOut,
    summary="Get a refund",
    responses={401: _PROBLEMS[401], 404: _PROBLEMS[404]},
)
async def get_refund(refund_id: str, merchant: CurrentMerchant, runtime: RuntimeDep) -> RefundOut:
    return RefundOut.of(
        await runtime.refunds.get_refund(merchant.id, _checked_id(refund_id, "refund"))
    )


def _checked_id(identifier: str, kind: str) -> str:
    if not is_identifier(identifier):
        raise AppError(404, "not_found", f"No such {kind}.")
    return identifier
