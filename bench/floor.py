"""The floor: the least I/O a write-ahead initiation needs, behind the same server and load.

``POST /v1/payments`` does exactly three things, in order: insert the pending payment and its
reference (committed), send MTN's request-to-pay to the simulator with a token fetched once at
start-up, and record that initiation finished (committed). No authentication, idempotency, audit
row, validation or logging: whatever the gateway spends beyond this is the price of those.

It runs on uvicorn (uvloop + httptools, as ``momo-gateway serve`` does) with a bare Starlette app,
so the gateway and the floor are measured by the same load generator in the same way:

    FLOOR_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/momo_bench \\
    FLOOR_SIMULATOR_URL=http://127.0.0.1:8090 FLOOR_SUBSCRIPTION_KEY=... \\
    .venv/bin/python -m uvicorn bench.floor:create_app --factory --port 8100 --no-access-log

``FLOOR_HTTP_CLIENT=aiohttp`` swaps httpx for aiohttp (httpcore's pool tail).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.simulator.config import DEFAULT_MTN_API_KEY, DEFAULT_MTN_API_USER

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_payments (
    id uuid PRIMARY KEY,
    order_id text NOT NULL,
    amount_minor bigint NOT NULL,
    currency char(3) NOT NULL,
    phone_number text NOT NULL,
    provider_reference uuid NOT NULL UNIQUE,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    initiation_finished_at timestamptz
)
"""
# As many provider connections as there can be requests in flight: the floor has no pool cap.
MAX_PROVIDER_CONNECTIONS = 1024
# Enough for two statements per request; two floors and the gateway (10 + 20 overflow) must fit
# in PostgreSQL's default max_connections of 100 together.
DB_POOL_SIZE = 20

PostFn = Callable[[str, dict[str, str], bytes], Awaitable[int]]


async def _no_reset(_: asyncpg.Connection) -> None:
    # asyncpg resets a released connection with one more query (UNLISTEN, RESET ALL, ...); the
    # floor's statements leave no session state behind, so it makes exactly its two.
    return None


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _httpx_client(base_url: str) -> tuple[PostFn, Callable[[], Awaitable[None]]]:
    limits = httpx.Limits(
        max_connections=MAX_PROVIDER_CONNECTIONS,
        max_keepalive_connections=MAX_PROVIDER_CONNECTIONS,
        keepalive_expiry=30,
    )
    client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0, trust_env=False)

    async def post(path: str, headers: dict[str, str], body: bytes) -> int:
        response = await client.post(path, headers=headers, content=body)
        return response.status_code

    return post, client.aclose


async def _aiohttp_client(base_url: str) -> tuple[PostFn, Callable[[], Awaitable[None]]]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=MAX_PROVIDER_CONNECTIONS, keepalive_timeout=30)
    session = aiohttp.ClientSession(
        base_url=base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    )

    async def post(path: str, headers: dict[str, str], body: bytes) -> int:
        async with session.post(path, headers=headers, data=body) as response:
            await response.read()
            return response.status

    return post, session.close


async def _fetch_token(base_url: str, subscription_key: str) -> str:
    basic = base64.b64encode(f"{DEFAULT_MTN_API_USER}:{DEFAULT_MTN_API_KEY}".encode()).decode()
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=30.0) as client:
        response = await client.post(
            "/collection/token/",
            headers={
                "Authorization": f"Basic {basic}",
                "Ocp-Apim-Subscription-Key": subscription_key,
            },
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


def create_app() -> Starlette:
    db_url = _asyncpg_dsn(os.environ["FLOOR_DATABASE_URL"])
    simulator_url = os.environ["FLOOR_SIMULATOR_URL"]
    subscription_key = os.environ["FLOOR_SUBSCRIPTION_KEY"]
    client_kind = os.environ.get("FLOOR_HTTP_CLIENT", "httpx")
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            db_url,
            min_size=1,
            max_size=DB_POOL_SIZE,
            max_inactive_connection_lifetime=2,
            reset=_no_reset,
        )
        await pool.execute(SCHEMA)
        make = _aiohttp_client if client_kind == "aiohttp" else _httpx_client
        post, close = await make(simulator_url)
        token = await _fetch_token(simulator_url, subscription_key)
        state.update(
            pool=pool,
            post=post,
            headers={
                "Authorization": f"Bearer {token}",
                "Ocp-Apim-Subscription-Key": subscription_key,
                "X-Target-Environment": "sandbox",
                "Content-Type": "application/json",
            },
        )
        try:
            yield
        finally:
            await close()
            await pool.close()

    async def create_payment(request: Request) -> JSONResponse:
        body = await request.json()
        payment_id = uuid.uuid4()
        reference = uuid.uuid4()
        amount = int(body["amount"])
        phone = "256" + body["phone_number"].lstrip("0")
        pool: asyncpg.Pool = state["pool"]
        await pool.execute(
            "INSERT INTO floor_payments (id, order_id, amount_minor, currency, phone_number,"
            " provider_reference, status) VALUES ($1, $2, $3, 'UGX', $4, $5, 'pending')",
            payment_id,
            body["order_id"],
            amount,
            phone,
            reference,
        )
        wire = json.dumps(
            {
                "amount": str(amount),
                "currency": "UGX",
                "externalId": body["order_id"],
                "payer": {"partyIdType": "MSISDN", "partyId": phone},
                "payerMessage": "Order",
                "payeeNote": "Order",
            }
        ).encode()
        status = await state["post"](
            "/collection/v1_0/requesttopay",
            {**state["headers"], "X-Reference-Id": str(reference)},
            wire,
        )
        await pool.execute(
            "UPDATE floor_payments SET initiation_finished_at = now() WHERE id = $1", payment_id
        )
        return JSONResponse(
            {"id": str(payment_id), "status": "pending", "provider_status": status},
            status_code=201 if status == 202 else 502,
        )

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"}, status_code=200 if state else 503)

    return Starlette(
        routes=[
            Route("/v1/payments", create_payment, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
