"""``/_simulator`` routes for refunds and MTN's disbursement balance.

- ``GET /_simulator/refunds``: every refund a provider took (create_requests, payouts ...), plus
  ``unaccepted``: refund references whose create calls all failed or were refused (``?provider=``).
- ``GET /_simulator/refunds/{ref}``: one refund (``?provider=`` when a reference is on both).
- ``POST /_simulator/refunds/{ref}/settle``: force what MTN reports for a refund
  (``{"status": "FAILED", "reason": "NOT_ENOUGH_FUNDS", "amount": null, "callback": true}``).
- ``GET /_simulator/disbursement/balance``: ``{"balances": {"UGX": "1000000000", ...}}``.
- ``POST /_simulator/disbursement/balance``: set one currency's balance,
  ``{"currency": "UGX", "available_balance": "5000"}``; answers the balances.

Like the other control routes, none of these is subject to injected faults or latency. A reset
(``POST /_simulator/reset``) forgets refunds and restores the opening balances.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.simulator.ledger import PaymentStatus, ProviderName
from app.simulator.refund_ledger import Refund
from app.simulator.refunds import force_refund, schedule_refund_callback
from app.simulator.routing import simulator_of

router = APIRouter(prefix="/_simulator", tags=["simulator control"])

ProviderQuery = Annotated[ProviderName | None, Query()]


@router.get("/refunds")
async def list_refunds(request: Request, provider: ProviderQuery = None) -> Response:
    return JSONResponse(content=simulator_of(request).refunds.snapshot(provider))


def _one_refund(
    request: Request, reference: str, provider: ProviderName | None
) -> Refund | Response:
    """The refund, or the answer explaining why there is not exactly one."""
    matches = [
        r for r in simulator_of(request).refunds.find(reference) if provider in (None, r.provider)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        return JSONResponse(status_code=404, content={"detail": "no refund with this reference"})
    return JSONResponse(status_code=409, content={"detail": "ambiguous: pass ?provider="})


@router.get("/refunds/{reference}")
async def read_refund(request: Request, reference: str, provider: ProviderQuery = None) -> Response:
    refund = _one_refund(request, reference, provider)
    if not isinstance(refund, Refund):
        return refund
    return JSONResponse(content=simulator_of(request).refunds.describe(refund))


class SettleRefundRequest(BaseModel):
    """Force what MTN reports for a refund."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["SUCCESSFUL", "FAILED", "PENDING"]
    reason: str | None = Field(default=None, description="MTN reason, e.g. NOT_ENOUGH_FUNDS")
    # Make MTN report another amount than was requested.
    amount: str | None = None
    callback: bool = Field(default=True, description="send the callback once settled")


@router.post("/refunds/{reference}/settle")
async def settle_refund(
    request: Request, reference: str, body: SettleRefundRequest, provider: ProviderQuery = None
) -> Response:
    simulator = simulator_of(request)
    refund = _one_refund(request, reference, provider)
    if not isinstance(refund, Refund):
        return refund
    if refund.provider != "mtn_momo":
        # Airtel answers a refund with its outcome and has no status to read back later.
        return JSONResponse(
            status_code=409, content={"detail": "only an MTN refund's status can be forced"}
        )
    status = PaymentStatus(body.status)
    settled = force_refund(
        simulator,
        refund,
        status=status,
        reason=(body.reason or "INTERNAL_PROCESSING_ERROR")
        if status is PaymentStatus.FAILED
        else None,
        reported_amount=body.amount,
    )
    if body.callback and settled.status is not PaymentStatus.PENDING:
        schedule_refund_callback(simulator, settled)
    return JSONResponse(content=simulator.refunds.describe(settled))


def _balances(request: Request) -> Response:
    simulator = simulator_of(request)
    config = simulator.config
    balances = simulator.refunds.balances(
        config.mtn_currencies, config.mtn_disbursement_opening_balance
    )
    return JSONResponse(content={"balances": balances})


@router.get("/disbursement/balance")
async def read_disbursement_balance(request: Request) -> Response:
    return _balances(request)


class SetBalanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    available_balance: Decimal = Field(ge=0)


@router.post("/disbursement/balance")
async def set_disbursement_balance(request: Request, body: SetBalanceRequest) -> Response:
    simulator_of(request).refunds.set_balance(body.currency, body.available_balance)
    return _balances(request)
