"""Refunds over HTTP: MTN Disbursement (token, refund v1/v2, status, callbacks, balance) and
Airtel's full, once-only refund, with faults and the ledger's evidence."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.simulator import (
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_DISBURSEMENT_API_KEY,
    DEFAULT_MTN_DISBURSEMENT_API_USER,
    DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
)
from tests.simulator.conftest import (
    CallbackReceiver,
    SimulatorClient,
    basic,
    eventually,
    new_reference,
)

NOT_FOUND = {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}
DUPLICATE = {
    "code": "RESOURCE_ALREADY_EXIST",
    "message": "Duplicated reference id. Creation of resource failed.",
}


# --- helpers ---------------------------------------------------------------------------------


async def disbursement_token(
    sim: SimulatorClient,
    user: str = DEFAULT_MTN_DISBURSEMENT_API_USER,
    key: str = DEFAULT_MTN_DISBURSEMENT_API_KEY,
    subscription_key: str = DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
) -> httpx.Response:
    return await sim.http.post(
        "/disbursement/token/",
        headers={"Authorization": basic(user, key), "Ocp-Apim-Subscription-Key": subscription_key},
    )


async def disbursement_headers(sim: SimulatorClient, **extra: str) -> dict[str, str]:
    token = await disbursement_token(sim)
    assert token.status_code == 200, token.text
    return {
        "Authorization": f"Bearer {token.json()['access_token']}",
        "Ocp-Apim-Subscription-Key": DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
        "X-Target-Environment": "sandbox",
        **extra,
    }


async def mtn_refund(
    sim: SimulatorClient,
    payment_reference: str,
    *,
    reference: str | None = None,
    amount: str = "5000",
    currency: str = "UGX",
    version: str = "v2_0",
    callback_url: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    **body: Any,
) -> httpx.Response:
    extra = {"X-Reference-Id": reference or new_reference()}
    if callback_url is not None:
        extra["X-Callback-Url"] = callback_url
    payload = {
        "amount": amount,
        "currency": currency,
        "externalId": "RF-1001",
        "payerMessage": "Refund for ORD-1001",
        "payeeNote": "Item out of stock",
        "referenceIdToRefund": payment_reference,
        **body,
    }
    return await sim.http.post(
        f"/disbursement/{version}/refund",
        headers={**(headers or await disbursement_headers(sim)), **extra},
        json=payload,
        timeout=timeout or sim.http.timeout,
    )


async def refund_status(sim: SimulatorClient, reference: str) -> httpx.Response:
    return await sim.http.get(
        f"/disbursement/v1_0/refund/{reference}", headers=await disbursement_headers(sim)
    )


async def final_refund_status(sim: SimulatorClient, reference: str) -> dict[str, Any]:
    async def final() -> dict[str, Any] | None:
        body: dict[str, Any] = (await refund_status(sim, reference)).json()
        return body if body["status"] != "PENDING" else None

    return await eventually(final)


async def paid_mtn_payment(
    sim: SimulatorClient, amount: str = "5000", currency: str = "UGX"
) -> str:
    reference = new_reference()
    created = await sim.request_to_pay(reference, amount=amount, currency=currency)
    assert created.status_code == 202
    assert (await sim.mtn_final_status(reference))["status"] == "SUCCESSFUL"
    return reference


async def refund_evidence(sim: SimulatorClient, reference: str) -> dict[str, Any]:
    response = await sim.http.get(f"/_simulator/refunds/{reference}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def disbursement_balance(sim: SimulatorClient, currency: str = "UGX") -> str:
    response = await sim.http.get(
        f"/disbursement/v1_0/account/balance/{currency}", headers=await disbursement_headers(sim)
    )
    assert response.status_code == 200
    balance: str = response.json()["availableBalance"]
    return balance


async def set_balance(sim: SimulatorClient, currency: str, amount: str) -> dict[str, Any]:
    response = await sim.http.post(
        "/_simulator/disbursement/balance",
        json={"currency": currency, "available_balance": amount},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- MTN: token and credentials --------------------------------------------------------------


async def test_disbursement_token_with_default_credentials(sim: SimulatorClient) -> None:
    response = await disbursement_token(sim)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "access_token"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 32


@pytest.mark.parametrize(
    ("user", "key", "subscription_key", "status_code"),
    [
        (DEFAULT_MTN_API_USER, DEFAULT_MTN_API_KEY, DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY, 401),
        (
            DEFAULT_MTN_DISBURSEMENT_API_USER,
            DEFAULT_MTN_DISBURSEMENT_API_KEY,
            DEFAULT_MTN_SUBSCRIPTION_KEY,
            401,
        ),
        (
            DEFAULT_MTN_DISBURSEMENT_API_USER,
            "not-the-key",
            DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
            401,
        ),
    ],
    ids=["collection-pair", "collection-subscription-key", "wrong-key"],
)
async def test_disbursement_token_takes_only_disbursement_credentials(
    sim: SimulatorClient, user: str, key: str, subscription_key: str, status_code: int
) -> None:
    response = await disbursement_token(sim, user, key, subscription_key)

    assert response.status_code == status_code


async def test_tokens_do_not_cross_products(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim)
    collection_token = await sim.mtn_token()
    disbursement = await disbursement_headers(sim)

    refund_with_collection_token = await mtn_refund(
        sim, payment, headers={**disbursement, "Authorization": f"Bearer {collection_token}"}
    )
    status_with_disbursement_token = await sim.http.get(
        f"/collection/v1_0/requesttopay/{payment}",
        headers={**await sim.mtn_headers(), "Authorization": disbursement["Authorization"]},
    )

    assert refund_with_collection_token.status_code == 401
    assert status_with_disbursement_token.status_code == 401
    assert (await sim.http.get("/_simulator/refunds")).json()["refunds"] == []


async def test_refund_needs_the_disbursement_subscription_key(sim: SimulatorClient) -> None:
    headers = {
        **await disbursement_headers(sim),
        "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
    }

    response = await mtn_refund(sim, new_reference(), headers=headers)

    assert response.status_code == 401
    assert response.json()["statusCode"] == 401


async def test_a_provisioned_sandbox_user_gets_disbursement_tokens(sim: SimulatorClient) -> None:
    user = new_reference()
    subscription = {"Ocp-Apim-Subscription-Key": DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY}
    created = await sim.http.post(
        "/v1_0/apiuser",
        headers={**subscription, "X-Reference-Id": user},
        json={"providerCallbackHost": "shop.example.ug"},
    )
    key = (await sim.http.post(f"/v1_0/apiuser/{user}/apikey", headers=subscription)).json()

    token = await disbursement_token(sim, user, key["apiKey"])

    assert created.status_code == 201
    assert token.status_code == 200
    payment = await paid_mtn_payment(sim)
    headers = {
        **subscription,
        "Authorization": f"Bearer {token.json()['access_token']}",
        "X-Target-Environment": "sandbox",
    }
    elsewhere = await mtn_refund(
        sim, payment, headers=headers, callback_url="http://attacker.example/cb"
    )
    assert elsewhere.status_code == 500
    assert elsewhere.json()["code"] == "INVALID_CALLBACK_URL_HOST"


# --- MTN: refund, status, callbacks ----------------------------------------------------------


async def test_refund_is_accepted_then_succeeds(sim: SimulatorClient) -> None:
    await sim.configure(refund_delay_seconds=0.5)
    payment = await paid_mtn_payment(sim, amount="5000")
    reference = new_reference()

    created = await mtn_refund(sim, payment, reference=reference, amount="5000")

    assert created.status_code == 202
    assert created.content == b""
    first = (await refund_status(sim, reference)).json()
    assert first["status"] == "PENDING"
    assert "financialTransactionId" not in first
    final = await final_refund_status(sim, reference)
    assert final == {
        "financialTransactionId": final["financialTransactionId"],
        "externalId": "RF-1001",
        "amount": "5000",
        "currency": "UGX",
        "payee": {"partyIdType": "MSISDN", "partyId": "256772123456"},
        "payerMessage": "Refund for ORD-1001",
        "payeeNote": "Item out of stock",
        "status": "SUCCESSFUL",
    }
    assert final["financialTransactionId"].isdigit()


async def test_unknown_refund_reference_is_404(sim: SimulatorClient) -> None:
    response = await refund_status(sim, new_reference())

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(("version", "method"), [("v2_0", "PUT"), ("v1_0", "POST")])
async def test_refund_callback_verb_follows_the_version(
    sim: SimulatorClient, receiver: CallbackReceiver, version: str, method: str
) -> None:
    payment = await paid_mtn_payment(sim)
    reference = new_reference()
    url = f"{receiver.base_url}/api/webhooks/mtn-momo/refunds/{reference}/t0k3n"

    created = await mtn_refund(
        sim, payment, reference=reference, amount="1500", version=version, callback_url=url
    )

    assert created.status_code == 202
    [callback] = await receiver.wait_for(1)
    assert callback.method == method
    assert callback.url == url
    assert callback.headers["content-type"] == "application/json"
    assert callback.json() == (await refund_status(sim, reference)).json()
    assert callback.json()["status"] == "SUCCESSFUL"
    logged = (await sim.http.get("/_simulator/callbacks", params={"reference": reference})).json()
    assert [c["kind"] for c in logged["callbacks"]] == ["refund"]


async def test_failed_refund_callback_carries_the_reason(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")

    await mtn_refund(sim, payment, amount="6000", callback_url=f"{receiver.base_url}/cb")

    [callback] = await receiver.wait_for(1)
    body = callback.json()
    assert body["status"] == "FAILED"
    assert body["reason"] == "NOT_ALLOWED"
    assert "financialTransactionId" not in body


async def test_reused_reference_is_409_and_paid_once(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    reference = new_reference()
    assert (await mtn_refund(sim, payment, reference=reference, amount="1000")).status_code == 202

    again = await mtn_refund(sim, payment, reference=reference, amount="1000")

    assert again.status_code == 409
    assert again.json() == DUPLICATE
    assert (await final_refund_status(sim, reference))["status"] == "SUCCESSFUL"
    evidence = await refund_evidence(sim, reference)
    assert evidence["create_requests"] == 2
    assert evidence["payouts"] == 1
    assert (await sim.payment(payment))["amount_refunded"] == "1000"


async def test_concurrent_refunds_with_one_reference_pay_once(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    reference = new_reference()
    headers = await disbursement_headers(sim)

    responses = await asyncio.gather(
        *(
            mtn_refund(sim, payment, reference=reference, amount="100", headers=headers)
            for _ in range(20)
        )
    )

    assert sorted(r.status_code for r in responses) == [202] + [409] * 19
    await final_refund_status(sim, reference)
    evidence = await refund_evidence(sim, reference)
    assert evidence["create_requests"] == 20
    assert evidence["payouts"] == 1


async def test_partial_refunds_until_the_payment_is_used_up(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    first, second, third = new_reference(), new_reference(), new_reference()

    await mtn_refund(sim, payment, reference=first, amount="2000")
    await mtn_refund(sim, payment, reference=second, amount="3000")
    await mtn_refund(sim, payment, reference=third, amount="1")

    assert (await final_refund_status(sim, first))["status"] == "SUCCESSFUL"
    assert (await final_refund_status(sim, second))["status"] == "SUCCESSFUL"
    over = await final_refund_status(sim, third)
    assert over["status"] == "FAILED"
    assert over["reason"] == "NOT_ALLOWED"
    described = await sim.payment(payment)
    assert described["amount_refunded"] == "5000"
    assert sorted(described["refunds"]) == sorted([first, second, third])


async def test_over_refund_fails_not_allowed_and_moves_no_money(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    before = await disbursement_balance(sim)
    reference = new_reference()

    created = await mtn_refund(sim, payment, reference=reference, amount="5000.50")

    assert created.status_code == 202
    final = await final_refund_status(sim, reference)
    assert final["status"] == "FAILED"
    assert final["reason"] == "NOT_ALLOWED"
    assert await disbursement_balance(sim) == before
    assert (await refund_evidence(sim, reference))["payouts"] == 0
    assert (await sim.payment(payment))["amount_refunded"] == "0"


async def test_concurrent_partial_refunds_never_exceed_the_payment(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    headers = await disbursement_headers(sim)
    references = [new_reference() for _ in range(10)]

    await asyncio.gather(
        *(mtn_refund(sim, payment, reference=r, amount="1000", headers=headers) for r in references)
    )

    finals = [await final_refund_status(sim, r) for r in references]
    assert sorted(f["status"] for f in finals) == ["FAILED"] * 5 + ["SUCCESSFUL"] * 5
    assert (await sim.payment(payment))["amount_refunded"] == "5000"


@pytest.mark.parametrize(
    ("payer", "why"),
    [("256772000451", "payment rejected"), ("256772000499", "payment still pending")],
)
async def test_refund_of_an_unpaid_payment_fails_not_allowed(
    sim: SimulatorClient, payer: str, why: str
) -> None:
    payment = new_reference()
    await sim.request_to_pay(payment, payer=payer, amount="5000")
    if payer.endswith("451"):
        await sim.mtn_final_status(payment)
    reference = new_reference()

    assert (await mtn_refund(sim, payment, reference=reference, amount="100")).status_code == 202

    final = await final_refund_status(sim, reference)
    assert final["status"] == "FAILED", why
    assert final["reason"] == "NOT_ALLOWED"


async def test_refund_in_another_currency_than_the_payment_fails(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000", currency="UGX")
    reference = new_reference()

    await mtn_refund(sim, payment, reference=reference, amount="10", currency="EUR")

    assert (await final_refund_status(sim, reference))["reason"] == "NOT_ALLOWED"


async def test_refund_of_an_unknown_payment_fails_payee_not_found(sim: SimulatorClient) -> None:
    reference = new_reference()

    created = await mtn_refund(sim, new_reference(), reference=reference)

    assert created.status_code == 202
    final = await final_refund_status(sim, reference)
    assert final["status"] == "FAILED"
    assert final["reason"] == "PAYEE_NOT_FOUND"
    assert "payee" not in final


async def test_refund_reason_can_be_an_object(sim: SimulatorClient) -> None:
    await sim.configure(mtn_reason_format="object")
    reference = new_reference()

    await mtn_refund(sim, new_reference(), reference=reference)

    reason = (await final_refund_status(sim, reference))["reason"]
    assert reason == {"code": "PAYEE_NOT_FOUND", "message": "Payee not found"}


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"amount": 5000}, "amount must be a string"),
        ({"amount": "12.34567"}, "more decimals than MTN's pattern allows"),
        ({"amount": "-5"}, "negative"),
        ({"payerMessage": "Bob's refund"}, "apostrophe"),
        ({"payeeNote": "fish & chips"}, "ampersand"),
        ({"payeeNote": "x" * 161}, "over 160 characters"),
        ({"referenceIdToRefund": ""}, "empty reference to refund"),
        ({"currency": "ugx"}, "currency not an ISO code"),
    ],
)
async def test_invalid_refund_bodies_are_400(
    sim: SimulatorClient, overrides: dict[str, object], why: str
) -> None:
    payment = await paid_mtn_payment(sim)
    reference = new_reference()

    response = await mtn_refund(sim, payment, reference=reference, **overrides)

    assert response.status_code == 400, why
    assert (await refund_status(sim, reference)).status_code == 404


async def test_refund_without_reference_to_refund_is_400(sim: SimulatorClient) -> None:
    response = await sim.http.post(
        "/disbursement/v2_0/refund",
        headers=await disbursement_headers(sim, **{"X-Reference-Id": new_reference()}),
        json={"amount": "100", "currency": "UGX", "externalId": "1"},
    )

    assert response.status_code == 400


@pytest.mark.parametrize(
    "reference",
    ["refund-1001", "5f7c2a9e-3b1d-1e8f-9a6c-0d2b4e6f8a10"],
    ids=["not-a-uuid", "uuid-version-1"],
)
async def test_refund_reference_must_be_a_uuid4(sim: SimulatorClient, reference: str) -> None:
    response = await mtn_refund(sim, new_reference(), reference=reference)

    assert response.status_code == 400


async def test_unsupported_currency_is_refused_at_once(sim: SimulatorClient) -> None:
    response = await mtn_refund(sim, new_reference(), currency="GHS")

    assert response.status_code == 500
    assert response.json()["code"] == "INVALID_CURRENCY"
    assert (await sim.http.get("/_simulator/refunds")).json()["refunds"] == []


# --- MTN: disbursement balance ----------------------------------------------------------------


async def test_successful_refund_debits_the_balance(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    reference = new_reference()

    await mtn_refund(sim, payment, reference=reference, amount="1200")
    await final_refund_status(sim, reference)

    response = await sim.http.get(
        "/disbursement/v1_0/account/balance", headers=await disbursement_headers(sim)
    )
    assert response.json() == {"availableBalance": "999998800", "currency": "UGX"}
    assert await disbursement_balance(sim, "EUR") == "1000000000"
    control = (await sim.http.get("/_simulator/disbursement/balance")).json()
    assert control == {"balances": {"EUR": "1000000000", "UGX": "999998800"}}


async def test_short_balance_fails_not_enough_funds_and_keeps_the_balance(
    sim: SimulatorClient,
) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    assert await set_balance(sim, "UGX", "999") == {"balances": {"EUR": "1000000000", "UGX": "999"}}
    reference = new_reference()

    created = await mtn_refund(sim, payment, reference=reference, amount="1000")

    assert created.status_code == 202
    final = await final_refund_status(sim, reference)
    assert final["status"] == "FAILED"
    assert final["reason"] == "NOT_ENOUGH_FUNDS"
    assert await disbursement_balance(sim) == "999"
    assert (await refund_evidence(sim, reference))["payouts"] == 0
    # The failed refund holds nothing back: the whole payment can still be refunded.
    await set_balance(sim, "UGX", "5000")
    retry = new_reference()
    await mtn_refund(sim, payment, reference=retry, amount="5000")
    assert (await final_refund_status(sim, retry))["status"] == "SUCCESSFUL"
    assert await disbursement_balance(sim) == "0"


async def test_short_balance_can_be_internal_processing_error(sim: SimulatorClient) -> None:
    await sim.configure(mtn_short_balance_reason="INTERNAL_PROCESSING_ERROR")
    payment = await paid_mtn_payment(sim)
    await set_balance(sim, "UGX", "0")
    reference = new_reference()

    await mtn_refund(sim, payment, reference=reference, amount="10")

    assert (await final_refund_status(sim, reference))["reason"] == "INTERNAL_PROCESSING_ERROR"


async def test_short_balance_can_be_refused_at_once(sim: SimulatorClient) -> None:
    await sim.configure(mtn_short_balance_answer="refused")
    payment = await paid_mtn_payment(sim)
    await set_balance(sim, "UGX", "10")
    reference = new_reference()

    response = await mtn_refund(sim, payment, reference=reference, amount="11")

    assert response.status_code == 500
    assert response.json() == {
        "code": "NOT_ENOUGH_FUNDS",
        "message": "The payer does not have enough funds.",
    }
    assert (await refund_status(sim, reference)).status_code == 404
    [unaccepted] = (await sim.http.get("/_simulator/refunds")).json()["unaccepted"]
    assert unaccepted["reference"] == reference
    assert unaccepted["last_http_status"] == 500


@pytest.mark.parametrize(
    "body",
    [
        {"currency": "UGX", "available_balance": "-1"},
        {"currency": "shillings", "available_balance": "1"},
        {"currency": "UGX"},
    ],
)
async def test_bad_balance_is_refused(sim: SimulatorClient, body: dict[str, str]) -> None:
    response = await sim.http.post("/_simulator/disbursement/balance", json=body)

    assert response.status_code == 422


async def test_reset_restores_the_opening_balance(sim: SimulatorClient) -> None:
    await set_balance(sim, "UGX", "1")

    await sim.http.post("/_simulator/reset")

    assert await disbursement_balance(sim) == "1000000000"


# --- MTN: forced outcomes ---------------------------------------------------------------------


async def test_a_refund_can_be_held_pending_then_forced(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    await sim.configure(refund_delay_seconds=3600)
    payment = await paid_mtn_payment(sim, amount="5000")
    reference = new_reference()
    await mtn_refund(
        sim, payment, reference=reference, amount="5000", callback_url=f"{receiver.base_url}/cb"
    )
    assert (await refund_status(sim, reference)).json()["status"] == "PENDING"

    forced = await sim.http.post(
        f"/_simulator/refunds/{reference}/settle", json={"status": "SUCCESSFUL", "amount": "4000"}
    )

    assert forced.status_code == 200
    assert forced.json()["payouts"] == 1
    status = (await refund_status(sim, reference)).json()
    assert status["status"] == "SUCCESSFUL"
    assert status["amount"] == "4000"
    [callback] = await receiver.wait_for(1)
    assert callback.json()["amount"] == "4000"
    assert await disbursement_balance(sim) == "999995000"  # what was asked for was paid

    again = await sim.http.post(
        f"/_simulator/refunds/{reference}/settle",
        json={"status": "FAILED", "reason": "INTERNAL_PROCESSING_ERROR", "callback": False},
    )
    assert again.json()["payouts"] == 1  # a later report does not take the money back
    assert (await refund_status(sim, reference)).json()["reason"] == "INTERNAL_PROCESSING_ERROR"


async def test_forcing_an_unknown_refund_is_404(sim: SimulatorClient) -> None:
    response = await sim.http.post(
        f"/_simulator/refunds/{new_reference()}/settle", json={"status": "SUCCESSFUL"}
    )

    assert response.status_code == 404


# --- MTN: faults ------------------------------------------------------------------------------


async def test_injected_error_refunds_nothing_and_a_retry_is_accepted(
    sim: SimulatorClient,
) -> None:
    payment = await paid_mtn_payment(sim)
    headers = await disbursement_headers(sim)
    await sim.configure(endpoint_faults={"mtn.refund": {"error_rate": 1, "error_status": 503}})
    reference = new_reference()

    failed = await mtn_refund(sim, payment, reference=reference, headers=headers)

    assert failed.status_code == 503
    assert failed.json()["code"] == "SERVICE_UNAVAILABLE"
    ledger = (await sim.http.get("/_simulator/refunds")).json()
    assert ledger["refunds"] == []
    assert ledger["unaccepted"][0]["create_requests"] == 1

    await sim.configure(endpoint_faults={"mtn.refund": None})
    assert (await mtn_refund(sim, payment, reference=reference)).status_code == 202
    await final_refund_status(sim, reference)
    evidence = await refund_evidence(sim, reference)
    assert evidence["create_requests"] == 2
    assert evidence["payouts"] == 1


async def test_timeout_after_processing_then_a_retry_meets_409_and_pays_once(
    sim: SimulatorClient,
) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    headers = await disbursement_headers(sim)
    await sim.configure(endpoint_faults={"mtn.refund": {"timeout_after_processing_rate": 1}})
    reference = new_reference()

    with pytest.raises(httpx.ReadTimeout):
        await mtn_refund(sim, payment, reference=reference, headers=headers, timeout=0.3)

    await sim.configure(endpoint_faults={"mtn.refund": None})
    retried = await mtn_refund(sim, payment, reference=reference, headers=headers)
    assert retried.status_code == 409
    assert (await final_refund_status(sim, reference))["status"] == "SUCCESSFUL"
    evidence = await refund_evidence(sim, reference)
    assert evidence["create_requests"] == 2
    assert evidence["payouts"] == 1
    assert await disbursement_balance(sim) == "999995000"


async def test_faults_on_refund_status_and_latency(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim)
    reference = new_reference()
    await mtn_refund(sim, payment, reference=reference)
    headers = await disbursement_headers(sim)
    await sim.configure(
        endpoint_faults={
            "mtn.refund_status": {"error_rate": 1, "error_status": 500},
            "mtn.disbursement_token": {"rate_limit_rate": 1},
        }
    )

    status = await sim.http.get(f"/disbursement/v1_0/refund/{reference}", headers=headers)
    token = await disbursement_token(sim)

    assert status.status_code == 500
    assert status.json()["code"] == "INTERNAL_PROCESSING_ERROR"
    assert token.status_code == 429
    stats = (await sim.stats())["endpoints"]
    assert stats["mtn.refund_status"]["faults"] == {"error": 1}
    assert stats["mtn.refund"]["responses"] == {"202": 1}


# --- Airtel ---------------------------------------------------------------------------------


async def airtel_refund(
    sim: SimulatorClient, body: Any, *, timeout: float | None = None
) -> httpx.Response:
    return await sim.http.post(
        "/standard/v1/payments/refund",
        headers=await sim.airtel_headers(),
        json=body,
        timeout=timeout or sim.http.timeout,
    )


async def paid_airtel_collection(sim: SimulatorClient, transaction_id: str) -> str:
    """The airtel_money_id of a successful collection."""
    assert (await sim.airtel_push(transaction_id, amount=25000)).status_code == 200
    final = await sim.airtel_final_status(transaction_id)
    assert final["data"]["transaction"]["status"] == "TS"
    airtel_money_id: str = final["data"]["transaction"]["airtel_money_id"]
    return airtel_money_id


def refund_of(airtel_money_id: str) -> dict[str, Any]:
    return {"transaction": {"airtel_money_id": airtel_money_id}}


ALREADY_REFUNDED = {
    "data": {},
    "status": {
        "code": "200",
        "message": "Refund already processed for this transaction",
        "result_code": "ESB000041",
        "response_code": "DP00800001009",
        "success": False,
    },
}


async def test_airtel_refund_refunds_the_whole_collection(sim: SimulatorClient) -> None:
    airtel_money_id = await paid_airtel_collection(sim, "RFND1")

    response = await airtel_refund(sim, refund_of(airtel_money_id))

    assert response.status_code == 200
    assert response.json() == {
        "data": {"transaction": {"airtel_money_id": airtel_money_id, "status": "SUCCESS"}},
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": "DP00800001001",
            "success": True,
        },
    }
    evidence = await refund_evidence(sim, airtel_money_id)
    assert evidence["provider"] == "airtel_money"
    assert evidence["payment_reference"] == "RFND1"
    assert evidence["amount"] == "25000"
    assert evidence["status"] == "SUCCESSFUL"
    assert evidence["payouts"] == 1
    assert (await sim.payment("RFND1"))["amount_refunded"] == "25000"


async def test_airtel_refund_repeated_is_refused_and_pays_nothing_more(
    sim: SimulatorClient,
) -> None:
    airtel_money_id = await paid_airtel_collection(sim, "RFND2")
    assert (await airtel_refund(sim, refund_of(airtel_money_id))).json()["status"]["success"]

    again = await airtel_refund(sim, refund_of(airtel_money_id))

    assert again.status_code == 200
    assert again.json() == ALREADY_REFUNDED
    evidence = await refund_evidence(sim, airtel_money_id)
    assert evidence["create_requests"] == 2
    assert evidence["payouts"] == 1
    assert (await sim.payment("RFND2"))["amount_refunded"] == "25000"


async def test_airtel_concurrent_refunds_pay_once(sim: SimulatorClient) -> None:
    airtel_money_id = await paid_airtel_collection(sim, "RFND3")

    responses = await asyncio.gather(
        *(airtel_refund(sim, refund_of(airtel_money_id)) for _ in range(10))
    )

    outcomes = sorted(r.json()["status"]["success"] for r in responses)
    assert outcomes == [False] * 9 + [True]
    assert (await refund_evidence(sim, airtel_money_id))["payouts"] == 1


async def test_airtel_refund_of_an_unknown_id(sim: SimulatorClient) -> None:
    response = await airtel_refund(sim, refund_of("MP000000.0000.Z00000"))

    assert response.status_code == 200
    assert response.json() == {
        "data": {},
        "status": {
            "code": "200",
            "message": "Transaction not found",
            "result_code": "ESB000045",
            "response_code": "DP00800001025",
            "success": False,
        },
    }
    [unaccepted] = (await sim.http.get("/_simulator/refunds")).json()["unaccepted"]
    assert unaccepted["create_requests"] == 1


async def test_airtel_refund_of_a_failed_collection_is_not_honoured(
    sim: SimulatorClient,
) -> None:
    await sim.airtel_push("RFND4", msisdn="752000451")
    await sim.airtel_final_status("RFND4")
    # Airtel names a failed collection's id in its callback only.
    airtel_money_id = (await sim.payment("RFND4"))["transaction_id"]

    response = await airtel_refund(sim, refund_of(airtel_money_id))

    assert response.status_code == 200
    status = response.json()["status"]
    assert status["success"] is False
    assert status["response_code"] == "DP00800001009"
    assert status["message"] == "Do not honor"
    assert (await sim.http.get("/_simulator/refunds")).json()["refunds"] == []


@pytest.mark.parametrize(
    "body",
    [None, {}, {"transaction": {}}, {"transaction": {"airtel_money_id": 123}}, ["x"]],
    ids=["no-body", "empty", "no-id", "id-not-a-string", "a-list"],
)
async def test_airtel_malformed_refund_is_400(sim: SimulatorClient, body: Any) -> None:
    response = await airtel_refund(sim, body)

    assert response.status_code == 400
    assert response.json()["status"]["success"] is False


async def test_airtel_refund_checks_token_and_headers(sim: SimulatorClient) -> None:
    airtel_money_id = await paid_airtel_collection(sim, "RFND5")
    headers = await sim.airtel_headers()

    no_token = await sim.http.post(
        "/standard/v1/payments/refund",
        headers={**headers, "Authorization": "Bearer made-up"},
        json=refund_of(airtel_money_id),
    )
    no_country = await sim.http.post(
        "/standard/v1/payments/refund",
        headers={k: v for k, v in headers.items() if k != "X-Country"},
        json=refund_of(airtel_money_id),
    )

    assert no_token.status_code == 401
    assert no_country.status_code == 400
    assert (await sim.http.get("/_simulator/refunds")).json()["refunds"] == []


async def test_airtel_timeout_after_processing_never_refunds_twice(sim: SimulatorClient) -> None:
    airtel_money_id = await paid_airtel_collection(sim, "RFND6")
    await sim.configure(endpoint_faults={"airtel.refund": {"timeout_after_processing_rate": 1}})

    with pytest.raises(httpx.ReadTimeout):
        await airtel_refund(sim, refund_of(airtel_money_id), timeout=0.3)

    await sim.configure(endpoint_faults={"airtel.refund": None})
    retried = await airtel_refund(sim, refund_of(airtel_money_id))
    assert retried.json() == ALREADY_REFUNDED
    evidence = await refund_evidence(sim, airtel_money_id)
    assert evidence["create_requests"] == 2
    assert evidence["payouts"] == 1


async def test_airtel_injected_error_refunds_nothing(sim: SimulatorClient) -> None:
    airtel_money_id = await paid_airtel_collection(sim, "RFND7")
    await sim.configure(endpoint_faults={"airtel.refund": {"error_rate": 1, "error_status": 500}})

    failed = await airtel_refund(sim, refund_of(airtel_money_id))

    assert failed.status_code == 500
    assert failed.json()["status"]["code"] == "500"
    await sim.configure(endpoint_faults={"airtel.refund": None})
    assert (await airtel_refund(sim, refund_of(airtel_money_id))).json()["status"]["success"]
    assert (await refund_evidence(sim, airtel_money_id))["payouts"] == 1


async def test_airtel_refund_under_a_path_prefix(start_simulator: Any) -> None:
    sim: SimulatorClient = await start_simulator(
        airtel_path_prefix="/openapi", approval_delay_seconds=0
    )
    airtel_money_id = await paid_airtel_collection(sim, "RFND8")

    response = await sim.http.post(
        "/openapi/standard/v1/payments/refund",
        headers=await sim.airtel_headers(),
        json=refund_of(airtel_money_id),
    )

    assert response.json()["status"]["success"] is True


# --- the ledger -----------------------------------------------------------------------------


async def test_ledger_and_stats_show_refunds(sim: SimulatorClient) -> None:
    payment = await paid_mtn_payment(sim, amount="5000")
    paid, refused = new_reference(), new_reference()
    await mtn_refund(sim, payment, reference=paid, amount="2000", version="v1_0")
    await mtn_refund(sim, payment, reference=refused, amount="9000")
    await final_refund_status(sim, paid)
    await final_refund_status(sim, refused)
    airtel_money_id = await paid_airtel_collection(sim, "RFND9")
    await airtel_refund(sim, refund_of(airtel_money_id))

    ledger = (await sim.http.get("/_simulator/refunds")).json()
    mtn_only = (await sim.http.get("/_simulator/refunds", params={"provider": "mtn_momo"})).json()
    stats = await sim.stats()
    payments = {p["reference"]: p for p in (await sim.ledger())["payments"]}

    by_reference = {r["reference"]: r for r in ledger["refunds"]}
    assert set(by_reference) == {paid, refused, airtel_money_id}
    assert {r["reference"] for r in mtn_only["refunds"]} == {paid, refused}
    assert by_reference[paid] | {"created_at": 0, "settled_at": 0} == {
        "provider": "mtn_momo",
        "reference": paid,
        "payment_reference": payment,
        "amount": "2000",
        "currency": "UGX",
        "payee_msisdn": "256772123456",
        "external_id": "RF-1001",
        "status": "SUCCESSFUL",
        "reason": None,
        "transaction_id": by_reference[paid]["transaction_id"],
        "api_version": "v1_0",
        "callback_url": None,
        "create_requests": 1,
        "last_create_status": 202,
        "payouts": 1,
        "reported_amount": None,
        "created_at": 0,
        "settled_at": 0,
    }
    assert by_reference[refused]["reason"] == "NOT_ALLOWED"
    assert by_reference[refused]["payouts"] == 0
    assert all(r["payouts"] <= 1 for r in ledger["refunds"])
    assert payments[payment]["amount_refunded"] == "2000"
    assert payments["RFND9"]["amount_refunded"] == "25000"
    assert stats["refunds"]["mtn_momo"] == {"PENDING": 0, "SUCCESSFUL": 1, "FAILED": 1}
    assert stats["refunds"]["airtel_money"] == {"PENDING": 0, "SUCCESSFUL": 1, "FAILED": 0}
    assert Decimal(await disbursement_balance(sim)) == Decimal(1_000_000_000) - 2000


async def test_reset_forgets_refunds(sim: SimulatorClient) -> None:
    await mtn_refund(sim, new_reference())

    await sim.http.post("/_simulator/reset")

    assert (await sim.http.get("/_simulator/refunds")).json() == {"refunds": [], "unaccepted": []}
