"""SMS receipt routes: a payment's receipts for its merchant, and Africa's Talking's delivery
reports."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import CurrentMerchant, RuntimeDep
from app.errors import NotFound, problem
from app.identifiers import is_identifier
from app.sms.africastalking import DELIVERY_REPORT_PATH
from app.sms.schemas import SmsReceiptList, SmsReceiptOut

# A report has five or six fields; a body with many more is not one.
_MAX_FORM_FIELDS = 50

router = APIRouter()


@router.get(
    "/v1/payments/{payment_id}/sms",
    response_model=SmsReceiptList,
    summary="A payment's SMS receipts",
    tags=["payments"],
    responses={
        401: {"description": "Missing or unknown API key (problem+json)."},
        404: {"description": "No such payment for this merchant (problem+json)."},
    },
)
async def list_payment_sms(
    payment_id: str, merchant: CurrentMerchant, runtime: RuntimeDep
) -> SmsReceiptList:
    """The texts sent to the payer about this payment (when the merchant has SMS receipts on),
    with Africa's Talking's answer and the last delivery report. The number is masked."""
    receipts = None
    if is_identifier(payment_id):
        receipts = await runtime.sms.receipts_for_payment(merchant.id, payment_id)
    if receipts is None:
        raise NotFound("No such payment.")
    return SmsReceiptList(data=[SmsReceiptOut.of(receipt) for receipt in receipts])


# Called by Africa's Talking, not by storefronts, and answered in its own shape: kept out of the
# API document, whose callback section describes the payment providers' callbacks.
@router.post(DELIVERY_REPORT_PATH, include_in_schema=False)
async def africastalking_delivery_report(
    token: str, request: Request, runtime: RuntimeDep
) -> JSONResponse:
    if not runtime.sms.callback_token_matches(token):
        return problem(404, "not_found", "Not found.")
    form = _form_fields(await request.body())
    recorded = form is not None and await runtime.sms.record_delivery_report(form)
    return JSONResponse({"status": "recorded" if recorded else "ignored"})


def _form_fields(body: bytes) -> dict[str, str] | None:
    """The url-encoded form, first value of each field; None when it is not one."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8", errors="replace"),
            max_num_fields=_MAX_FORM_FIELDS,
            errors="replace",
        )
    except ValueError:
        return None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields
