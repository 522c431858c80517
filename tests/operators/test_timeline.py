"""The payment's timeline: every record about it, one list, in time order."""

from __future__ import annotations

from app.callback_tokens import callback_token
from app.operators.timeline import payment_timeline
from app.providers.base import ProviderPaymentStatus, RefundResult, StatusResult
from app.vocabulary import Provider
from tests.payments.test_create_payment import VALID

SECRET = b"callback-token-secret"


async def test_the_timeline_tells_the_whole_story_in_order(
    client, auth, runtime, fake_providers, fake_refunds
):
    created = (await client.post("/v1/payments", json=VALID, headers=auth)).json()
    mtn = fake_providers[Provider.MTN_MOMO]
    mtn.unavailable = True
    await client.post(f"/v1/payments/{created['id']}/refresh", headers=auth)  # no answer
    mtn.unavailable = False
    mtn.status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=50000,
        currency="UGX",
        provider_transaction_id="tx-9",
    )
    reference = created["provider_reference"]
    token = callback_token(SECRET, reference)
    callback = await client.put(
        f"/api/webhooks/mtn-momo/{reference}/{token}", json={"status": "SUCCESSFUL"}
    )
    assert callback.status_code == 200
    fake_refunds[Provider.MTN_MOMO].result = RefundResult.succeeded("rf-1")
    refund = await client.post(
        "/v1/refunds", json={"payment_id": created["id"], "amount": "1000"}, headers=auth
    )
    assert refund.status_code == 201
    await runtime.delivery.deliver(
        (await client.get(f"/v1/events?payment_id={created['id']}", headers=auth)).json()["data"][
            -1
        ]["id"]
    )

    timeline = await payment_timeline(runtime.sessions, created["id"])
    assert timeline is not None
    kinds = [entry.kind for entry in timeline]
    assert kinds[0] == "transition"  # created
    assert timeline[0].summary == "created → pending"
    reads = [entry for entry in timeline if entry.kind == "status_read"]
    assert [entry.detail["status"] for entry in reads] == ["unreachable", "successful"]
    assert [entry.actor for entry in reads] == ["api", "callback"]
    assert reads[1].detail["provider_transaction_id"] == "tx-9"
    (callback_entry,) = [entry for entry in timeline if entry.kind == "callback"]
    assert callback_entry.detail["outcome"] == "accepted"
    # The callback came before the read it caused, which came before the change it settled.
    success = next(entry for entry in timeline if entry.summary == "pending → successful")
    assert kinds.index("callback") < timeline.index(reads[1]) < timeline.index(success)
    assert success.actor == "callback"
    assert any(entry.kind == "refund" and "UGX 1000" in entry.summary for entry in timeline)
    assert any(
        entry.kind == "refund_transition" and entry.summary.endswith("pending → succeeded")
        for entry in timeline
    )
    events = [entry for entry in timeline if entry.kind == "event"]
    assert sorted(entry.detail["type"] for entry in events) == [
        "payment.succeeded",
        "refund.succeeded",
    ]
    assert any(entry.kind == "delivery_attempt" for entry in timeline)
    assert [entry.at for entry in timeline] == sorted(entry.at for entry in timeline)
    assert all(isinstance(entry.as_json()["at"], str) for entry in timeline)


async def test_no_timeline_for_an_unknown_payment(runtime):
    assert await payment_timeline(runtime.sessions, "pay_unknown") is None
