"""The simulator's FastAPI app: MTN (Collection and Disbursement), Airtel, Africa's Talking and
the control routes over one ``Simulator``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from app.simulator import (
    africastalking,
    airtel,
    airtel_refunds,
    control,
    control_refunds,
    mtn,
    mtn_disbursement,
    mtn_sandbox,
)
from app.simulator.config import SimulatorConfig
from app.simulator.state import Simulator
from app.simulator.status_calls import CallerPrefix


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    simulator: Simulator = app.state.simulator
    # trust_env=False: a developer's HTTP(S)_PROXY must not swallow callbacks to localhost.
    async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
        simulator.callbacks.attach(client)
        simulator.delivery_reports.attach(client)
        try:
            yield
        finally:
            await simulator.close()
            simulator.callbacks.attach(None)
            simulator.delivery_reports.attach(None)


def create_simulator_app(config: SimulatorConfig | None = None) -> FastAPI:
    config = config or SimulatorConfig()
    app = FastAPI(
        title="momo-gateway provider simulator",
        description=(
            "MTN MoMo Collection and Disbursement, Airtel Money and Africa's Talking SMS "
            "look-alike for development and tests."
        ),
        lifespan=_lifespan,
        # The providers document exact paths ("/collection/token/", "/merchant/v1/payments/"):
        # a client that drifts from them should get a 404 here, not a helpful redirect.
        redirect_slashes=False,
    )
    app.state.simulator = Simulator(config)
    # `/_as/{caller}/...`: several gateway processes on one simulator, told apart.
    app.add_middleware(CallerPrefix)
    app.include_router(mtn.router)
    app.include_router(mtn_disbursement.router)
    app.include_router(mtn_sandbox.router)
    app.include_router(airtel.router, prefix=config.airtel_path_prefix)
    app.include_router(airtel_refunds.router, prefix=config.airtel_path_prefix)
    app.include_router(africastalking.router)
    app.include_router(control.router)
    app.include_router(control_refunds.router)
    return app
