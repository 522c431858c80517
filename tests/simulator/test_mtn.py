"""MTN MoMo Collection over HTTP: tokens, request-to-pay, status, callbacks, holder, balance."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.simulator import (
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
)
from tests.simulator.conftest import (
    CallbackReceiver,
    SimulatorClient,
    basic,
    eventually,
    new_reference,
)

INVALID_KEY_MESSAGE = (
    "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription."
)


# --- token -----------------------------------------------------------------------------------


async def test_token_with_default_credentials(sim: SimulatorClient) -> None:
    response = await sim.http.post(
        "/collection/token/",
        headers={
            "Authorization": basic(DEFAULT_MTN_API_USER, DEFAULT_MTN_API_KEY),
            "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "access_token"
    assert body["expires_in"] == 3600
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) >= 32


async def test_token_with_wrong_key_is_refused(sim: SimulatorClient) -> None:
    response = await sim.http.post(
        "/collection/token/",
        headers={
            "Authorization": basic(DEFAULT_MTN_API_USER, "not-the-key"),
            "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
        },
    )

    assert response.status_code == 401
    assert response.json() == {"error": "login_failed"}


@pytest.mark.parametrize("subscription_key", [None, "wrong-subscription-key"])
async def test_token_needs_the_subscription_key(
    sim: SimulatorClient, subscription_key: str | None
) -> None:
    headers = {"Authorization": basic(DEFAULT_MTN_API_USER, DEFAULT_MTN_API_KEY)}
    if subscription_key is not None:
        headers["Ocp-Apim-Subscription-Key"] = subscription_key

    response = await sim.http.post("/collection/token/", headers=headers)

    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 401
    assert "subscription key" in body["message"]
    if subscription_key is not None:
        assert body["message"] == INVALID_KEY_MESSAGE


async def test_token_refuses_a_body(sim: SimulatorClient) -> None:
    response = await sim.http.post(
        "/collection/token/",
        headers={
            "Authorization": basic(DEFAULT_MTN_API_USER, DEFAULT_MTN_API_KEY),
            "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
        },
        json={"grant_type": "client_credentials"},
    )

    assert response.status_code == 400


async def test_token_path_without_its_trailing_slash_is_not_found(sim: SimulatorClient) -> None:
    response = await sim.http.post(
        "/collection/token",
        headers={
            "Authorization": basic(DEFAULT_MTN_API_USER, DEFAULT_MTN_API_KEY),
            "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
        },
    )

    assert response.status_code == 404


async def test_revoked_token_is_refused(sim: SimulatorClient) -> None:
    headers = await sim.mtn_headers()
    assert (await sim.http.get("/collection/v1_0/account/balance", headers=headers)).is_success

    revoked = await sim.http.post("/_simulator/tokens/revoke", params={"provider": "mtn_momo"})
    response = await sim.http.get("/collection/v1_0/account/balance", headers=headers)

    assert revoked.json() == {"revoked": 1}
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401


# --- request to pay --------------------------------------------------------------------------


async def test_request_to_pay_is_accepted_then_succeeds(sim: SimulatorClient) -> None:
    reference = new_reference()

    created = await sim.request_to_pay(reference, amount="5000")

    assert created.status_code == 202
    assert created.content == b""
    first = (await sim.mtn_status(reference)).json()
    assert first["status"] == "PENDING"
    assert "financialTransactionId" not in first
    final = await sim.mtn_final_status(reference)
    assert final["status"] == "SUCCESSFUL"
    assert final["financialTransactionId"].isdigit()
    assert final["amount"] == "5000"
    assert final["currency"] == "UGX"
    assert final["externalId"] == "ORD-1001"
    assert final["payer"] == {"partyIdType": "MSISDN", "partyId": "256772123456"}
    assert "reason" not in final
    assert "referenceId" not in final


async def test_reused_reference_is_409_and_charged_once(sim: SimulatorClient) -> None:
    reference = new_reference()
    assert (await sim.request_to_pay(reference)).status_code == 202

    again = await sim.request_to_pay(reference)

    assert again.status_code == 409
    assert again.json() == {
        "code": "RESOURCE_ALREADY_EXIST",
        "message": "Duplicated reference id. Creation of resource failed.",
    }
    payment = await sim.payment(reference)
    assert payment["create_requests"] == 2
    assert payment["charges"] == 1
    assert len((await sim.ledger())["payments"]) == 1


async def test_concurrent_creates_with_one_reference_charge_once(sim: SimulatorClient) -> None:
    reference = new_reference()
    await sim.mtn_token()

    responses = await asyncio.gather(*(sim.request_to_pay(reference) for _ in range(20)))

    assert sorted(r.status_code for r in responses) == [202] + [409] * 19
    payment = await sim.payment(reference)
    assert payment["create_requests"] == 20
    assert payment["charges"] == 1


async def test_unknown_reference_is_404(sim: SimulatorClient) -> None:
    response = await sim.mtn_status(new_reference())

    assert response.status_code == 404
    assert response.json() == {
        "code": "RESOURCE_NOT_FOUND",
        "message": "Requested resource was not found.",
    }


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"amount": 5000}, "amount must be a string"),
        ({"amount": "12.34567"}, "more decimals than MTN's pattern allows"),
        ({"amount": "-5"}, "negative"),
        ({"amount": "05"}, "leading zero"),
        ({"payerMessage": "Bob's order"}, "apostrophe"),
        ({"payeeNote": "fish & chips"}, "ampersand"),
        ({"payerMessage": "x" * 161}, "over 160 characters"),
        ({"payer": {"partyIdType": "PHONE", "partyId": "256772123456"}}, "unknown party type"),
        ({"payer": {"partyIdType": "MSISDN", "partyId": "+256772123456"}}, "msisdn not digits"),
    ],
)
async def test_invalid_bodies_are_400(
    sim: SimulatorClient, overrides: dict[str, object], why: str
) -> None:
    reference = new_reference()

    response = await sim.request_to_pay(reference, **overrides)  # type: ignore[arg-type]

    assert response.status_code == 400, why
    assert (await sim.mtn_status(reference)).status_code == 404


async def test_reference_must_be_a_uuid(sim: SimulatorClient) -> None:
    response = await sim.request_to_pay("order-1001")

    assert response.status_code == 400


async def test_wrong_target_environment_is_refused(sim: SimulatorClient) -> None:
    reference = new_reference()
    headers = await sim.mtn_headers(
        **{"X-Reference-Id": reference, "X-Target-Environment": "mtnuganda"}
    )

    response = await sim.http.post(
        "/collection/v1_0/requesttopay",
        headers=headers,
        json={
            "amount": "5000",
            "currency": "UGX",
            "externalId": "x",
            "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
        },
    )

    assert response.status_code == 500
    assert response.json()["code"] == "NOT_ALLOWED_TARGET_ENVIRONMENT"


async def test_unsupported_currency_is_refused_and_not_charged(sim: SimulatorClient) -> None:
    reference = new_reference()

    response = await sim.request_to_pay(reference, currency="GHS")

    assert response.status_code == 500
    assert response.json()["code"] == "INVALID_CURRENCY"
    assert (await sim.ledger())["payments"] == []


async def test_bearer_token_is_required(sim: SimulatorClient) -> None:
    headers = await sim.mtn_headers(**{"Authorization": "Bearer made-up"})

    response = await sim.http.get(
        f"/collection/v1_0/requesttopay/{new_reference()}", headers=headers
    )

    assert response.status_code == 401


async def test_reason_can_be_sent_in_the_old_object_form(sim: SimulatorClient) -> None:
    await sim.configure(mtn_reason_format="object")
    reference = new_reference()
    await sim.request_to_pay(reference, payer="46733123451")

    final = await sim.mtn_final_status(reference)

    assert final["status"] == "FAILED"
    assert final["reason"]["code"] == "APPROVAL_REJECTED"
    assert final["reason"]["message"]


# --- callbacks -------------------------------------------------------------------------------


async def test_callback_is_a_put_to_the_exact_url_without_reference(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    reference = new_reference()
    callback_url = f"{receiver.base_url}/api/webhooks/mtn-momo/{reference}/tOk3n_-x?src=mtn"

    assert (await sim.request_to_pay(reference, callback_url=callback_url)).status_code == 202

    [callback] = await receiver.wait_for(1)
    assert callback.method == "PUT"
    assert callback.url == callback_url
    assert callback.headers["content-type"] == "application/json"
    body = callback.json()
    assert "referenceId" not in body
    assert body["status"] == "SUCCESSFUL"
    assert body["externalId"] == "ORD-1001"
    assert body["amount"] == "5000"
    assert body["currency"] == "UGX"
    assert body["payer"] == {"partyIdType": "MSISDN", "partyId": "256772123456"}
    assert body["payerMessage"] == "Order ORD-1001"
    assert body["payeeNote"] == "Order ORD-1001"
    assert (
        body["financialTransactionId"]
        == (await sim.mtn_status(reference)).json()["financialTransactionId"]
    )


async def test_failed_callback_carries_the_reason_and_can_be_a_post(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    await sim.configure(mtn_callback_method="POST")
    reference = new_reference()

    await sim.request_to_pay(
        reference, payer="256772000452", callback_url=f"{receiver.base_url}/cb"
    )

    [callback] = await receiver.wait_for(1)
    assert callback.method == "POST"
    body = callback.json()
    assert body["status"] == "FAILED"
    assert body["reason"] == "EXPIRED"
    assert "financialTransactionId" not in body


async def test_callback_failures_are_recorded_and_retried_as_configured(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    await sim.configure(callback_retries=2, callback_retry_delay_seconds=0.01)
    receiver.status_code = 500
    reference = new_reference()

    await sim.request_to_pay(reference, callback_url=f"{receiver.base_url}/cb")

    await receiver.wait_for(3)

    async def logged() -> list[dict[str, object]] | None:
        response = await sim.http.get("/_simulator/callbacks", params={"reference": reference})
        attempts: list[dict[str, object]] = response.json()["callbacks"]
        return attempts if len(attempts) == 3 else None

    attempts = await eventually(logged)
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["status_code"] == 500 and not a["delivered"] for a in attempts)
    assert (await sim.mtn_status(reference)).json()["status"] == "SUCCESSFUL"


async def test_callback_waits_for_the_callback_delay(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    await sim.configure(callback_delay_seconds=0.3)
    reference = new_reference()
    started = time.monotonic()

    await sim.request_to_pay(reference, callback_url=f"{receiver.base_url}/cb")
    await sim.mtn_final_status(reference)
    assert receiver.received == []

    await receiver.wait_for(1)
    assert time.monotonic() - started >= 0.3


async def test_no_callback_when_callbacks_are_off(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    await sim.configure(callbacks_enabled=False)
    reference = new_reference()

    await sim.request_to_pay(reference, callback_url=f"{receiver.base_url}/cb")
    await sim.mtn_final_status(reference)
    # A second payment's callback would have arrived after the first one's, had either been sent.
    await sim.configure(callbacks_enabled=True)
    second = new_reference()
    await sim.request_to_pay(second, callback_url=f"{receiver.base_url}/second")

    [only] = await receiver.wait_for(1)
    assert only.url.endswith("/second")


# --- account holder and balance --------------------------------------------------------------


@pytest.mark.parametrize(
    ("msisdn", "active"),
    [("256772123456", True), ("46733123455", False), ("256772000455", False)],
)
async def test_account_holder_active(sim: SimulatorClient, msisdn: str, active: bool) -> None:
    response = await sim.http.get(
        f"/collection/v1_0/accountholder/msisdn/{msisdn}/active", headers=await sim.mtn_headers()
    )

    assert response.status_code == 200
    assert response.json() == {"result": active}


async def test_balance_counts_successful_payments(sim: SimulatorClient) -> None:
    await sim.configure(mtn_opening_balance="1000")
    paid, failed = new_reference(), new_reference()
    await sim.request_to_pay(paid, amount="5000")
    await sim.request_to_pay(failed, amount="7000", payer="256772000451")
    await sim.mtn_final_status(paid)
    await sim.mtn_final_status(failed)

    response = await sim.http.get(
        "/collection/v1_0/account/balance", headers=await sim.mtn_headers()
    )

    assert response.json() == {"availableBalance": "6000", "currency": "UGX"}
