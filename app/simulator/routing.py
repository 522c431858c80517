"""The route class behind every provider endpoint: counting, latency and injected faults.

Faults are decided before the endpoint runs, so an injected error or hang leaves no trace in the
ledger — except the "timeout after processing" fault, which lets the endpoint do its work (record
the charge or the refund, issue the token) and then withholds the answer, the case a client can
least tell apart from success.

Every request to a create endpoint (a payment or a refund) is counted against the reference it
names before anything can fail, so the evidence shows retries that never got through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Protocol

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app.simulator.config import Endpoint, Faults
from app.simulator.ledger import PaymentKey, ProviderName
from app.simulator.state import Simulator
from app.simulator.stats import FaultKind
from app.simulator.status_calls import STATUS_REFERENCE_PARAMS, caller_of


class CreateRequestLog(Protocol):
    """What a ledger offers to count create requests and remember their last answer."""

    def count_create_request(self, key: PaymentKey) -> None: ...

    def note_create_answer(self, key: PaymentKey, http_status: int) -> None: ...


class WireError(Exception):
    """Raised by an endpoint to answer with a provider-shaped error right away."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def simulator_of(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


def pick_fault(faults: Faults, draw: float) -> FaultKind | None:
    threshold = 0.0
    for kind, rate in (
        (FaultKind.ERROR, faults.error_rate),
        (FaultKind.RATE_LIMIT, faults.rate_limit_rate),
        (FaultKind.TIMEOUT, faults.timeout_rate),
        (FaultKind.TIMEOUT_AFTER_PROCESSING, faults.timeout_after_processing_rate),
    ):
        threshold += rate
        if draw < threshold:
            return kind
    return None


def hang_released() -> Response:
    # Only seen by a client that waited longer than the hang (or when the simulator stops).
    return JSONResponse(status_code=504, content={"message": "simulated timeout"})


class ProviderRoute(APIRoute):
    """Subclassed per provider, which supplies its error bodies and how to find a reference."""

    provider: ClassVar[ProviderName]
    create_endpoints: ClassVar[frozenset[Endpoint]] = frozenset()
    refund_endpoints: ClassVar[frozenset[Endpoint]] = frozenset()

    @classmethod
    def error_response(cls, status_code: int) -> Response:
        raise NotImplementedError

    @classmethod
    def rate_limited_response(cls) -> Response:
        raise NotImplementedError

    @classmethod
    async def create_reference(cls, endpoint: Endpoint, request: Request) -> str | None:
        """The reference a create request names, read without judging the request."""
        raise NotImplementedError

    @classmethod
    def create_log(cls, simulator: Simulator, endpoint: Endpoint) -> CreateRequestLog | None:
        if endpoint in cls.create_endpoints:
            return simulator.ledger
        if endpoint in cls.refund_endpoints:
            return simulator.refunds
        return None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint_handler = super().get_route_handler()
        endpoint = Endpoint(self.name)
        route_class = type(self)

        async def handle(request: Request) -> Response:
            simulator = simulator_of(request)
            simulator.stats.count_request(endpoint)
            reference_param = STATUS_REFERENCE_PARAMS.get(endpoint)
            status_call = (
                simulator.status_calls.arrived(
                    route_class.provider,
                    str(request.path_params.get(reference_param, "")),
                    caller_of(request.scope),
                )
                if reference_param is not None
                else None
            )
            log = route_class.create_log(simulator, endpoint)
            key: PaymentKey | None = None
            if log is not None:
                reference = await route_class.create_reference(endpoint, request)
                if reference:
                    key = (route_class.provider, reference)
                    log.count_create_request(key)
            response = await route_class._answer(simulator, endpoint, request, endpoint_handler)
            simulator.stats.count_response(endpoint, response.status_code)
            if status_call is not None:
                simulator.status_calls.answered(status_call, response.status_code)
            if log is not None and key is not None:
                log.note_create_answer(key, response.status_code)
            return response

        return handle

    @classmethod
    async def _answer(
        cls,
        simulator: Simulator,
        endpoint: Endpoint,
        request: Request,
        endpoint_handler: Callable[[Request], Coroutine[Any, Any, Response]],
    ) -> Response:
        faults = simulator.config.faults_for(endpoint)
        if faults.latency_seconds:
            await asyncio.sleep(faults.latency_seconds)
        # One draw per request whatever the rates, so a seed replays the same sequence.
        fault = pick_fault(faults, simulator.rng.random())
        if fault is not None:
            simulator.stats.count_fault(endpoint, fault)
        if fault is FaultKind.ERROR:
            return cls.error_response(faults.error_status)
        if fault is FaultKind.RATE_LIMIT:
            return cls.rate_limited_response()
        if fault is FaultKind.TIMEOUT:
            await simulator.hang(faults.hang_seconds)
            return hang_released()
        try:
            response = await endpoint_handler(request)
        except WireError as error:
            response = error.response
        if fault is FaultKind.TIMEOUT_AFTER_PROCESSING:
            await simulator.hang(faults.hang_seconds)
            return hang_released()
        return response
