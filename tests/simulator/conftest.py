"""Simulators and a callback receiver, all over real HTTP on free local ports.

Most tests share one simulator (reset to its startup config before each test) because starting
uvicorn costs ~0.2 s; tests that need a different startup config start their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.simulator import (
    DEFAULT_AIRTEL_CLIENT_ID,
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
    SimulatorConfig,
    running_simulator,
    serve_in_background,
)

T = TypeVar("T")

# Short but non-zero, so "pending first, final later" is observable.
SHARED_CONFIG = SimulatorConfig(approval_delay_seconds=0.05, ongoing_delay_seconds=0.3)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 5.0) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(0.02)


# --- callback receiver --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedCallback:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    base_url: str = ""
    status_code: int = 200
    received: list[ReceivedCallback] = field(default_factory=list)

    def app(self) -> Starlette:
        async def record(request: Request) -> Response:
            self.received.append(
                ReceivedCallback(
                    method=request.method,
                    url=str(request.url),
                    headers=dict(request.headers),
                    body=await request.body(),
                )
            )
            return JSONResponse({"status": "success"}, status_code=self.status_code)

        return Starlette(
            routes=[Route("/{path:path}", record, methods=["GET", "POST", "PUT", "PATCH"])]
        )

    def clear(self) -> None:
        self.received.clear()
        self.status_code = 200

    async def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedCallback]:
        async def enough() -> list[ReceivedCallback] | None:
            return list(self.received) if len(self.received) >= count else None

        return await eventually(enough, timeout)


@pytest.fixture(scope="session")
async def _receiver_server() -> AsyncIterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    async with serve_in_background(receiver.app()) as base_url:
        receiver.base_url = base_url
        yield receiver


@pytest.fixture
def receiver(_receiver_server: CallbackReceiver) -> CallbackReceiver:
    _receiver_server.clear()
    return _receiver_server


# --- a small client for the simulated providers -------------------------------------------------


def new_reference() -> str:
    return str(uuid.uuid4())


def basic(user: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


class SimulatorClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self._mtn_token: str | None = None
        self._airtel_token: str | None = None
        self.airtel_prefix = ""

    # --- MTN -----------------------------------------------------------------------------------

    async def mtn_token(self) -> str:
        if self._mtn_token is None:
            response = await self.http.post(
                "/collection/token/",
                headers={
                    "Authorization": basic(DEFAULT_MTN_API_USER, DEFAULT_MTN_API_KEY),
                    "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
                },
            )
            assert response.status_code == 200, response.text
            self._mtn_token = response.json()["access_token"]
        return self._mtn_token

    async def mtn_headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {await self.mtn_token()}",
            "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
            "X-Target-Environment": "sandbox",
            **extra,
        }

    async def request_to_pay(
        self,
        reference: str,
        *,
        payer: str = "256772123456",
        amount: str = "5000",
        currency: str = "UGX",
        callback_url: str | None = None,
        timeout: float | None = None,
        **body: Any,
    ) -> httpx.Response:
        headers = await self.mtn_headers(**{"X-Reference-Id": reference})
        if callback_url is not None:
            headers["X-Callback-Url"] = callback_url
        payload = {
            "amount": amount,
            "currency": currency,
            "externalId": "ORD-1001",
            "payer": {"partyIdType": "MSISDN", "partyId": payer},
            "payerMessage": "Order ORD-1001",
            "payeeNote": "Order ORD-1001",
            **body,
        }
        return await self.http.post(
            "/collection/v1_0/requesttopay",
            headers=headers,
            json=payload,
            timeout=timeout or self.http.timeout,
        )

    async def mtn_status(self, reference: str) -> httpx.Response:
        return await self.http.get(
            f"/collection/v1_0/requesttopay/{reference}", headers=await self.mtn_headers()
        )

    async def mtn_final_status(self, reference: str) -> dict[str, Any]:
        async def final() -> dict[str, Any] | None:
            body: dict[str, Any] = (await self.mtn_status(reference)).json()
            return body if body["status"] != "PENDING" else None

        return await eventually(final)

    # --- Airtel --------------------------------------------------------------------------------

    async def airtel_token(self) -> str:
        if self._airtel_token is None:
            response = await self.http.post(
                f"{self.airtel_prefix}/auth/oauth2/token",
                json={
                    "client_id": DEFAULT_AIRTEL_CLIENT_ID,
                    "client_secret": DEFAULT_AIRTEL_CLIENT_SECRET,
                    "grant_type": "client_credentials",
                },
            )
            assert response.status_code == 200, response.text
            self._airtel_token = response.json()["access_token"]
        return self._airtel_token

    async def airtel_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {await self.airtel_token()}",
            "X-Country": "UG",
            "X-Currency": "UGX",
        }

    async def airtel_push(
        self,
        transaction_id: str,
        *,
        msisdn: Any = "752604392",
        amount: Any = 1000,
        timeout: float | None = None,
    ) -> httpx.Response:
        payload = {
            "reference": "ORD1001",
            "subscriber": {"country": "UG", "currency": "UGX", "msisdn": msisdn},
            "transaction": {
                "amount": amount,
                "country": "UG",
                "currency": "UGX",
                "id": transaction_id,
            },
        }
        return await self.http.post(
            f"{self.airtel_prefix}/merchant/v1/payments/",
            headers=await self.airtel_headers(),
            json=payload,
            timeout=timeout or self.http.timeout,
        )

    async def airtel_enquiry(self, transaction_id: str) -> httpx.Response:
        return await self.http.get(
            f"{self.airtel_prefix}/standard/v1/payments/{transaction_id}",
            headers=await self.airtel_headers(),
        )

    async def airtel_final_status(self, transaction_id: str) -> dict[str, Any]:
        async def final() -> dict[str, Any] | None:
            body: dict[str, Any] = (await self.airtel_enquiry(transaction_id)).json()
            status = body["data"]["transaction"]["status"]
            return body if status not in ("TIP", "TA") else None

        return await eventually(final)

    # --- control -------------------------------------------------------------------------------

    async def configure(self, **patch: Any) -> dict[str, Any]:
        response = await self.http.post("/_simulator/config", json=patch)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def ledger(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self.http.get("/_simulator/payments")).json()
        return result

    async def payment(self, reference: str) -> dict[str, Any]:
        response = await self.http.get(f"/_simulator/payments/{reference}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self.http.get("/_simulator/stats")).json()
        return result


@pytest.fixture(scope="session")
async def _shared_simulator_url() -> AsyncIterator[str]:
    async with running_simulator(SHARED_CONFIG) as base_url:
        yield base_url


@pytest.fixture(scope="session")
async def _shared_http(_shared_simulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # One client for the session: building one costs an SSL context (~20 ms) per test otherwise.
    async with httpx.AsyncClient(base_url=_shared_simulator_url, timeout=5) as http:
        yield http


@pytest.fixture
async def sim(_shared_http: httpx.AsyncClient) -> SimulatorClient:
    reset = await _shared_http.post(
        "/_simulator/reset", params={"config": "true", "tokens": "true"}
    )
    assert reset.status_code == 204
    return SimulatorClient(_shared_http)


StartSimulator = Callable[..., Awaitable[SimulatorClient]]


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    """For a startup config the shared simulator cannot take: ``await start_simulator(**cfg)``."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**config: Any) -> SimulatorClient:
            settings = SimulatorConfig(**config)
            base_url = await stack.enter_async_context(running_simulator(settings))
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=5))
            client = SimulatorClient(http)
            client.airtel_prefix = settings.airtel_path_prefix
            return client

        yield start
