"""MTN MoMo Disbursement, the part refunds need: token, refund (v1 and v2), refund status, balance.

Disbursement is its own product at MTN: its own subscription key, API user and token endpoint. A
Collection token is refused here and a Disbursement token on Collection (see
``app.simulator.credentials``). v1 and v2 refunds take the same headers and body; the only
documented difference is the callback verb, POST for v1 and PUT for v2. Both are read back with
the v1_0 status GET. What a refund ends as is decided in ``app.simulator.refunds``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from app.simulator.config import Endpoint
from app.simulator.mtn import (
    UUID4_PATTERN,
    MtnMoneyRequest,
    MtnRoute,
    duplicate_reference,
    fail,
    issue_token,
    not_found,
    parse_body,
    parse_callback_url,
    require_callback_host,
    require_product_access,
)
from app.simulator.refund_ledger import Refund
from app.simulator.refunds import accept_mtn_refund
from app.simulator.routing import simulator_of
from app.simulator.state import Simulator
from app.simulator.wire import mtn_refund_body

# MTN's example text for an underfunded account ("API user insufficient balance").
_SHORT_BALANCE_MESSAGE = "The payer does not have enough funds."


class MtnRefund(MtnMoneyRequest):
    # The request-to-pay's X-Reference-Id; not checked to be a UUID, as MTN's sandbox does not.
    reference_id_to_refund: str = Field(alias="referenceIdToRefund", min_length=1, max_length=128)


router = APIRouter(route_class=MtnRoute)


@router.post("/disbursement/token/", name=Endpoint.MTN_DISBURSEMENT_TOKEN)
async def create_access_token(request: Request) -> Response:
    return await issue_token(request, "disbursement")


@router.post("/disbursement/v1_0/refund", name=Endpoint.MTN_REFUND)
async def refund_v1(request: Request) -> Response:
    return await _refund(request, "v1_0", "POST")


@router.post("/disbursement/v2_0/refund", name=Endpoint.MTN_REFUND)
async def refund_v2(request: Request) -> Response:
    return await _refund(request, "v2_0", "PUT")


async def _refund(
    request: Request, version: str, callback_method: Literal["POST", "PUT"]
) -> Response:
    simulator = simulator_of(request)
    config = simulator.config
    issued = require_product_access(request, simulator, "disbursement")
    reference = request.headers.get("X-Reference-Id", "")
    if not UUID4_PATTERN.match(reference):
        fail(400, "VALIDATION_ERROR", "X-Reference-Id must be a version 4 UUID.")
    callback_url = parse_callback_url(request.headers.get("X-Callback-Url"))
    body = parse_body(MtnRefund, await request.body())

    if simulator.refunds.get(("mtn_momo", reference)) is not None:
        return duplicate_reference()
    if body.currency not in config.mtn_currencies:
        fail(500, "INVALID_CURRENCY", "Currency not supported.")
    require_callback_host(simulator, issued, callback_url)
    if config.mtn_short_balance_answer == "refused" and Decimal(body.amount) > _balance(
        simulator, body.currency
    ):
        fail(500, config.mtn_short_balance_reason, _SHORT_BALANCE_MESSAGE)

    payment = simulator.ledger.get(("mtn_momo", body.reference_id_to_refund))
    refund = Refund(
        provider="mtn_momo",
        reference=reference,
        payment_reference=body.reference_id_to_refund,
        amount=body.amount,
        currency=body.currency,
        payee_msisdn=payment.msisdn if payment else None,
        payee_id_type=payment.party_id_type if payment else "MSISDN",
        external_id=body.external_id,
        payer_message=body.payer_message,
        payee_note=body.payee_note,
        callback_url=callback_url,
        callback_method=callback_method,
        api_version=version,
    )
    if accept_mtn_refund(simulator, refund) is None:
        return duplicate_reference()  # a concurrent request with this reference won
    return Response(status_code=202)


@router.get("/disbursement/v1_0/refund/{reference}", name=Endpoint.MTN_REFUND_STATUS)
async def refund_status(reference: str, request: Request) -> Response:
    simulator = simulator_of(request)
    require_product_access(request, simulator, "disbursement")
    refund = simulator.refunds.get(("mtn_momo", reference))
    if refund is None:
        return not_found()
    return JSONResponse(content=mtn_refund_body(refund, simulator.config.mtn_reason_format))


@router.get("/disbursement/v1_0/account/balance", name=Endpoint.MTN_DISBURSEMENT_BALANCE)
async def account_balance(request: Request) -> Response:
    simulator = simulator_of(request)
    require_product_access(request, simulator, "disbursement")
    currency = simulator.config.mtn_account_currency
    return JSONResponse(
        content={"availableBalance": str(_balance(simulator, currency)), "currency": currency}
    )


@router.get("/disbursement/v1_0/account/balance/{currency}", name=Endpoint.MTN_DISBURSEMENT_BALANCE)
async def account_balance_in(currency: str, request: Request) -> Response:
    simulator = simulator_of(request)
    require_product_access(request, simulator, "disbursement")
    code = currency.upper()
    return JSONResponse(
        content={"availableBalance": str(_balance(simulator, code)), "currency": code}
    )


def _balance(simulator: Simulator, currency: str) -> Decimal:
    config = simulator.config
    # The account holds the currencies MTN takes here; any other one it never held.
    opening = (
        config.mtn_disbursement_opening_balance if currency in config.mtn_currencies else Decimal(0)
    )
    return simulator.refunds.balance(currency, opening)
