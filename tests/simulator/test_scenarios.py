"""Outcomes chosen by the payer's number, on both providers (the table in scenarios.py)."""

from __future__ import annotations

import pytest

from app.simulator.scenarios import SCENARIOS, scenario_for
from tests.simulator.conftest import SimulatorClient, new_reference

MTN_FAILED = {
    450: "INTERNAL_PROCESSING_ERROR",
    451: "APPROVAL_REJECTED",
    452: "EXPIRED",
    455: "PAYER_NOT_FOUND",
    456: "PAYEE_NOT_ALLOWED_TO_RECEIVE",
    463: "COULD_NOT_PERFORM_TRANSACTION",
    470: "NOT_ENOUGH_FUNDS",
    471: "PAYER_LIMIT_REACHED",
}
MTN_REFUSED = {
    457: (500, "NOT_ALLOWED"),
    458: (500, "NOT_ALLOWED_TARGET_ENVIRONMENT"),
    459: (500, "INVALID_CALLBACK_URL_HOST"),
    460: (500, "INVALID_CURRENCY"),
    461: (500, "INTERNAL_PROCESSING_ERROR"),
    462: (503, "SERVICE_UNAVAILABLE"),
}
NEVER_SETTLES = [454, 498, 499]

AIRTEL_FAILED = {
    450: ("TF", "DP00800001001"),
    451: ("TF", "DP00800001008"),
    452: ("TE", "DP00800001029"),
    456: ("TF", "DP00800001010"),
    463: ("TF", "DP00800001024"),
    470: ("TF", "DP00800001007"),
    471: ("TF", "DP00800001003"),
}
AIRTEL_REFUSED = {
    455: (400, "ESB000033"),
    457: (200, "DP00800001009"),
    458: (400, "ROUTER007"),
    459: (400, "ESB000039"),
    460: (400, "ESB000035"),
    461: (500, "ESB000001"),
    462: (503, "ESB000001"),
}


def test_every_scenario_is_covered_on_both_providers() -> None:
    mtn = set(MTN_FAILED) | set(MTN_REFUSED) | set(NEVER_SETTLES) | {453}
    airtel = set(AIRTEL_FAILED) | set(AIRTEL_REFUSED) | set(NEVER_SETTLES) | {453}
    assert mtn == set(SCENARIOS)
    assert airtel == set(SCENARIOS)


@pytest.mark.parametrize(
    ("msisdn", "code"),
    [
        ("46733123451", 451),  # MTN's own sandbox number
        ("256772000451", 451),  # Uganda format, 000 + code
        ("752000451", 451),  # Airtel's 9 digits
        ("256772123456", None),  # the README's example number pays
        ("256772000451000", None),  # the suffix is the whole tail, not a substring
        ("256772000999", None),  # 000 + an unused code pays
        ("46733123999", None),
    ],
)
def test_number_rule(msisdn: str, code: int | None) -> None:
    assert scenario_for(msisdn).code == code


def mtn_numbers(code: int) -> list[str]:
    return [f"46733123{code}", f"256772000{code}"]


# --- MTN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payer", "reason"),
    [(n, reason) for code, reason in MTN_FAILED.items() for n in mtn_numbers(code)],
)
async def test_mtn_final_failures(sim: SimulatorClient, payer: str, reason: str) -> None:
    reference = new_reference()

    assert (await sim.request_to_pay(reference, payer=payer)).status_code == 202

    final = await sim.mtn_final_status(reference)
    assert final["status"] == "FAILED"
    assert final["reason"] == reason
    assert "financialTransactionId" not in final


@pytest.mark.parametrize(
    ("payer", "status_code", "code"),
    [(n, status, code) for c, (status, code) in MTN_REFUSED.items() for n in mtn_numbers(c)],
)
async def test_mtn_request_time_refusals_record_nothing(
    sim: SimulatorClient, payer: str, status_code: int, code: str
) -> None:
    reference = new_reference()

    response = await sim.request_to_pay(reference, payer=payer)

    assert response.status_code == status_code
    assert response.json()["code"] == code
    assert (await sim.mtn_status(reference)).status_code == 404
    ledger = await sim.ledger()
    assert ledger["payments"] == []
    assert ledger["unaccepted"] == [
        {
            "provider": "mtn_momo",
            "reference": reference,
            "create_requests": 1,
            "last_http_status": status_code,
        }
    ]


