"""The API process dies in the middle of a request-to-pay: after the payment was written ahead,
while the provider call is in flight. A crash between "provider accepted" and "we recorded it"
is recovered by the reconciler, never lost — and a request that never reached the provider must
end failed (not_found_at_provider), not hold its order forever.

The API runs as ``momo-gateway serve`` so it can be SIGKILLed; the provider's callback never
comes (it would have found the API down); only the reconciler can settle these payments.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import httpx
from sqlalchemy import text

from app.db import create_engine, create_sessionmaker
from app.dev import DevPorts, dev_settings
from app.merchants.service import create_merchant
from app.simulator.config import SimulatorConfig
from app.simulator.server import running_simulator
from tests.e2e.stack import free_port
from tests.receiver import storefront_receiver
from tests.reliability.harness import (
    ChildProcess,
    invariants_hold,
    mtn_payer,
    poll_until,
    worker_env,
)
from tests.reliability.invariants import (
    Evidence,
    deliveries_from,
    read_gateway,
    read_simulator,
)

HOLD = {"hang_seconds": 600}


async def test_api_killed_mid_request_to_pay_leaves_nothing_pending(clean_pg, redis_url, tmp_path):
    config = SimulatorConfig(approval_delay_seconds=0, callbacks_enabled=False)
    engine = create_engine(clean_pg)
    async with (
        storefront_receiver() as receiver,
        running_simulator(config) as simulator_url,
        httpx.AsyncClient(base_url=simulator_url, timeout=10) as simulator,
    ):
        api_port = free_port()
        settings = dev_settings(
            DevPorts(api=api_port, simulator=int(simulator_url.rsplit(":", 1)[1])),
            database_url=clean_pg,
            redis_url=redis_url,
            reconcile_min_age_seconds=0,
            log_format="json",
        )
        merchant = await create_merchant(
            create_sessionmaker(engine), name="Crash shop", callback_url=receiver.url
        )
        env = worker_env(settings)
        api = ChildProcess(
            env,
            tmp_path / "api.log",
            tmp_path,
            ("serve", "--host", "127.0.0.1", "--port", str(api_port)),
        )
        worker = ChildProcess(env, tmp_path / "worker.log", tmp_path)
        gateway = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {merchant.api_key}"},
            timeout=60,
        )
        try:
            api.start()

            async def api_up() -> bool:
                with suppress(httpx.HTTPError):
                    return (await gateway.get("/healthz")).status_code == 200
                return False

            await poll_until(api_up, timeout=60, what="the API to start")

            async def ledger() -> dict:
                return (await simulator.get("/_simulator/payments")).json()

            # 1. The provider records the charge, then holds its answer; the API dies waiting.
            await simulator.post(
                "/_simulator/config",
                json={
                    "endpoint_faults": {
                        "mtn.requesttopay": {**HOLD, "timeout_after_processing_rate": 1}
                    }
                },
            )
            charged = asyncio.create_task(
                gateway.post(
                    "/v1/payments",
                    json={"order_id": "CRASH-1", "amount": "1000", "phone_number": mtn_payer(1)},
                )
            )

            async def charge_recorded() -> bool:
                return len((await ledger())["payments"]) == 1

            await poll_until(charge_recorded, timeout=60, what="the provider to record the charge")
            api.kill()
            with suppress(httpx.HTTPError):
                await charged

            # 2. The request never gets past the provider's door; the API dies waiting.
            api.start()
            await poll_until(api_up, timeout=60, what="the API to restart")
            await simulator.post(
                "/_simulator/config",
                json={
                    "endpoint_faults": {
                        "mtn.requesttopay": {
                            **HOLD,
                            "timeout_rate": 1,
                            "timeout_after_processing_rate": 0,
                        }
                    }
                },
            )
            lost = asyncio.create_task(
                gateway.post(
                    "/v1/payments",
                    json={"order_id": "CRASH-2", "amount": "1000", "phone_number": mtn_payer(2)},
                )
            )

            async def request_arrived() -> bool:
                return len((await ledger())["unaccepted"]) == 1

            await poll_until(request_arrived, timeout=60, what="the second request to arrive")
            api.kill()
            with suppress(httpx.HTTPError):
                await lost

            # Both initiations are abandoned for good; let them look twenty minutes old, so that
            # any sensible "an initiation in flight this long has died" rule applies at once.
            async with engine.begin() as connection:
                unfinished = (
                    (
                        await connection.execute(
                            text(
                                "SELECT order_id FROM payments WHERE status = 'pending' "
                                "AND initiation_finished_at IS NULL ORDER BY order_id"
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                assert unfinished == ["CRASH-1", "CRASH-2"]  # both died mid-initiation
                await connection.execute(
                    text(
                        "UPDATE payments SET created_at = created_at - interval '20 minutes', "
                        "updated_at = updated_at - interval '20 minutes'"
                    )
                )

            # The provider is healthy again, the API is back, and a worker reconciles.
            await simulator.post(
                "/_simulator/config", json={"endpoint_faults": {"mtn.requesttopay": None}}
            )
            api.start()
            await poll_until(api_up, timeout=60, what="the API to restart")
            worker.start()

            async def collect() -> Evidence:
                return Evidence(
                    await read_gateway(engine),
                    await read_simulator(simulator),
                    deliveries_from(list(receiver.received), list(receiver.accepted)),
                )

            started = time.monotonic()
            evidence = await invariants_hold(collect, [api, worker], timeout=90)
            statuses = {p.order_id: (p.status, p.failure_code) for p in evidence.gateway.payments}
            assert statuses == {
                "CRASH-1": ("successful", None),
                "CRASH-2": ("failed", "not_found_at_provider"),
            }, (statuses, time.monotonic() - started)
        finally:
            await gateway.aclose()
            await worker.stop()
            await api.stop()
            await engine.dispose()
