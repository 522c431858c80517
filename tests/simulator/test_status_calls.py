"""The status-call log: each payment status request with its reference, its caller (named by a
``/_as/{caller}`` prefix), when it arrived and how it was answered, faults or not."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.simulator.conftest import SimulatorClient, eventually, new_reference


async def status_calls(sim: SimulatorClient, **params: str) -> list[dict]:
    response = await sim.http.get("/_simulator/status-calls", params=params)
    assert response.status_code == 200, response.text
    calls: list[dict] = response.json()["calls"]
    return calls


async def test_each_status_request_is_logged_with_the_caller_it_named(
    sim: SimulatorClient,
) -> None:
    mtn_reference, airtel_id = new_reference(), "ENQ-CALLER-1"
    assert (await sim.request_to_pay(mtn_reference)).status_code == 202
    assert (await sim.airtel_push(airtel_id)).status_code == 200
    before = time.time()
    async with httpx.AsyncClient(base_url=sim.http.base_url.join("/_as/worker-7")) as http:
        worker = SimulatorClient(http)
        # Served as without the prefix: the same routes, checks and answers.
        status = (await worker.mtn_status(mtn_reference)).json()["status"]
        assert status in ("PENDING", "SUCCESSFUL")
        assert (await worker.airtel_enquiry(airtel_id)).status_code == 200
    assert (await sim.mtn_status(mtn_reference)).status_code == 200

    calls = await status_calls(sim)

    assert [(c["provider"], c["reference"], c["caller"]) for c in calls] == [
        ("mtn_momo", mtn_reference, "worker-7"),
        ("airtel_money", airtel_id, "worker-7"),
        ("mtn_momo", mtn_reference, None),
    ]
    assert all(before <= c["at"] <= c["answered_at"] <= time.time() for c in calls)
    assert [c["status_code"] for c in calls] == [200, 200, 200]
    assert [c["caller"] for c in await status_calls(sim, reference=airtel_id)] == ["worker-7"]


async def test_a_status_request_that_meets_a_fault_has_still_asked(sim: SimulatorClient) -> None:
    reference = new_reference()
    await sim.mtn_token()
    await sim.configure(faults={"error_rate": 1.0})

    assert (await sim.mtn_status(reference)).status_code == 503

    assert [(c["reference"], c["status_code"]) for c in await status_calls(sim)] == [
        (reference, 503)
    ]


async def test_a_caller_name_that_is_not_a_plain_token_finds_no_route(
    sim: SimulatorClient,
) -> None:
    response = await sim.http.get("/_as/a%20b/collection/v1_0/requesttopay/x")

    assert response.status_code == 404
    assert await status_calls(sim) == []


async def test_reset_forgets_the_log(sim: SimulatorClient) -> None:
    await sim.mtn_status(new_reference())
    assert len(await status_calls(sim)) == 1

    assert (await sim.http.post("/_simulator/reset")).status_code == 204

    assert await status_calls(sim) == []


async def test_a_request_in_flight_is_logged_unanswered_until_it_is_answered(
    sim: SimulatorClient,
) -> None:
    reference = new_reference()
    await sim.mtn_token()
    await sim.configure(endpoint_faults={"mtn.requesttopay_status": {"latency_seconds": 0.5}})
    asking = asyncio.create_task(sim.mtn_status(reference))

    async def in_flight() -> list[dict] | None:
        calls = await status_calls(sim)
        return calls if calls else None

    [call] = await eventually(in_flight)
    assert (call["answered_at"], call["status_code"]) == (None, None)

    assert (await asking).status_code == 404
    [call] = await status_calls(sim)
    assert call["status_code"] == 404
    assert call["answered_at"] - call["at"] >= 0.5
