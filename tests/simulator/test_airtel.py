"""Airtel Money over HTTP: token, USSD push, enquiry, callbacks with their hash, path prefix."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re

import pytest

from app.simulator import DEFAULT_AIRTEL_CLIENT_ID, DEFAULT_AIRTEL_CLIENT_SECRET
from tests.simulator.conftest import (
    CallbackReceiver,
    SimulatorClient,
    StartSimulator,
    eventually,
)

# --- token -----------------------------------------------------------------------------------


async def test_token(sim: SimulatorClient) -> None:
    response = await sim.http.post(
        "/auth/oauth2/token",
        json={
            "client_id": DEFAULT_AIRTEL_CLIENT_ID,
            "client_secret": DEFAULT_AIRTEL_CLIENT_SECRET,
            "grant_type": "client_credentials",
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == "180"  # a string, as Airtel sends it
    assert body["token_type"] == "bearer"
    assert body["access_token"]


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": DEFAULT_AIRTEL_CLIENT_ID, "client_secret": "wrong"},
        {"client_id": "someone-else", "client_secret": DEFAULT_AIRTEL_CLIENT_SECRET},
        {"client_id": DEFAULT_AIRTEL_CLIENT_ID},
    ],
)
async def test_bad_client_credentials(sim: SimulatorClient, credentials: dict[str, str]) -> None:
    response = await sim.http.post(
        "/auth/oauth2/token", json={**credentials, "grant_type": "client_credentials"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error_description": "Invalid client authentication",
        "error": "invalid_client",
    }


async def test_token_expires(start_simulator: StartSimulator) -> None:
    client = await start_simulator(airtel_token_lifetime_seconds=1)
    response = await client.http.post(
        "/auth/oauth2/token",
        json={
            "client_id": DEFAULT_AIRTEL_CLIENT_ID,
            "client_secret": DEFAULT_AIRTEL_CLIENT_SECRET,
            "grant_type": "client_credentials",
        },
    )
    assert response.json()["expires_in"] == "1"
    assert (await client.airtel_push("BEFORE-EXPIRY")).status_code == 200

    async def refused() -> dict[str, str] | None:
        pushed = await client.airtel_push("AFTER-EXPIRY")
        return pushed.json() if pushed.status_code == 401 else None

    body = await eventually(refused, timeout=3)
    assert body == {
        "error_description": "The access token is invalid or has expired",
        "error": "invalid_token",
    }


# --- push and enquiry ------------------------------------------------------------------------


async def test_push_then_enquiry_reaches_ts(sim: SimulatorClient) -> None:
    response = await sim.airtel_push("ORD1001TX1", amount=1000)

    assert response.status_code == 200
    assert response.json() == {
        "data": {"transaction": {"id": "ORD1001TX1", "status": "SUCCESS"}},
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": "DP00800001006",
            "success": True,
        },
    }
    first = (await sim.airtel_enquiry("ORD1001TX1")).json()
    assert first["data"]["transaction"]["status"] == "TIP"
    assert "airtel_money_id" not in first["data"]["transaction"]

    final = await sim.airtel_final_status("ORD1001TX1")
    transaction = final["data"]["transaction"]
    assert transaction["status"] == "TS"
    assert transaction["id"] == "ORD1001TX1"
    assert transaction["airtel_money_id"]
    assert final["status"]["response_code"] == "DP00800001001"
    assert final["status"]["success"] is True
    payment = await sim.payment("ORD1001TX1")
    assert payment["msisdn"] == "752604392"
    assert payment["amount"] == "1000"


async def test_duplicate_transaction_id_is_refused_and_charged_once(sim: SimulatorClient) -> None:
    assert (await sim.airtel_push("DUP1")).status_code == 200

    again = await sim.airtel_push("DUP1")

    assert again.json() == {
        "status": {
            "response_code": "DP00800001000",
            "code": "500",
            "success": False,
            "result_code": "ESB000041",
            "message": "External Transaction ID already exists.",
        }
    }
    payment = await sim.payment("DUP1")
    assert payment["create_requests"] == 2
    assert payment["charges"] == 1


async def test_concurrent_pushes_with_one_id_charge_once(sim: SimulatorClient) -> None:
    await sim.airtel_token()

    responses = await asyncio.gather(*(sim.airtel_push("RACE1") for _ in range(20)))

    codes = sorted(r.json()["status"]["response_code"] for r in responses)
    assert codes == ["DP00800001000"] * 19 + ["DP00800001006"]
    payment = await sim.payment("RACE1")
    assert payment["create_requests"] == 20
    assert payment["charges"] == 1


@pytest.mark.parametrize("msisdn", ["256752604392", "0752604392", "75260439", 256752604392])
async def test_msisdn_must_be_nine_digits_without_country_code(
    sim: SimulatorClient, msisdn: object
) -> None:
    response = await sim.airtel_push("BADMSISDN", msisdn=msisdn)

    assert response.status_code == 400
    status = response.json()["status"]
    assert status["result_code"] == "ESB000033"
    assert status["success"] is False
    assert (await sim.ledger())["payments"] == []


@pytest.mark.parametrize("amount", ["1000", 0, -5, 10.5, True])
async def test_amount_must_be_a_positive_whole_number(sim: SimulatorClient, amount: object) -> None:
    response = await sim.airtel_push("BADAMOUNT", amount=amount)

    assert response.json()["status"]["success"] is False
    assert (await sim.ledger())["payments"] == []


@pytest.mark.parametrize("missing", ["X-Country", "X-Currency"])
async def test_locale_headers_are_required(sim: SimulatorClient, missing: str) -> None:
    headers = await sim.airtel_headers()
    del headers[missing]

    response = await sim.http.post(
        "/merchant/v1/payments/",
        headers=headers,
        json={
            "reference": "ORD1",
            "subscriber": {"country": "UG", "currency": "UGX", "msisdn": "752604392"},
            "transaction": {"amount": 1000, "country": "UG", "currency": "UGX", "id": "T1"},
        },
    )

    assert response.status_code == 400
    assert response.json()["status"]["response_code"] == "ROUTER003"


async def test_unknown_transaction_is_404_with_dp00800001025(sim: SimulatorClient) -> None:
    response = await sim.airtel_enquiry("NEVER-PUSHED")

    assert response.status_code == 404
    status = response.json()["status"]
    assert status["response_code"] == "DP00800001025"
    assert status["result_code"] == "ESB000045"
    assert status["success"] is False


async def test_invalid_token_is_401(sim: SimulatorClient) -> None:
    response = await sim.http.get(
        "/standard/v1/payments/T1",
        headers={"Authorization": "Bearer nope", "X-Country": "UG", "X-Currency": "UGX"},
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_path_prefix(start_simulator: StartSimulator) -> None:
    client = await start_simulator(airtel_path_prefix="/simulate", approval_delay_seconds=0)

    assert (await client.airtel_push("PREFIXED1")).status_code == 200
    final = await client.airtel_final_status("PREFIXED1")
    assert final["data"]["transaction"]["status"] == "TS"
    unprefixed = await client.http.post("/auth/oauth2/token", json={})
    assert unprefixed.status_code == 404


# --- callbacks -------------------------------------------------------------------------------


async def test_callback_hash_verifies(sim: SimulatorClient, receiver: CallbackReceiver) -> None:
    secret = "airtel-callback-private-key"
    await sim.configure(
        airtel_callback_url=f"{receiver.base_url}/api/webhooks/airtel-money/",
        airtel_callback_secret=secret,
    )

    await sim.airtel_push("HASHED1")

    [callback] = await receiver.wait_for(1)
    assert callback.method == "POST"
    assert callback.url == f"{receiver.base_url}/api/webhooks/airtel-money/"
    body = callback.json()
    transaction = body["transaction"]
    assert set(transaction) == {"id", "message", "status_code", "airtel_money_id"}
    assert transaction["id"] == "HASHED1"
    assert transaction["status_code"] == "TS"
    enquiry = (await sim.airtel_enquiry("HASHED1")).json()
    assert transaction["airtel_money_id"] == enquiry["data"]["transaction"]["airtel_money_id"]
    compact = json.dumps(transaction, separators=(",", ":")).encode()
    expected = base64.b64encode(hmac.new(secret.encode(), compact, hashlib.sha256).digest())
    assert hmac.compare_digest(body["hash"].encode(), expected)
    # The raw member as received hashes the same, for receivers that hash what they got.
    raw_member = re.search(rb'"transaction":(\{.*?\})', callback.body)
    assert raw_member is not None
    assert raw_member.group(1) == compact


async def test_callback_without_secret_has_no_hash_and_reports_failure(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    await sim.configure(airtel_callback_url=f"{receiver.base_url}/airtel")

    await sim.airtel_push("FAILED1", msisdn="752000451")

    [callback] = await receiver.wait_for(1)
    body = callback.json()
    assert "hash" not in body
    assert body["transaction"]["status_code"] == "TF"
    assert body["transaction"]["message"] == "Refused"
