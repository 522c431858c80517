"""Airtel Money refunds: ``POST /standard/v1/payments/refund``, full and once, answered at once.

The request names the collection by its ``airtel_money_id`` and carries no amount: Airtel's docs
say the API "is used to make full refunds". Airtel documents no refund status endpoint and no
refund callback, so the answer itself is the outcome. Refusals come back as HTTP 200 with
``"success": false``, as Airtel's other business answers do; a repeated refund is refused rather
than paid again, even when the first answer was lost (an injected timeout after processing).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.simulator.airtel import AirtelRoute, parse_body, require_bearer, require_locale_headers
from app.simulator.config import Endpoint
from app.simulator.refunds import AirtelRefundOutcome, refund_airtel
from app.simulator.routing import simulator_of
from app.simulator.wire import airtel_envelope


class AirtelRefundTransaction(BaseModel):
    model_config = ConfigDict(strict=True)

    airtel_money_id: str = Field(min_length=1, max_length=64)


class AirtelRefund(BaseModel):
    model_config = ConfigDict(strict=True)

    transaction: AirtelRefundTransaction


# (message, result_code, response_code) of each refusal.
_REFUSALS = {
    AirtelRefundOutcome.ALREADY_REFUNDED: (
        "Refund already processed for this transaction",
        "ESB000041",
        "DP00800001009",
    ),
    AirtelRefundOutcome.NOT_FOUND: ("Transaction not found", "ESB000045", "DP00800001025"),
    AirtelRefundOutcome.NOT_SUCCESSFUL: ("Do not honor", "ESB000011", "DP00800001009"),
}


def refund_body(outcome: AirtelRefundOutcome, airtel_money_id: str) -> dict[str, Any]:
    if outcome is AirtelRefundOutcome.REFUNDED:
        # Airtel's sample shows "success": false beside SUCCESS, most likely a doc slip; the
        # simulator tells the truth, so clients checking either the flag or the codes agree.
        return {
            "data": {"transaction": {"airtel_money_id": airtel_money_id, "status": "SUCCESS"}},
            "status": airtel_envelope(
                code="200",
                message="SUCCESS",
                result_code="ESB000010",
                response_code="DP00800001001",
                success=True,
            ),
        }
    message, result_code, response_code = _REFUSALS[outcome]
    return {
        "data": {},
        "status": airtel_envelope(
            code="200",
            message=message,
            result_code=result_code,
            response_code=response_code,
            success=False,
        ),
    }


router = APIRouter(route_class=AirtelRoute)


@router.post("/standard/v1/payments/refund", name=Endpoint.AIRTEL_REFUND)
async def refund(request: Request) -> Response:
    simulator = simulator_of(request)
    require_bearer(request, simulator)
    require_locale_headers(request, simulator.config)
    body = parse_body(AirtelRefund, await request.body())
    airtel_money_id = body.transaction.airtel_money_id
    outcome = refund_airtel(simulator, airtel_money_id)
    return JSONResponse(content=refund_body(outcome, airtel_money_id))
