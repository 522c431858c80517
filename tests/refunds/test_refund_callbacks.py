"""MTN refund callbacks on their per-refund URL: token-bound, a hint only, verified by fetch."""

from __future__ import annotations

import json

from app.callback_tokens import callback_token
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.conftest import count_rows

SECRET = b"callback-token-secret"  # make_settings' CALLBACK_TOKEN_SECRET


def refund_callback_path(reference: str, token: str | None = None) -> str:
    token = token if token is not None else callback_token(SECRET, reference)
    return f"/api/webhooks/mtn-momo/refunds/{reference}/{token}"


def mtn_refund_body(amount: str, status: str = "SUCCESSFUL") -> bytes:
    return json.dumps(
        {
            "financialTransactionId": "5512361",
            "externalId": "ORD-R1",
            "amount": amount,
            "currency": "UGX",
            "payee": {"partyIdType": "MSISDN", "partyId": "256772123456"},
            "status": status,
        }
    ).encode()


async def pending_refund(client, auth, payments, amount="20000"):
    payment = await payments.successful(amount="50000")
    answer = await client.post(
        "/v1/refunds", json={"payment_id": payment["id"], "amount": amount}, headers=auth
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_refund_callback_settles_the_refund_on_the_providers_status(
    client, auth, runtime, payments, fake_refunds
):
    created = await pending_refund(client, auth, payments)
    mtn = fake_refunds[Provider.MTN_MOMO]
    mtn.status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=20000,
        currency="UGX",
        provider_transaction_id="5512361",
    )
    reply = await client.put(
        refund_callback_path(created["provider_reference"]), content=mtn_refund_body("20000")
    )
    assert reply.status_code == 200
    assert reply.json() == {"status": "success", "message": "Webhook processed"}
    refund = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert refund["status"] == "succeeded"
    assert mtn.status_calls == [created["provider_reference"]]  # verified by fetch
    recorded = await count_rows(
        runtime, "provider_callbacks", "refund_id = :r AND outcome = 'accepted'", r=created["id"]
    )
    assert recorded == 1
    again = await client.put(
        refund_callback_path(created["provider_reference"]), content=mtn_refund_body("20000")
    )
    assert again.json()["message"] == "Already processed"
    assert len(mtn.status_calls) == 1


async def test_a_refund_callback_with_a_wrong_token_changes_nothing(
    client, auth, runtime, payments, fake_refunds
):
    created = await pending_refund(client, auth, payments)
    fake_refunds[Provider.MTN_MOMO].status = StatusResult(status=ProviderPaymentStatus.SUCCESSFUL)
    wrong = callback_token(SECRET, "another-reference")
    reply = await client.put(
        refund_callback_path(created["provider_reference"], wrong),
        content=mtn_refund_body("20000"),
    )
    assert reply.status_code == 401
    assert reply.json()["code"] == "token_invalid"
    refund = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert refund["status"] == "pending"
    assert fake_refunds[Provider.MTN_MOMO].status_calls == []


async def test_a_payments_token_does_not_open_a_refunds_url(client, auth, payments, fake_refunds):
    created = await pending_refund(client, auth, payments)
    payment = (await client.get(f"/v1/payments/{created['payment_id']}", headers=auth)).json()
    # A payment's valid reference and token, sent to the refund route: no such refund.
    reply = await client.put(
        refund_callback_path(payment["provider_reference"]), content=mtn_refund_body("20000")
    )
    assert reply.status_code == 404
    assert fake_refunds[Provider.MTN_MOMO].status_calls == []


async def test_a_callback_claiming_another_amount_is_not_believed(
    client, auth, payments, fake_refunds
):
    created = await pending_refund(client, auth, payments)
    # The body claims 50000; the provider's status says 20000, as asked: that is what counts.
    fake_refunds[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=20000, currency="UGX"
    )
    reply = await client.post(
        refund_callback_path(created["provider_reference"]), content=mtn_refund_body("50000")
    )
    assert reply.status_code == 200
    refund = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert refund["status"] == "succeeded"
    payment = (await client.get(f"/v1/payments/{created['payment_id']}", headers=auth)).json()
    assert payment["amount_refunded"] == "20000"


async def test_a_provider_confirming_another_amount_puts_the_refund_in_review(
    client, auth, payments, fake_refunds
):
    created = await pending_refund(client, auth, payments)
    fake_refunds[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000, currency="UGX"
    )
    reply = await client.put(
        refund_callback_path(created["provider_reference"]), content=mtn_refund_body("50000")
    )
    assert reply.status_code == 200
    refund = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert refund["status"] == "needs_review"
    payment = (await client.get(f"/v1/payments/{created['payment_id']}", headers=auth)).json()
    assert payment["amount_refunded"] == "0"


async def test_a_refund_callback_with_the_provider_down_is_kept_for_the_reconciler(
    client, auth, runtime, payments, fake_refunds
):
    created = await pending_refund(client, auth, payments)
    mtn = fake_refunds[Provider.MTN_MOMO]
    mtn.unavailable = True
    reply = await client.put(
        refund_callback_path(created["provider_reference"]), content=mtn_refund_body("20000")
    )
    assert reply.status_code == 200
    assert reply.json()["message"].startswith("Webhook received")
    mtn.unavailable = False
    mtn.status = StatusResult(status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=20000)
    await runtime.refund_reconciler.reconcile()  # due now: the callback asked for a check
    refund = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert refund["status"] == "succeeded"


async def test_garbage_on_the_refund_route_is_a_clean_4xx(client, auth, payments):
    created = await pending_refund(client, auth, payments)
    path = refund_callback_path(created["provider_reference"])
    assert (await client.put(path, content=b"\xff\xfe not json")).status_code == 400
    assert (await client.put(path, content=b"[1, 2]")).status_code == 400
    unknown = refund_callback_path("3f2b6c1e-8a4d-4b1e-9d6f-0c7a5e2b1d90")
    assert (await client.put(unknown, content=b"{}")).status_code == 404
