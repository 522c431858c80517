"""``/_simulator/*``: the knobs and the evidence, for tests, benchmarks and curious developers.

- ``GET /_simulator/config``: the running ``SimulatorConfig``.
- ``POST /_simulator/config``: merge a partial config (faults, delays, callbacks, seed ...).
- ``GET /_simulator/payments``: every accepted payment (create_requests, charges,
  amount_refunded, refunds ...), plus ``unaccepted``: references whose create calls all failed.
- ``GET /_simulator/payments/{ref}``: one payment (``?provider=`` when an id is on both).
- ``POST /_simulator/payments/{ref}/settle``: force a final status, amount or currency.
- ``POST /_simulator/payments/{ref}/callback``: send its callback again, now; reports the result.
- ``GET /_simulator/callbacks``: every callback attempt (``?reference=``).
- ``GET /_simulator/status-calls``: every payment status request: reference, caller (see
  ``app.simulator.status_calls``) and arrival time (``?reference=``).
- ``GET /_simulator/stats``: requests, responses and faults per endpoint; tokens; payments;
  refunds.
- ``POST /_simulator/reset``: forget payments, refunds and counts, restore the disbursement
  balance (``?config=true&tokens=true``).
- ``POST /_simulator/tokens/revoke``: invalidate issued tokens (``?provider=``).

Refunds and the disbursement balance: ``app.simulator.control_refunds``.

None of these routes is subject to injected faults or latency.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.simulator.ledger import Payment, PaymentStatus, ProviderName, Settlement
from app.simulator.routing import simulator_of
from app.simulator.scenarios import Resolution
from app.simulator.state import Simulator

router = APIRouter(prefix="/_simulator", tags=["simulator control"])

ProviderQuery = Annotated[ProviderName | None, Query()]


@router.get("/config")
async def read_config(request: Request) -> Response:
    return JSONResponse(content=simulator_of(request).config.model_dump(mode="json"))


@router.post("/config")
async def patch_config(request: Request, patch: Annotated[dict[str, Any], Body()]) -> Response:
    """Merge ``patch`` into the running config (see ``SimulatorConfig.patched``)."""
    simulator = simulator_of(request)
    try:
        updated = simulator.reconfigure(patch)
    except ValidationError as error:
        return JSONResponse(
            status_code=422,
            content={"detail": error.errors(include_url=False, include_context=False)},
        )
    except ValueError as error:
        return JSONResponse(status_code=400, content={"detail": str(error)})
    return JSONResponse(content=updated.model_dump(mode="json"))


def _with_refunds(simulator: Simulator, described: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each payment with ``amount_refunded`` (its successful refunds) and ``refunds`` (the
    references of every refund naming it)."""
    refunded = simulator.refunds.refunded_by_payment()
    for payment in described:
        total, references = refunded.get((payment["provider"], payment["reference"]), (0, []))
        payment["amount_refunded"] = str(total)
        payment["refunds"] = references
    return described


@router.get("/payments")
async def list_payments(request: Request, provider: ProviderQuery = None) -> Response:
    simulator = simulator_of(request)
    snapshot = simulator.ledger.snapshot(provider)
    snapshot["payments"] = _with_refunds(simulator, snapshot["payments"])
    return JSONResponse(content=snapshot)


