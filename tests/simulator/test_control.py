"""``/_simulator`` controls, statistics, and a clean start and stop."""

from __future__ import annotations

import asyncio
import time

import httpx

from app.simulator import Faults, SimulatorConfig, running_simulator
from tests.simulator.conftest import (
    CallbackReceiver,
    SimulatorClient,
    StartSimulator,
    eventually,
    new_reference,
)


async def test_forced_settlement_with_another_amount_reaches_status_and_callback(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    reference = new_reference()
    await sim.request_to_pay(
        reference, payer="256772000499", amount="5000", callback_url=f"{receiver.base_url}/cb"
    )

    response = await sim.http.post(
        f"/_simulator/payments/{reference}/settle", json={"status": "SUCCESSFUL", "amount": "4000"}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "SUCCESSFUL"
    status = (await sim.mtn_status(reference)).json()
    assert status["status"] == "SUCCESSFUL"
    assert status["amount"] == "4000"
    [callback] = await receiver.wait_for(1)
    assert callback.json()["amount"] == "4000"
    assert (await sim.payment(reference))["amount"] == "5000"  # what was asked for stays known


async def test_forced_airtel_failure(sim: SimulatorClient) -> None:
    await sim.airtel_push("FORCED1", msisdn="752000499")

    response = await sim.http.post(
        "/_simulator/payments/FORCED1/settle",
        json={
            "status": "FAILED",
            "airtel_status": "TE",
            "airtel_response_code": "DP00800001029",
            "callback": False,
        },
    )

    assert response.status_code == 200
    enquiry = (await sim.airtel_enquiry("FORCED1")).json()
    assert enquiry["data"]["transaction"]["status"] == "TE"
    assert enquiry["status"]["response_code"] == "DP00800001029"


async def test_callback_can_be_sent_again(sim: SimulatorClient, receiver: CallbackReceiver) -> None:
    reference = new_reference()
    url = f"{receiver.base_url}/api/webhooks/mtn-momo/{reference}/token"
    await sim.request_to_pay(reference, callback_url=url)
    await receiver.wait_for(1)

    response = await sim.http.post(f"/_simulator/payments/{reference}/callback")

    assert response.status_code == 200
    assert response.json()["delivered"] is True
    assert response.json()["status_code"] == 200
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    assert second.url == url


async def test_callback_needs_somewhere_to_go(sim: SimulatorClient) -> None:
    reference = new_reference()
    await sim.request_to_pay(reference)

    response = await sim.http.post(f"/_simulator/payments/{reference}/callback")

    assert response.status_code == 409


async def test_settle_names_one_payment(sim: SimulatorClient) -> None:
    shared_id = new_reference()
    await sim.request_to_pay(shared_id, payer="256772000499")
    await sim.airtel_push(shared_id, msisdn="752000499")
    settle = {"status": "SUCCESSFUL", "callback": False}

    unknown = await sim.http.post("/_simulator/payments/nope/settle", json=settle)
    ambiguous = await sim.http.post(f"/_simulator/payments/{shared_id}/settle", json=settle)
    chosen = await sim.http.post(
        f"/_simulator/payments/{shared_id}/settle", params={"provider": "airtel_money"}, json=settle
    )

    assert unknown.status_code == 404
    assert ambiguous.status_code == 409
    assert chosen.status_code == 200
    assert (await sim.mtn_status(shared_id)).json()["status"] == "PENDING"


async def test_stats_count_requests_and_tokens(sim: SimulatorClient) -> None:
    reference = new_reference()
    await sim.request_to_pay(reference)
    await sim.mtn_status(reference)
    await sim.airtel_push("STATS1")
    await sim.http.post("/auth/oauth2/token", json={"grant_type": "client_credentials"})

    stats = await sim.stats()

    assert stats["token_requests"] == {"mtn_momo": 1, "airtel_money": 2}
    assert stats["tokens_issued"] == {"mtn_momo": 1, "airtel_money": 1}
    assert stats["endpoints"]["mtn.requesttopay"]["responses"] == {"202": 1}
    assert stats["endpoints"]["airtel.token"]["responses"] == {"200": 1, "400": 1}
    assert (
        stats["payments"]["mtn_momo"]["PENDING"] + stats["payments"]["mtn_momo"]["SUCCESSFUL"] == 1
    )


async def test_reset_forgets_payments_and_can_restore_the_config(sim: SimulatorClient) -> None:
    await sim.configure(approval_delay_seconds=9)
    await sim.request_to_pay(new_reference())

    await sim.http.post("/_simulator/reset")
    kept = (await sim.http.get("/_simulator/config")).json()
    await sim.http.post("/_simulator/reset", params={"config": "true"})
    restored = (await sim.http.get("/_simulator/config")).json()

    assert (await sim.ledger()) == {"payments": [], "unaccepted": []}
    assert (await sim.stats())["background_tasks"] == 0
    assert kept["approval_delay_seconds"] == 9
    assert restored["approval_delay_seconds"] == 0.05


async def test_two_simulators_share_nothing(start_simulator: StartSimulator) -> None:
    first = await start_simulator(approval_delay_seconds=0)
    second = await start_simulator(approval_delay_seconds=0)

    await first.request_to_pay(new_reference())

    assert len((await first.ledger())["payments"]) == 1
    assert (await second.ledger())["payments"] == []


async def test_shutdown_is_prompt_despite_timers_and_hung_requests() -> None:
    config = SimulatorConfig(
        approval_delay_seconds=30,
        endpoint_faults={"mtn.requesttopay_status": Faults(timeout_rate=1, hang_seconds=30)},
    )
    async with httpx.AsyncClient(timeout=10) as http:
        async with running_simulator(config) as base_url:
            client = SimulatorClient(httpx.AsyncClient(base_url=base_url, timeout=10))
            reference = new_reference()
            assert (await client.request_to_pay(reference)).status_code == 202
            hung = asyncio.create_task(
                http.get(
                    f"{base_url}/collection/v1_0/requesttopay/{reference}",
                    headers=await client.mtn_headers(),
                )
            )

            async def hanging() -> bool:
                stats = await client.stats()
                return "mtn.requesttopay_status" in stats["endpoints"]

            await eventually(hanging)
            await client.http.aclose()
            stopping = time.monotonic()

        assert time.monotonic() - stopping < 2
        assert (await hung).status_code == 504
