"""POST /v1/payments over HTTP through the ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from app.db import utcnow
from app.idempotency import IdempotencyRecord, request_fingerprint
from app.merchants.service import create_merchant
from app.payments import repository
from app.payments.decision import Change
from app.payments.domain import Actor, PaymentStatus
from app.payments.schemas import CreatePaymentRequest
from app.providers.base import InitiationOutcome, InitiationResult
from app.vocabulary import FailureCode, Provider
from tests.conftest import count_rows, make_settings, running_app

VALID = {
    "order_id": "ORD-1001",
    "amount": "50000",
    "currency": "UGX",
    "phone_number": "0772 123 456",
    "provider": "mtn_momo",
    "description": "Order ORD-1001",
    "metadata": {"cart": "c_77"},
}


def body(**changes):
    payload = {**VALID, **changes}
    return {k: v for k, v in payload.items() if v is not ...}


async def test_creates_a_pending_payment_and_calls_the_provider_once(
    client, auth, runtime, fake_providers
):
    response = await client.post("/v1/payments", json=VALID, headers=auth)

    assert response.status_code == 201
    payment = response.json()
    assert payment["status"] == "pending"
    assert payment["object"] == "payment"
    assert payment["amount"] == "50000"
    assert payment["phone_number"] == "256772123456"
    assert payment["metadata"] == {"cart": "c_77"}
    mtn = fake_providers[Provider.MTN_MOMO]
    assert len(mtn.requests) == 1
    sent = mtn.requests[0]
    assert sent.reference == payment["provider_reference"]
    assert sent.msisdn == "256772123456"
    assert sent.amount_minor == 50000
    # The MTN callback URL names the payment's reference and carries its token.
    assert sent.callback_url is not None
    assert sent.callback_url.startswith(
        "https://gateway.example/api/webhooks/mtn-momo/" + payment["provider_reference"] + "/"
    )
    assert await count_rows(runtime, "payment_transitions", "payment_id = :p", p=payment["id"]) == 1


async def test_provider_detected_from_the_number(client, auth, fake_providers):
    response = await client.post(
        "/v1/payments", json=body(provider=..., phone_number="0700123456"), headers=auth
    )
    assert response.status_code == 201
    assert response.json()["provider"] == "airtel_money"
    assert len(fake_providers[Provider.AIRTEL_MONEY].requests) == 1
    assert fake_providers[Provider.MTN_MOMO].requests == []


async def test_definitive_refusal_is_a_failed_payment_with_an_event(
    client, auth, runtime, fake_providers
):
    fake_providers[Provider.MTN_MOMO].initiation = InitiationResult(
        outcome=InitiationOutcome.REFUSED,
        failure_code=FailureCode.INVALID_REQUEST,
        failure_message="HTTP 400",
    )
    response = await client.post("/v1/payments", json=VALID, headers=auth)

    assert response.status_code == 201
    assert response.json()["status"] == "failed"
    assert response.json()["failure_code"] == "invalid_request"
    assert await count_rows(runtime, "events", "type = 'payment.failed'") == 1


async def test_unreachable_provider_leaves_the_payment_pending(client, auth, fake_providers):
    fake_providers[Provider.MTN_MOMO].initiation = InitiationResult(
        outcome=InitiationOutcome.UNKNOWN
    )
    response = await client.post("/v1/payments", json=VALID, headers=auth)
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert response.json()["failure_code"] is None


BAD_INPUTS = [
    # (changes, status, code)
    ({"phone_number": "123"}, 422, "invalid_phone_number"),
    ({"phone_number": "+254712345678"}, 422, "invalid_phone_number"),
    ({"phone_number": "07721234567"}, 422, "invalid_phone_number"),
    ({"phone_number": "07721234ab"}, 422, "invalid_phone_number"),
    ({"phone_number": "0200123456"}, 422, "invalid_phone_number"),
    ({"phone_number": "0710123456", "provider": ...}, 422, "unsupported_network"),
    ({"phone_number": "0700123456", "provider": "mtn_momo"}, 422, "provider_mismatch"),
    ({"provider": "mpesa"}, 422, "validation_error"),
    ({"amount": "99"}, 422, "amount_out_of_range"),
    ({"amount": "5000001"}, 422, "amount_out_of_range"),
    ({"amount": "1000.50"}, 422, "invalid_amount"),
    ({"amount": "0"}, 422, "invalid_amount"),
    ({"amount": "-500"}, 422, "invalid_amount"),
    ({"amount": "abc"}, 422, "invalid_amount"),
    ({"amount": "1e5"}, 422, "invalid_amount"),
    ({"amount": "NaN"}, 422, "validation_error"),
    ({"amount": "Infinity"}, 422, "validation_error"),
    ({"amount": True}, 422, "validation_error"),
    ({"amount": 500.0}, 422, "validation_error"),
    ({"amount": None}, 422, "validation_error"),
    ({"amount": ...}, 422, "validation_error"),
    ({"currency": "KES"}, 422, "unsupported_currency"),
    ({"currency": "ugx"}, 422, "validation_error"),
    ({"order_id": ""}, 422, "validation_error"),
    ({"order_id": "x" * 65}, 422, "validation_error"),
    ({"order_id": "ORD 1"}, 422, "validation_error"),
    ({"description": "d" * 129}, 422, "validation_error"),
    ({"description": "line\nbreak"}, 422, "validation_error"),
    ({"metadata": ["not", "an", "object"]}, 422, "validation_error"),
    ({"metadata": {f"k{i}": i for i in range(21)}}, 422, "validation_error"),
    ({"metadata": {"big": "x" * 4100}}, 422, "validation_error"),
    ({"unexpected": 1}, 422, "validation_error"),
]


@pytest.mark.parametrize(("changes", "status", "code"), BAD_INPUTS)
async def test_bad_input_is_refused_and_writes_nothing(
    client, auth, runtime, fake_providers, changes, status, code
):
    response = await client.post("/v1/payments", json=body(**changes), headers=auth)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= problem.keys()
    assert await count_rows(runtime, "payments") == 0
    assert await count_rows(runtime, "idempotency_records") == 0
    assert fake_providers[Provider.MTN_MOMO].requests == []


async def test_field_errors_name_the_field(client, auth):
    response = await client.post("/v1/payments", json=body(phone_number="123"), headers=auth)
    assert response.json()["errors"][0]["field"] == "phone_number"


async def test_malformed_json_is_400(client, auth, runtime):
    response = await client.post(
        "/v1/payments",
        content=b'{"order_id": "ORD-1", "amount": ',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert await count_rows(runtime, "payments") == 0


async def test_body_over_64_kib_is_413(client, auth):
    response = await client.post(
        "/v1/payments",
        content=b'{"pad": "' + b"x" * 70_000 + b'"}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_bad_idempotency_key_is_400(client, auth, runtime, key):
    response = await client.post(
        "/v1/payments", json=VALID, headers={**auth, "Idempotency-Key": key}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert await count_rows(runtime, "payments") == 0


async def test_idempotent_replay_returns_the_first_response_byte_for_byte(
    client, auth, runtime, fake_providers
):
    headers = {**auth, "Idempotency-Key": "checkout-1001"}
    first = await client.post("/v1/payments", json=VALID, headers=headers)
    second = await client.post("/v1/payments", json=VALID, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(fake_providers[Provider.MTN_MOMO].requests) == 1
    assert await count_rows(runtime, "payments") == 1


async def test_idempotency_key_reused_with_another_body_is_422(client, auth, runtime):
    headers = {**auth, "Idempotency-Key": "checkout-1001"}
    await client.post("/v1/payments", json=VALID, headers=headers)
    response = await client.post("/v1/payments", json=body(amount="60000"), headers=headers)

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert await count_rows(runtime, "payments") == 1


async def test_idempotency_keys_are_scoped_per_merchant(client, auth, other_merchant, runtime):
    other = {"Authorization": f"Bearer {other_merchant.api_key}", "Idempotency-Key": "same"}
    first = await client.post(
        "/v1/payments", json=VALID, headers={**auth, "Idempotency-Key": "same"}
    )
    second = await client.post("/v1/payments", json=VALID, headers=other)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


async def test_concurrent_requests_with_one_key_create_one_payment(
    client, auth, runtime, fake_providers
):
    mtn = fake_providers[Provider.MTN_MOMO]
    mtn.gate = asyncio.Event()
    headers = {**auth, "Idempotency-Key": "double-click"}

    first = asyncio.create_task(client.post("/v1/payments", json=VALID, headers=headers))
    while not mtn.requests:  # the first request is now inside the provider call
        await asyncio.sleep(0.005)
    second = await client.post("/v1/payments", json=VALID, headers=headers)
    mtn.gate.set()
    first_response = await first

    assert first_response.status_code == 201
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_request_in_progress"
    assert len(mtn.requests) == 1
    assert await count_rows(runtime, "payments") == 1


async def test_many_concurrent_requests_with_one_key_create_one_payment(
    client, auth, runtime, fake_providers
):
    headers = {**auth, "Idempotency-Key": "stampede"}
    responses = await asyncio.gather(
        *(client.post("/v1/payments", json=VALID, headers=headers) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    created_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created_ids) == 1
    assert await count_rows(runtime, "payments") == 1
    assert len(fake_providers[Provider.MTN_MOMO].requests) == 1


async def test_an_order_is_never_charged_twice(client, auth, runtime, fake_providers):
    first = await client.post("/v1/payments", json=VALID, headers=auth)
    second = await client.post("/v1/payments", json=body(phone_number="0782123456"), headers=auth)

    assert second.status_code == 409
    assert second.json()["code"] == "order_already_has_payment"
    assert second.json()["payment_id"] == first.json()["id"]
    assert len(fake_providers[Provider.MTN_MOMO].requests) == 1


async def test_concurrent_payments_for_one_order_charge_once(client, auth, runtime, fake_providers):
    responses = await asyncio.gather(
        *(client.post("/v1/payments", json=VALID, headers=auth) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert len(fake_providers[Provider.MTN_MOMO].requests) == 1


async def test_a_failed_order_may_be_paid_again(client, auth, fake_providers):
    fake_providers[Provider.MTN_MOMO].initiation = InitiationResult(
        outcome=InitiationOutcome.REFUSED, failure_code=FailureCode.INVALID_REQUEST
    )
    first = await client.post("/v1/payments", json=VALID, headers=auth)
    assert first.json()["status"] == "failed"

    fake_providers[Provider.MTN_MOMO].initiation = InitiationResult(
        outcome=InitiationOutcome.ACCEPTED
    )
    second = await client.post("/v1/payments", json=VALID, headers=auth)
    assert second.status_code == 201
    assert second.json()["status"] == "pending"
    assert second.json()["provider_reference"] != first.json()["provider_reference"]


async def test_unconfigured_provider_is_refused(clean_db, fake_providers):
    settings = make_settings(clean_db, airtel_money_client_id=None)
    async with running_app(settings, providers=fake_providers) as (app, http):
        merchant = await create_merchant(
            app.state.runtime.sessions, name="Shop", callback_url="https://shop.example/e"
        )
        response = await http.post(
            "/v1/payments",
            json=body(provider=..., phone_number="0700123456"),
            headers={"Authorization": f"Bearer {merchant.api_key}"},
        )
    assert response.status_code == 422
    assert response.json()["code"] == "provider_not_configured"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("0700123456", "256700123456"),
        ("256700123456", "256700123456"),
        ("+256700123456", "256700123456"),
        ("0750-123-456", "256750123456"),
    ],
)
async def test_the_guides_phone_formats_normalise_over_http(client, auth, typed, stored):
    response = await client.post(
        "/v1/payments", json=body(phone_number=typed, provider=...), headers=auth
    )
    assert response.status_code == 201
    assert response.json()["phone_number"] == stored
    assert response.json()["provider"] == "airtel_money"


async def test_a_request_refused_before_it_did_anything_leaves_the_key_free(
    client, auth, runtime, fake_providers
):
    first = await client.post("/v1/payments", json=VALID, headers=auth)
    keyed = {**auth, "Idempotency-Key": "retry-me"}
    conflict = await client.post("/v1/payments", json=VALID, headers=keyed)
    assert conflict.status_code == 409
    assert await count_rows(runtime, "idempotency_records") == 0

    await runtime.payments.transition(
        first.json()["id"], Change(to_status=PaymentStatus.FAILED, actor=Actor.CALLBACK)
    )
    retried = await client.post("/v1/payments", json=VALID, headers=keyed)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


async def test_an_abandoned_claim_is_taken_over(client, auth, merchant, runtime):
    fingerprint = request_fingerprint(
        "POST", "/v1/payments", CreatePaymentRequest.model_validate(VALID).model_dump(mode="json")
    )
    # A process died holding this key ten minutes ago: claimed, never answered.
    async with runtime.engine.begin() as connection:
        claim = runtime.idempotency.claim(merchant.id, "crashed", fingerprint)
        await connection.execute(claim.statement, claim.params)
        await connection.execute(
            update(IdempotencyRecord).values(locked_at=utcnow() - timedelta(minutes=10))
        )
    keyed = {**auth, "Idempotency-Key": "crashed"}

    response = await client.post("/v1/payments", json=VALID, headers=keyed)
    replay = await client.post("/v1/payments", json=VALID, headers=keyed)

    assert response.status_code == 201, response.text
    assert replay.content == response.content
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_a_claim_whose_request_failed_midway_is_released(client, auth, runtime, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("database went away after the provider accepted")

    # Whichever way the outcome is recorded (PostgreSQL's one statement or the transaction).
    monkeypatch.setattr(repository, "update_returning", broken)
    monkeypatch.setattr(repository, "finish_initiation_if_pending", broken)
    keyed = {**auth, "Idempotency-Key": "midway"}
    transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        failed = await http.post("/v1/payments", json=VALID, headers=keyed)
    assert failed.status_code == 500
    assert await count_rows(runtime, "idempotency_records") == 0  # the key is free again
    monkeypatch.undo()

    retried = await client.post("/v1/payments", json=VALID, headers=keyed)
    # The payment from the first try exists (write-ahead) and holds the order: no second charge.
    assert retried.status_code == 409
    assert retried.json()["code"] == "order_already_has_payment"


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "idempotency-key"])
async def test_a_payment_settled_during_its_request_to_pay_is_answered_as_settled(
    client, auth, runtime, fake_providers, keyed
):
    # The callback wins the race: the outcome is recorded on the settled row, not over it.
    mtn = fake_providers[Provider.MTN_MOMO]
    mtn.gate = asyncio.Event()
    headers = {**auth, "Idempotency-Key": "settled-early"} if keyed else auth
    creating = asyncio.create_task(client.post("/v1/payments", json=VALID, headers=headers))
    deadline = asyncio.get_running_loop().time() + 5
    while not mtn.requests:  # the request is now inside the provider call
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)
    async with runtime.sessions() as session:
        payment = await repository.get_by_reference(session, mtn.requests[0].reference)
    assert payment is not None
    settled = Change(to_status=PaymentStatus.SUCCESSFUL, actor=Actor.CALLBACK)
    assert await runtime.payments.transition(payment.id, settled) is not None
    mtn.gate.set()
    response = await creating

    assert response.status_code == 201
    assert response.json()["status"] == "successful"
    async with runtime.sessions() as session:
        recorded = await repository.get(session, payment.id)
    assert recorded is not None
    assert recorded.status == "successful"
    assert recorded.initiation_finished_at is not None
    if keyed:
        replay = await client.post("/v1/payments", json=VALID, headers=headers)
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.content == response.content
