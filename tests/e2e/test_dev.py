"""``momo-gateway dev`` alone: no Redis, no credentials; a payment settles and its event is
delivered, signed, to the demo storefront."""

from __future__ import annotations

import asyncio
import logging

import httpx

from app.dev import DevPorts, run_dev
from tests.e2e.stack import eventually, free_port


async def test_dev_settles_a_payment_and_delivers_its_event(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO, logger="app.dev")
    ports = DevPorts(
        api=free_port(), simulator=free_port(), storefront=free_port(), saleor=free_port()
    )
    stop = asyncio.Event()
    ready: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    dev = asyncio.create_task(run_dev(ports, stop=stop, ready=ready))
    try:
        started = await asyncio.wait_for(ready, timeout=30)
        headers = {"Authorization": f"Bearer {started['api_key']}"}
        async with httpx.AsyncClient(base_url=started["api_url"], headers=headers) as http:
            # The README's example request.
            created = await http.post(
                "/v1/payments",
                headers={"Idempotency-Key": "demo-1"},
                json={
                    "order_id": "ORD-1001",
                    "amount": "50000",
                    "phone_number": "0772 123 456",
                    "description": "Order ORD-1001",
                },
            )
            assert created.status_code == 201
            payment_id = created.json()["id"]

            async def successful() -> bool:
                response = await http.get(f"/v1/payments/{payment_id}")
                return response.json()["status"] == "successful"

            await eventually(successful, what="the payment to succeed")

            async def delivered() -> bool:
                return any(
                    "storefront received payment.succeeded" in r.getMessage()
                    and payment_id in r.getMessage()
                    and r.getMessage().endswith("signature verified")
                    for r in caplog.records
                )

            await eventually(delivered, what="the event at the demo storefront")

            async def recorded_as_delivered() -> bool:
                # The gateway records the storefront's 2xx just after the storefront logs it.
                events = (await http.get(f"/v1/events?payment_id={payment_id}")).json()["data"]
                return [e["delivery"]["status"] for e in events] == ["delivered"]

            await eventually(recorded_as_delivered, what="the event recorded as delivered")
        assert (tmp_path / "momo_gateway.db").exists()
    finally:
        stop.set()
        await asyncio.wait_for(dev, timeout=30)