@pytest.mark.parametrize("payer", [n for code in NEVER_SETTLES for n in mtn_numbers(code)])
async def test_mtn_pending_forever(sim: SimulatorClient, payer: str) -> None:
    stuck, control = new_reference(), new_reference()
    await sim.request_to_pay(stuck, payer=payer)
    await sim.request_to_pay(control)

    await sim.mtn_final_status(control)

    body = (await sim.mtn_status(stuck)).json()
    assert body["status"] == "PENDING"
    assert (await sim.stats())["background_tasks"] == 0  # nothing left that could settle it


@pytest.mark.parametrize("payer", mtn_numbers(453))
async def test_mtn_ongoing_succeeds_after_the_ongoing_delay(
    sim: SimulatorClient, payer: str
) -> None:
    ongoing, control = new_reference(), new_reference()
    await sim.request_to_pay(ongoing, payer=payer)
    await sim.request_to_pay(control)
    await sim.mtn_final_status(control)

    assert (await sim.mtn_status(ongoing)).json()["status"] == "PENDING"
    final = await sim.mtn_final_status(ongoing)
    assert final["status"] == "SUCCESSFUL"
    assert final["financialTransactionId"]


# --- Airtel ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "response_code"),
    [(code, status, dp) for code, (status, dp) in AIRTEL_FAILED.items()],
)
async def test_airtel_final_failures(
    sim: SimulatorClient, code: int, status: str, response_code: str
) -> None:
    transaction_id = f"TX{code}{new_reference()[:8]}"

    pushed = await sim.airtel_push(transaction_id, msisdn=f"752000{code}")

    assert pushed.json()["status"]["response_code"] == "DP00800001006"
    final = await sim.airtel_final_status(transaction_id)
    transaction = final["data"]["transaction"]
    assert transaction["status"] == status
    assert final["status"]["response_code"] == response_code
    assert "airtel_money_id" not in transaction


@pytest.mark.parametrize(
    ("code", "http_status", "response_code"),
    [(code, http, rc) for code, (http, rc) in AIRTEL_REFUSED.items()],
)
async def test_airtel_push_refusals_record_nothing(
    sim: SimulatorClient, code: int, http_status: int, response_code: str
) -> None:
    transaction_id = f"TX{code}{new_reference()[:8]}"

    response = await sim.airtel_push(transaction_id, msisdn=f"752000{code}")

    assert response.status_code == http_status
    status = response.json()["status"]
    assert status["success"] is False
    assert status["response_code"] == response_code
    assert (await sim.airtel_enquiry(transaction_id)).status_code == 404
    ledger = await sim.ledger()
    assert ledger["payments"] == []
    assert ledger["unaccepted"] == [
        {
            "provider": "airtel_money",
            "reference": transaction_id,
            "create_requests": 1,
            "last_http_status": http_status,
        }
    ]


@pytest.mark.parametrize(("code", "status"), [(454, "TIP"), (498, "TA"), (499, "TIP")])
async def test_airtel_never_settles(sim: SimulatorClient, code: int, status: str) -> None:
    stuck, control = f"STUCK{code}", f"CONTROL{code}"
    await sim.airtel_push(stuck, msisdn=f"752000{code}")
    await sim.airtel_push(control)

    await sim.airtel_final_status(control)

    body = (await sim.airtel_enquiry(stuck)).json()
    assert body["data"]["transaction"]["status"] == status
    assert (await sim.stats())["background_tasks"] == 0


async def test_airtel_ongoing_succeeds_after_the_ongoing_delay(sim: SimulatorClient) -> None:
    await sim.airtel_push("ONGOING1", msisdn="752000453")

    assert (await sim.airtel_enquiry("ONGOING1")).json()["data"]["transaction"]["status"] == "TIP"
    final = await sim.airtel_final_status("ONGOING1")
    assert final["data"]["transaction"]["status"] == "TS"
