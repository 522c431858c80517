"""Injected faults: errors, 429s, hangs before and after the charge, latency, scope, seeds."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.simulator.conftest import SimulatorClient, new_reference


async def test_injected_error_charges_nothing_and_a_retry_is_accepted(sim: SimulatorClient) -> None:
    await sim.configure(
        endpoint_faults={"mtn.requesttopay": {"error_rate": 1.0, "error_status": 503}}
    )
    reference = new_reference()

    failed = await sim.request_to_pay(reference)

    assert failed.status_code == 503
    assert failed.json()["code"] == "SERVICE_UNAVAILABLE"
    ledger = await sim.ledger()
    assert ledger["payments"] == []
    assert ledger["unaccepted"][0]["create_requests"] == 1

    await sim.configure(endpoint_faults={"mtn.requesttopay": None})
    retried = await sim.request_to_pay(reference)

    assert retried.status_code == 202
    payment = await sim.payment(reference)
    assert payment["create_requests"] == 2
    assert payment["charges"] == 1


async def test_error_status_500_on_airtel(sim: SimulatorClient) -> None:
    await sim.airtel_token()
    await sim.configure(faults={"error_rate": 1.0, "error_status": 500})

    response = await sim.airtel_push("ERR500")

    assert response.status_code == 500
    status = response.json()["status"]
    assert status["success"] is False
    assert status["code"] == "500"
    assert (await sim.ledger())["payments"] == []


@pytest.mark.parametrize("provider", ["mtn", "airtel"])
async def test_rate_limit(sim: SimulatorClient, provider: str) -> None:
    await sim.mtn_token()
    await sim.airtel_token()
    await sim.configure(faults={"rate_limit_rate": 1.0})

    if provider == "mtn":
        response = await sim.mtn_status(new_reference())
    else:
        response = await sim.airtel_enquiry("ANY")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


async def test_timeout_before_processing_charges_nothing(sim: SimulatorClient) -> None:
    await sim.mtn_token()
    await sim.configure(faults={"timeout_rate": 1.0, "hang_seconds": 5})
    reference = new_reference()

    with pytest.raises(httpx.ReadTimeout):
        await sim.request_to_pay(reference, timeout=0.3)

    assert (await sim.ledger())["payments"] == []
    faults = (await sim.stats())["endpoints"]["mtn.requesttopay"]["faults"]
    assert faults == {"timeout": 1}


async def test_timeout_after_processing_charges_and_a_retry_meets_409(
    sim: SimulatorClient,
) -> None:
    await sim.configure(endpoint_faults={"mtn.requesttopay": {"timeout_after_processing_rate": 1}})
    reference = new_reference()

    with pytest.raises(httpx.ReadTimeout):
        await sim.request_to_pay(reference, timeout=0.3)

    payment = await sim.payment(reference)
    assert payment["charges"] == 1
    await sim.configure(endpoint_faults={"mtn.requesttopay": None})
    retried = await sim.request_to_pay(reference)
    assert retried.status_code == 409
    assert (await sim.mtn_final_status(reference))["status"] == "SUCCESSFUL"
    payment = await sim.payment(reference)
    assert payment["create_requests"] == 2
    assert payment["charges"] == 1


async def test_timeout_after_processing_on_airtel_push(sim: SimulatorClient) -> None:
    await sim.airtel_token()
    await sim.configure(endpoint_faults={"airtel.payment": {"timeout_after_processing_rate": 1}})

    with pytest.raises(httpx.ReadTimeout):
        await sim.airtel_push("LOSTANSWER", timeout=0.3)

    assert (await sim.payment("LOSTANSWER"))["charges"] == 1
    assert (await sim.airtel_enquiry("LOSTANSWER")).status_code == 200


async def test_latency_is_added(sim: SimulatorClient) -> None:
    await sim.mtn_token()
    await sim.configure(faults={"latency_seconds": 0.2})

    started = time.monotonic()
    response = await sim.mtn_status(new_reference())

    assert response.status_code == 404
    assert time.monotonic() - started >= 0.2


async def test_endpoint_scope_leaves_other_endpoints_alone(sim: SimulatorClient) -> None:
    await sim.configure(endpoint_faults={"mtn.requesttopay_status": {"error_rate": 1}})
    reference = new_reference()

    created = await sim.request_to_pay(reference)  # fetches a token too
    status = await sim.mtn_status(reference)

    assert created.status_code == 202
    assert status.status_code == 503


async def test_control_routes_never_fail(sim: SimulatorClient) -> None:
    await sim.configure(faults={"error_rate": 1, "latency_seconds": 1})

    started = time.monotonic()
    response = await sim.http.get("/_simulator/stats")

    assert response.status_code == 200
    assert time.monotonic() - started < 0.5


async def test_a_seed_replays_the_same_faults(sim: SimulatorClient) -> None:
    await sim.mtn_token()

    async def sequence() -> list[int]:
        await sim.configure(seed=7, faults={"error_rate": 0.5})
        return [(await sim.mtn_status("x")).status_code for _ in range(20)]

    first = await sequence()
    second = await sequence()

    assert first == second
    assert {404, 503} == set(first)


@pytest.mark.parametrize(
    ("patch", "status_code"),
    [
        ({"faults": {"error_rate": 0.6, "timeout_rate": 0.6}}, 422),
        ({"faults": {"error_rate": 2}}, 422),
        ({"faults": {"error_status": 418}}, 422),
        ({"endpoint_faults": {"mtn.nothing": {"error_rate": 1}}}, 400),
        ({"no_such_knob": 1}, 422),
        ({"airtel_path_prefix": "/simulate"}, 400),
    ],
)
async def test_bad_config_patches_are_refused(
    sim: SimulatorClient, patch: dict[str, object], status_code: int
) -> None:
    before = (await sim.http.get("/_simulator/config")).json()

    response = await sim.http.post("/_simulator/config", json=patch)

    assert response.status_code == status_code
    assert (await sim.http.get("/_simulator/config")).json() == before