def _one_payment(
    request: Request, reference: str, provider: ProviderName | None
) -> Payment | Response:
    """The payment, or the answer explaining why there is not exactly one."""
    matches = [
        p for p in simulator_of(request).ledger.find(reference) if provider in (None, p.provider)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        return JSONResponse(status_code=404, content={"detail": "no payment with this reference"})
    return JSONResponse(status_code=409, content={"detail": "ambiguous: pass ?provider="})


@router.get("/payments/{reference}")
async def read_payment(
    request: Request, reference: str, provider: ProviderQuery = None
) -> Response:
    payment = _one_payment(request, reference, provider)
    if not isinstance(payment, Payment):
        return payment
    simulator = simulator_of(request)
    [described] = _with_refunds(simulator, [simulator.ledger.describe(payment)])
    return JSONResponse(content=described)


class SettleRequest(BaseModel):
    """Force a payment's status; fields a provider does not have are ignored for it."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["SUCCESSFUL", "FAILED", "PENDING"]
    reason: str | None = Field(default=None, description="MTN reason, e.g. NOT_ENOUGH_FUNDS")
    airtel_status: Literal["TF", "TE"] | None = None
    airtel_response_code: str | None = None
    airtel_message: str | None = None
    # Make the provider report another amount or currency than was requested.
    amount: str | None = None
    currency: str | None = None
    callback: bool = Field(default=True, description="send the callback once settled")

    def settlement(self) -> Settlement:
        status = PaymentStatus(self.status)
        resolution: Resolution | None = None
        if status is PaymentStatus.SUCCESSFUL:
            resolution = Resolution(successful=True)
        elif status is PaymentStatus.FAILED:
            resolution = Resolution(
                successful=False,
                mtn_reason=self.reason or "INTERNAL_PROCESSING_ERROR",
                airtel_status=self.airtel_status or "TF",
                airtel_response_code=self.airtel_response_code or "DP00800001001",
                airtel_message=self.airtel_message or self.reason or "Transaction failed",
            )
        return Settlement(
            status=status,
            resolution=resolution,
            transaction_id=None,
            reported_amount=self.amount,
            reported_currency=self.currency,
        )


@router.post("/payments/{reference}/settle")
async def settle_payment(
    request: Request, reference: str, body: SettleRequest, provider: ProviderQuery = None
) -> Response:
    simulator = simulator_of(request)
    payment = _one_payment(request, reference, provider)
    if not isinstance(payment, Payment):
        return payment
    settled = simulator.force(payment, body.settlement())
    if body.callback and settled.status is not PaymentStatus.PENDING:
        simulator.schedule_callback(settled)
    return JSONResponse(content=simulator.ledger.describe(settled))


@router.post("/payments/{reference}/callback")
async def send_callback(
    request: Request, reference: str, provider: ProviderQuery = None
) -> Response:
    """Send the payment's callback now, as it stands, and report how it went."""
    simulator = simulator_of(request)
    payment = _one_payment(request, reference, provider)
    if not isinstance(payment, Payment):
        return payment
    attempt = await simulator.send_callback_now(payment)
    if attempt is None:
        return JSONResponse(
            status_code=409, content={"detail": "this payment has no callback URL to send to"}
        )
    return JSONResponse(content=attempt.describe())


@router.get("/callbacks")
async def list_callbacks(request: Request, reference: str | None = None) -> Response:
    attempts = simulator_of(request).callbacks.attempts()
    return JSONResponse(
        content={"callbacks": [a.describe() for a in attempts if reference in (None, a.reference)]}
    )


@router.get("/status-calls")
async def list_status_calls(request: Request, reference: str | None = None) -> Response:
    return JSONResponse(content={"calls": simulator_of(request).status_calls.snapshot(reference)})


@router.get("/stats")
async def read_stats(request: Request) -> Response:
    simulator = simulator_of(request)
    stats = simulator.stats.snapshot()
    endpoints = stats["endpoints"]
    stats["token_requests"] = {
        # Both MTN products' token endpoints, as tokens_issued counts both.
        "mtn_momo": sum(
            endpoints.get(name, {}).get("requests", 0)
            for name in ("mtn.token", "mtn.disbursement_token")
        ),
        "airtel_money": endpoints.get("airtel.token", {}).get("requests", 0),
    }
    stats["tokens_issued"] = simulator.credentials.issued_counts()
    payments = simulator.ledger.payments()
    stats["payments"] = {
        provider: {
            status.value: sum(1 for p in payments if p.provider == provider and p.status is status)
            for status in PaymentStatus
        }
        for provider in ("mtn_momo", "airtel_money")
    }
    refunds = simulator.refunds.refunds()
    stats["refunds"] = {
        provider: {
            status.value: sum(1 for r in refunds if r.provider == provider and r.status is status)
            for status in PaymentStatus
        }
        for provider in ("mtn_momo", "airtel_money")
    }
    stats["background_tasks"] = len(simulator.background)
    return JSONResponse(content=stats)


@router.post("/reset")
async def reset(request: Request, config: bool = False, tokens: bool = False) -> Response:
    """Forget payments, refunds, counts and callbacks and restore the disbursement balance;
    ``?config=true`` also restores the startup config, ``?tokens=true`` also revokes every token.
    Provisioned API users stay."""
    await simulator_of(request).reset(config=config, tokens=tokens)
    return Response(status_code=204)


@router.post("/tokens/revoke")
async def revoke_tokens(request: Request, provider: ProviderQuery = None) -> Response:
    """Invalidate issued tokens, so a client's next call meets a 401 and must refresh."""
    revoked = simulator_of(request).credentials.revoke(provider)
    return JSONResponse(content={"revoked": revoked})
