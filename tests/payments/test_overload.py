"""``MAX_REQUESTS_IN_FLIGHT``: past it, a new payment is refused at once with 503 overloaded and
Retry-After, nothing written; the payments already in flight finish normally."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.merchants.service import create_merchant
from app.vocabulary import Provider
from tests.conftest import count_rows, make_settings
from tests.e2e.stack import eventually
from tests.fakes import FakeProvider, FakeRefundProvider


def body(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "amount": "5000", "phone_number": "0772123456"}


async def test_past_the_limit_a_payment_is_refused_at_once_and_nothing_is_written(
    clean_db: str,
) -> None:
    mtn = FakeProvider(Provider.MTN_MOMO)
    mtn.gate = asyncio.Event()  # request-to-pay hangs until the test lets it go
    providers = {Provider.MTN_MOMO: mtn, Provider.AIRTEL_MONEY: FakeProvider(Provider.AIRTEL_MONEY)}
    app = create_app(
        make_settings(clean_db, max_requests_in_flight=2),
        providers=providers,
        refund_providers={Provider.MTN_MOMO: FakeRefundProvider(Provider.MTN_MOMO)},
        background_jobs=False,
    )
    async with LifespanManager(app):
        runtime = app.state.runtime
        merchant = await create_merchant(runtime.sessions, name="Shop", callback_url="https://s/e")
        headers = {"Authorization": f"Bearer {merchant.api_key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test", headers=headers
        ) as http:
            held = [
                asyncio.create_task(http.post("/v1/payments", json=body(f"O-{i}"))) for i in (1, 2)
            ]

            async def both_in_flight() -> bool:
                return await count_rows(runtime, "payments") == 2

            await eventually(both_in_flight, what="two payments to be in flight")

            # Answered while the two others are still held: it did not queue behind them (the
            # deadline only keeps a regression from hanging the suite).
            refused = await asyncio.wait_for(
                http.post("/v1/payments", json=body("O-3"), headers={"Idempotency-Key": "k-3"}),
                timeout=30,
            )
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "overloaded"
            assert await count_rows(runtime, "payments") == 2
            assert await count_rows(runtime, "idempotency_records") == 0
            # Reading is not limited: only payment creation is.
            assert (await http.get("/v1/payments")).status_code == 200

            mtn.gate.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [201, 201]
            retried = await http.post(
                "/v1/payments", json=body("O-3"), headers={"Idempotency-Key": "k-3"}
            )
            assert retried.status_code == 201


async def test_refusals_are_counted_and_logged_once_per_second_with_their_number(caplog) -> None:
    from app.metrics import OVERLOAD_REFUSALS
    from app.overload import InFlightLimit

    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    now = [100.0]
    limit = InFlightLimit(slow_app, limit=1, clock=lambda: now[0])
    scope = {"type": "http", "method": "POST", "path": "/v1/payments", "headers": []}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def refusal_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "app.overload"]

    before = OVERLOAD_REFUSALS._value.get()
    held = asyncio.create_task(limit(scope, receive, send))

    async def first_in_flight() -> bool:
        return limit.in_flight == 1

    await eventually(first_in_flight, what="the first request to be in flight")
    with caplog.at_level("WARNING", logger="app.overload"):
        for _ in range(5):
            await limit(scope, receive, send)
        now[0] += 0.5
        await limit(scope, receive, send)
        now[0] += 0.6  # over a second since the first line
        await limit(scope, receive, send)
    release.set()
    await held

    assert statuses == [503] * 7 + [201]
    assert OVERLOAD_REFUSALS._value.get() - before == 7
    lines = refusal_lines()
    assert len(lines) == 2  # the first refusal at once, then the next second's
    assert lines[0].startswith("overloaded: refused 1 payment request(s) with 1 in flight")
    assert lines[1].startswith("overloaded: refused 6 payment request(s)")
