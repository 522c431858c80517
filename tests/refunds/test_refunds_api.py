"""POST/GET /v1/refunds against in-memory providers: every rule and problem code of the refund
table, write-ahead, one reference for life, events and the payment's refunded total."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.payments.decision import Change
from app.payments.domain import Actor, PaymentStatus
from app.providers.base import (
    InitiationResult,
    ProviderPaymentStatus,
    RefundResult,
    StatusResult,
)
from app.refunds.models import Refund
from app.vocabulary import FailureCode, Provider
from tests.conftest import count_rows
from tests.payments.test_create_payment import VALID


async def refund(client, auth, **body):
    return await client.post("/v1/refunds", json=body, headers=auth)


async def payment_json(client, auth, payment_id):
    return (await client.get(f"/v1/payments/{payment_id}", headers=auth)).json()


async def events_for(client, auth, payment_id):
    listed = await client.get(f"/v1/events?payment_id={payment_id}", headers=auth)
    assert listed.status_code == 200, listed.text
    return listed.json()["data"]


# --- which payments can be refunded -----------------------------------------------------------


async def test_a_pending_payment_is_not_refundable(client, auth, fake_refunds):
    created = await client.post("/v1/payments", json=VALID, headers=auth)
    answer = await refund(client, auth, payment_id=created.json()["id"])
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "payment_not_refundable"
    assert fake_refunds[Provider.MTN_MOMO].requests == []


@pytest.mark.parametrize("status", ["failed", "expired", "needs_review"])
async def test_a_payment_that_did_not_succeed_is_not_refundable(
    client, auth, runtime, fake_refunds, status
):
    created = (await client.post("/v1/payments", json=VALID, headers=auth)).json()
    moved = await runtime.payments.transition(
        created["id"], Change(to_status=PaymentStatus(status), actor=Actor.RECONCILER)
    )
    assert moved is not None
    answer = await refund(client, auth, payment_id=created["id"])
    assert answer.status_code == 409
    assert answer.json()["code"] == "payment_not_refundable"
    assert await count_rows(runtime, "refunds") == 0


async def test_a_refused_payment_is_not_refundable(client, auth, fake_providers):
    fake_providers[Provider.MTN_MOMO].initiation = InitiationResult.refused(
        FailureCode.INSUFFICIENT_FUNDS, "NOT_ENOUGH_FUNDS"
    )
    created = (await client.post("/v1/payments", json=VALID, headers=auth)).json()
    answer = await refund(client, auth, payment_id=created["id"])
    assert answer.status_code == 409


async def test_unknown_and_other_merchants_payments_are_not_found(
    client, auth, payments, other_merchant
):
    payment = await payments.successful()
    other = {"Authorization": f"Bearer {other_merchant.api_key}"}
    assert (await refund(client, other, payment_id=payment["id"])).status_code == 404
    assert (await refund(client, auth, payment_id="pay_doesnotexist")).status_code == 404
    assert (await refund(client, auth, payment_id="not an id!")).status_code == 422


# --- MTN: partial and several refunds ------------------------------------------------------------


async def test_an_mtn_refund_is_written_ahead_and_settles_on_the_providers_word(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful(amount="50000")
    answer = await refund(client, auth, payment_id=payment["id"], amount="20000", reason="Stock")
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["object"] == "refund"
    assert created["status"] == "pending"
    assert created["amount"] == "20000"
    assert created["currency"] == "UGX"
    assert created["provider"] == "mtn_momo"
    assert created["payment_id"] == payment["id"]
    assert str(uuid.UUID(created["provider_reference"], version=4)) == created["provider_reference"]

    mtn = fake_refunds[Provider.MTN_MOMO]
    (sent,) = mtn.requests
    assert sent.reference == created["provider_reference"]
    assert sent.payment_reference == payment["provider_reference"]
    assert sent.amount_minor == 20000
    assert sent.note == "Stock"
    # The per-refund callback URL: the MTN callback base + refunds/{reference}/{token}.
    assert sent.callback_url is not None
    assert f"/mtn-momo/refunds/{created['provider_reference']}/" in sent.callback_url

    # Nothing moves until the provider says so.
    assert (await payment_json(client, auth, payment["id"]))["amount_refunded"] == "0"
    mtn.status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=20000,
        currency="UGX",
        provider_transaction_id="rf-1",
    )
    await runtime.refund_reconciler.reconcile()
    settled = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert settled["status"] == "succeeded"
    assert settled["provider_transaction_id"] == "rf-1"
    assert settled["completed_at"] is not None
    assert mtn.status_calls == [created["provider_reference"]]
    assert len(mtn.requests) == 1
    assert (await payment_json(client, auth, payment["id"]))["amount_refunded"] == "20000"
    assert (await payment_json(client, auth, payment["id"]))["status"] == "successful"

    refund_events = [
        e for e in await events_for(client, auth, payment["id"]) if e["type"].startswith("refund")
    ]
    assert [(e["type"], e["refund_id"]) for e in refund_events] == [
        ("refund.succeeded", created["id"])
    ]
    assert refund_events[0]["data"]["status"] == "succeeded"
    assert refund_events[0]["payment_id"] == payment["id"]
    audit = await count_rows(runtime, "refund_transitions", "refund_id = :r", r=created["id"])
    assert audit == 2  # created, then succeeded


async def test_omitting_the_amount_refunds_what_is_left_and_two_refunds_give_two_events(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful(amount="50000")
    first = (await refund(client, auth, payment_id=payment["id"], amount="20000")).json()
    rest = (await refund(client, auth, payment_id=payment["id"])).json()
    assert rest["amount"] == "30000"
    fake_refunds[Provider.MTN_MOMO].status = StatusResult(status=ProviderPaymentStatus.SUCCESSFUL)
    await runtime.refund_reconciler.reconcile()
    assert (await payment_json(client, auth, payment["id"]))["amount_refunded"] == "50000"
    types = sorted(
        (e["type"], e["refund_id"])
        for e in await events_for(client, auth, payment["id"])
        if e["refund_id"]
    )
    assert types == sorted([("refund.succeeded", first["id"]), ("refund.succeeded", rest["id"])])
    # Nothing is left to refund.
    answer = await refund(client, auth, payment_id=payment["id"])
    assert answer.status_code == 422
    assert answer.json()["code"] == "refund_exceeds_payment"


async def test_an_over_refund_is_refused_and_names_what_is_left(client, auth, payments):
    payment = await payments.successful(amount="50000")
    assert (await refund(client, auth, payment_id=payment["id"], amount="30000")).status_code == 201
    answer = await refund(client, auth, payment_id=payment["id"], amount="20001")
    assert answer.status_code == 422
    assert answer.json()["code"] == "refund_exceeds_payment"
    assert "UGX 20000" in answer.json()["detail"]
    alone = await payments.successful(amount="1000")
    too_much = await refund(client, auth, payment_id=alone["id"], amount="1001")
    assert too_much.json()["code"] == "refund_exceeds_payment"


async def test_twenty_concurrent_partial_refunds_never_exceed_the_payment(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful(amount="50000")
    answers = await asyncio.gather(
        *(refund(client, auth, payment_id=payment["id"], amount="7000") for _ in range(20))
    )
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(201) == 7  # 7 * 7000 = 49000 <= 50000 < 8 * 7000
    refused = [answer.json()["code"] for answer in answers if answer.status_code != 201]
    assert refused == ["refund_exceeds_payment"] * 13
    async with runtime.engine.connect() as connection:
        held = await connection.scalar(
            text("SELECT SUM(amount_minor) FROM refunds WHERE payment_id = :p"),
            {"p": payment["id"]},
        )
    assert held == 49000
    assert len(fake_refunds[Provider.MTN_MOMO].requests) == 7


# --- a failed refund gives nothing back and holds nothing ---------------------------------------


async def test_a_refusal_at_request_fails_the_refund_at_once(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful(amount="50000")
    fake_refunds[Provider.MTN_MOMO].result = RefundResult.refused(
        FailureCode.INSUFFICIENT_FUNDS, "NOT_ENOUGH_FUNDS"
    )
    answer = await refund(client, auth, payment_id=payment["id"])
    assert answer.status_code == 201
    failed = answer.json()
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "insufficient_funds"
    events = [e for e in await events_for(client, auth, payment["id"]) if e["refund_id"]]
    assert [e["type"] for e in events] == ["refund.failed"]
    assert (await payment_json(client, auth, payment["id"]))["amount_refunded"] == "0"
    # The disbursement account was topped up: the whole amount can be refunded again.
    fake_refunds[Provider.MTN_MOMO].result = RefundResult.accepted()
    again = await refund(client, auth, payment_id=payment["id"])
    assert again.status_code == 201
    assert again.json()["amount"] == "50000"


async def test_a_refund_without_an_answer_stays_pending_and_is_never_sent_again(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful()
    mtn = fake_refunds[Provider.MTN_MOMO]
    mtn.result = RefundResult.unknown("HTTP 503")
    created = (await refund(client, auth, payment_id=payment["id"])).json()
    assert created["status"] == "pending"
    mtn.unavailable = True
    for _ in range(3):
        await runtime.refund_reconciler.reconcile()
        await _make_due(runtime, created["id"])
    mtn.unavailable = False
    mtn.status = StatusResult(status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000)
    await runtime.refund_reconciler.reconcile()
    settled = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert settled["status"] == "succeeded"
    assert len(mtn.requests) == 1  # asked about, never sent a second time
    assert set(mtn.status_calls) == {created["provider_reference"]}


async def _make_due(runtime, refund_id, *, age=None):
    """Make the refund due for a check now; with ``age``, as if it had been created that long
    ago."""
    async with runtime.sessions.begin() as session:
        refund = await session.get(Refund, refund_id)
        if age is not None:
            refund.created_at = refund.created_at - age
        refund.next_check_at = refund.created_at


@pytest.mark.parametrize(
    "answer",
    [
        StatusResult(status=ProviderPaymentStatus.PENDING),
        StatusResult(status=ProviderPaymentStatus.NOT_FOUND),
    ],
    ids=["still-pending", "unknown-reference"],
)
async def test_a_refund_unresolved_past_the_timeout_needs_review_never_fails(
    client, auth, runtime, payments, fake_refunds, answer
):
    payment = await payments.successful()
    created = (await refund(client, auth, payment_id=payment["id"])).json()
    fake_refunds[Provider.MTN_MOMO].status = answer
    await runtime.refund_reconciler.reconcile()
    assert (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()[
        "status"
    ] == "pending"
    timeout = runtime.settings.payment_timeout_seconds
    await _make_due(runtime, created["id"], age=timedelta(seconds=timeout + 60))
    await runtime.refund_reconciler.reconcile()
    reviewed = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert reviewed["status"] == "needs_review"
    assert reviewed["failure_code"] is None
    events = [e["type"] for e in await events_for(client, auth, payment["id"]) if e["refund_id"]]
    assert events == ["refund.needs_review"]
    # It still holds its amount: nothing more can be refunded while a person looks.
    more = await refund(client, auth, payment_id=payment["id"], amount="1")
    assert more.json()["code"] == "refund_exceeds_payment"


async def test_a_provider_reporting_another_amount_puts_the_refund_in_review(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful(amount="50000")
    created = (await refund(client, auth, payment_id=payment["id"], amount="10000")).json()
    fake_refunds[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=12000, currency="UGX"
    )
    await runtime.refund_reconciler.reconcile()
    reviewed = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert reviewed["status"] == "needs_review"
    assert "12000" in reviewed["failure_message"]
    assert (await payment_json(client, auth, payment["id"]))["amount_refunded"] == "0"


# --- Airtel: the full amount, once ---------------------------------------------------------------


async def test_airtel_refunds_only_the_full_amount_once(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful(Provider.AIRTEL_MONEY, amount="30000", transaction_id="CI9")
    airtel = fake_refunds[Provider.AIRTEL_MONEY]
    airtel.result = RefundResult.succeeded("CI9")
    partial = await refund(client, auth, payment_id=payment["id"], amount="10000")
    assert partial.status_code == 422
    assert partial.json()["code"] == "partial_refund_not_supported"
    assert airtel.requests == []

    full = await refund(client, auth, payment_id=payment["id"])
    assert full.status_code == 201
    assert full.json()["status"] == "succeeded"
    assert full.json()["amount"] == "30000"
    (sent,) = airtel.requests
    assert sent.payment_transaction_id == "CI9"
    assert (await payment_json(client, auth, payment["id"]))["amount_refunded"] == "30000"

    second = await refund(client, auth, payment_id=payment["id"])
    assert second.status_code == 422
    assert second.json()["code"] == "partial_refund_not_supported"
    assert len(airtel.requests) == 1


async def test_an_airtel_refund_without_an_answer_waits_for_a_person(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful(Provider.AIRTEL_MONEY, amount="30000", transaction_id="CI7")
    airtel = fake_refunds[Provider.AIRTEL_MONEY]
    airtel.result = RefundResult.unknown("timed out")
    created = (await refund(client, auth, payment_id=payment["id"])).json()
    assert created["status"] == "pending"
    timeout = runtime.settings.payment_timeout_seconds
    await _make_due(runtime, created["id"], age=timedelta(seconds=timeout + 60))
    await runtime.refund_reconciler.reconcile()
    reviewed = (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()
    assert reviewed["status"] == "needs_review"
    assert airtel.status_calls == []  # Airtel has no refund status to read
    assert len(airtel.requests) == 1  # and the refund is never sent again


async def test_an_airtel_payment_without_its_transaction_id_is_asked_for_it(
    client, auth, runtime, payments, fake_providers, fake_refunds
):
    payment = await payments.successful(Provider.AIRTEL_MONEY, amount="30000", transaction_id=None)
    assert payment["provider_transaction_id"] is None
    fake_refunds[Provider.AIRTEL_MONEY].result = RefundResult.succeeded("CI5")
    # Airtel does not know it either: the refund is refused, nothing is written.
    fake_providers[Provider.AIRTEL_MONEY].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL
    )
    answer = await refund(client, auth, payment_id=payment["id"])
    assert answer.status_code == 409
    assert answer.json()["code"] == "payment_not_refundable"
    assert await count_rows(runtime, "refunds") == 0
    # Its enquiry now reports the airtel_money_id: stored, and the refund goes out with it.
    fake_providers[Provider.AIRTEL_MONEY].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, provider_transaction_id="CI5"
    )
    answer = await refund(client, auth, payment_id=payment["id"])
    assert answer.status_code == 201
    assert fake_refunds[Provider.AIRTEL_MONEY].requests[0].payment_transaction_id == "CI5"
    assert (await payment_json(client, auth, payment["id"]))["provider_transaction_id"] == "CI5"


# --- configuration and input ---------------------------------------------------------------------


async def test_mtn_refunds_without_disbursement_credentials_are_refused(
    client, auth, runtime, payments, fake_refunds
):
    payment = await payments.successful()
    del fake_refunds[Provider.MTN_MOMO]  # what the runtime holds when the credentials are unset
    answer = await refund(client, auth, payment_id=payment["id"])
    assert answer.status_code == 422
    assert answer.json()["code"] == "refunds_not_configured"
    assert "credentials" in answer.json()["detail"]
    assert await count_rows(runtime, "refunds") == 0


@pytest.mark.parametrize(
    "amount", ["0", "-5", "12.5", "abc", "1e3", "", " ", 0, -1, "NaN", True, 1.5, [], {}]
)
async def test_bad_amounts_are_validation_errors(client, auth, runtime, payments, amount):
    payment = await payments.successful()
    answer = await refund(client, auth, payment_id=payment["id"], amount=amount)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"
    assert await count_rows(runtime, "refunds") == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"payment_id": 5},
        {"payment_id": "pay_1", "unexpected": 1},
        {"payment_id": "pay_1", "reason": "x" * 161},
        {"payment_id": "pay_1", "metadata": {str(i): i for i in range(21)}},
    ],
)
async def test_malformed_bodies_are_validation_errors(client, auth, body):
    answer = await client.post("/v1/refunds", json=body, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["code"] == "validation_error"


async def test_a_refund_needs_an_api_key(client):
    assert (await client.post("/v1/refunds", json={"payment_id": "pay_1"})).status_code == 401
    assert (await client.get("/v1/refunds")).status_code == 401


# --- idempotency ----------------------------------------------------------------------------------


async def test_the_same_idempotency_key_returns_the_same_refund_and_calls_once(
    client, auth, payments, fake_refunds
):
    payment = await payments.successful()
    headers = {**auth, "Idempotency-Key": "refund-ord-1"}
    body = {"payment_id": payment["id"], "amount": "1000"}
    first = await client.post("/v1/refunds", json=body, headers=headers)
    again = await client.post("/v1/refunds", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(fake_refunds[Provider.MTN_MOMO].requests) == 1
    other = await client.post("/v1/refunds", json={**body, "amount": "2000"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


# --- reading --------------------------------------------------------------------------------------


async def test_refunds_are_listed_with_filters_and_cursor_pages(
    client, auth, payments, fake_refunds, other_merchant
):
    first = await payments.successful(amount="50000")
    second = await payments.successful(amount="50000")
    made = [
        (await refund(client, auth, payment_id=first["id"], amount="1000")).json() for _ in range(3)
    ]
    fake_refunds[Provider.MTN_MOMO].result = RefundResult.refused(FailureCode.NOT_ALLOWED, "no")
    failed = (await refund(client, auth, payment_id=second["id"], amount="1000")).json()

    page = (await client.get("/v1/refunds?limit=2", headers=auth)).json()
    assert page["object"] == "list"
    assert [r["id"] for r in page["data"]] == [failed["id"], made[2]["id"]]
    assert page["has_more"] is True
    rest = (
        await client.get(f"/v1/refunds?limit=2&starting_after={made[2]['id']}", headers=auth)
    ).json()
    assert [r["id"] for r in rest["data"]] == [made[1]["id"], made[0]["id"]]
    assert rest["has_more"] is False

    of_first = (await client.get(f"/v1/refunds?payment_id={first['id']}", headers=auth)).json()
    assert {r["id"] for r in of_first["data"]} == {r["id"] for r in made}
    only_failed = (await client.get("/v1/refunds?status=failed", headers=auth)).json()
    assert [r["id"] for r in only_failed["data"]] == [failed["id"]]

    other = {"Authorization": f"Bearer {other_merchant.api_key}"}
    assert (await client.get("/v1/refunds", headers=other)).json()["data"] == []
    assert (await client.get(f"/v1/refunds/{failed['id']}", headers=other)).status_code == 404
    bad_cursor = await client.get("/v1/refunds?starting_after=re_unknown", headers=auth)
    assert bad_cursor.status_code == 400
    assert (await client.get("/v1/refunds?status=nope", headers=auth)).status_code == 422
