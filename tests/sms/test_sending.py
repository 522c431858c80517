"""Queueing and sending receipts: accepted, refused for good, retried, given up; never twice,
never for a payment that succeeded before receipts were switched on."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import select

from app.config import Settings
from app.db import utcnow
from app.merchants.service import update_sms_receipts
from app.sms.models import SmsReceipt
from app.sms.service import MAX_ATTEMPTS, SmsReceipts
from app.workers.jobs import send_sms_receipts, sweep_outbox
from tests.conftest import count_rows, make_settings
from tests.sms.conftest import (
    ACCEPTED,
    AT_API_KEY,
    MASKED_PAYER,
    PAYER,
    SEND_URL,
    recipients,
    successful_payment,
)


async def receipts(runtime) -> list[SmsReceipt]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(SmsReceipt))).all())


async def test_an_accepted_receipt_is_sent_once_and_logged_masked(
    client, auth, runtime, fake_providers, sms_on, africastalking, caplog
):
    caplog.set_level(logging.INFO, logger="app.sms")
    send = africastalking.post(SEND_URL).respond(201, json=ACCEPTED)
    payment = await successful_payment(client, auth, fake_providers)
    now = utcnow()

    assert await runtime.sms.queue_new(now) == 1
    report = await runtime.sms.send_due(now)

    assert report.sent == 1
    request = send.calls.last.request
    form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
    assert form["username"] == "sandbox"
    assert form["to"] == "+" + PAYER
    assert form["message"] == (
        "Payment of UGX 50,000 to Kampala Electronics received. Order ORD-1001. "
        "Ref MP210603.1234.L06941"
    )
    assert "from" not in form
    assert request.headers["apiKey"] == AT_API_KEY
    assert request.headers["Accept"] == "application/json"
    [receipt] = await receipts(runtime)
    assert (receipt.status, receipt.attempts, receipt.status_code) == ("sent", 1, 101)
    assert receipt.provider_message_id == "ATXid_0001"
    assert receipt.payment_id == payment["id"]
    assert receipt.sent_at == now
    [line] = [r for r in caplog.records if r.getMessage().startswith("SMS receipt sent to")]
    assert line.getMessage() == f"SMS receipt sent to {MASKED_PAYER} (ATXid_0001)"
    assert line.payment_id == payment["id"]

    assert await runtime.sms.queue_new(now) == 0
    assert (await runtime.sms.send_due(now + timedelta(hours=2))).sent == 0
    assert send.call_count == 1


async def test_the_sender_id_goes_as_from(clean_db, runtime, africastalking):
    settings = make_settings(
        clean_db,
        africastalking_api_url="https://africastalking.test",
        africastalking_username="shop",
        africastalking_api_key="k",
        africastalking_sender_id="KAMPALAELEC",
    )
    send = africastalking.post(SEND_URL).respond(201, json=ACCEPTED)
    sms = SmsReceipts(sessions=runtime.sessions, settings=settings, callback_token=None)
    try:
        sender = sms._sender
        assert sender is not None
        await sender.send(PAYER, "hello")
    finally:
        await sms.aclose()
    assert parse_qs(send.calls.last.request.content.decode())["from"] == ["KAMPALAELEC"]


@pytest.mark.parametrize(
    ("code", "status"), [(403, "InvalidPhoneNumber"), (405, "InsufficientBalance")]
)
async def test_a_refused_recipient_fails_for_good_without_a_second_post(
    client, auth, runtime, fake_providers, sms_on, africastalking, caplog, code, status
):
    send = africastalking.post(SEND_URL).respond(201, json=recipients(code, status))
    await successful_payment(client, auth, fake_providers)
    now = utcnow()
    await runtime.sms.queue_new(now)

    report = await runtime.sms.send_due(now)
    later = await runtime.sms.send_due(now + timedelta(days=1))

    assert (report.refused, later.refused, send.call_count) == (1, 0, 1)
    [receipt] = await receipts(runtime)
    assert (receipt.status, receipt.status_code, receipt.failure_reason) == ("failed", code, status)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "app.sms"]
    assert str(code) in warning.getMessage()
    assert status in warning.getMessage()
    assert MASKED_PAYER in warning.getMessage()
    assert PAYER not in warning.getMessage()


RETRYABLE = {
    "recipient 500": httpx.Response(201, json=recipients(500, "InternalServerError")),
    "recipient 502": httpx.Response(201, json=recipients(502, "RejectedByGateway")),
    "HTTP 500": httpx.Response(500, text="Internal Server Error"),
    "unreadable 201": httpx.Response(201, text="<xml/>"),
    "timeout": httpx.ReadTimeout("timed out"),
}


@pytest.mark.parametrize("answer", list(RETRYABLE), ids=list(RETRYABLE))
async def test_a_retryable_answer_is_retried_with_backoff_then_given_up(
    client, auth, runtime, fake_providers, sms_on, africastalking, answer
):
    outcome = RETRYABLE[answer]
    route = africastalking.post(SEND_URL)
    if isinstance(outcome, Exception):
        route.side_effect = outcome
    else:
        route.return_value = outcome
    await successful_payment(client, auth, fake_providers)
    now = utcnow()
    await runtime.sms.queue_new(now)

    await runtime.sms.send_due(now)
    [receipt] = await receipts(runtime)
    assert (receipt.status, receipt.attempts) == ("pending", 1)
    assert receipt.next_attempt_at == now + timedelta(seconds=30)
    assert (await runtime.sms.send_due(now + timedelta(seconds=29))).retrying == 0
    await runtime.sms.send_due(now + timedelta(seconds=30))
    [receipt] = await receipts(runtime)
    assert receipt.next_attempt_at == now + timedelta(seconds=30 + 60)

    moment = now + timedelta(seconds=30)
    for _ in range(MAX_ATTEMPTS - 2):
        moment += timedelta(hours=1)
        await runtime.sms.send_due(moment)
    [receipt] = await receipts(runtime)
    assert (receipt.status, receipt.attempts) == ("failed", MAX_ATTEMPTS)
    assert receipt.failure_reason.startswith(f"not accepted after {MAX_ATTEMPTS} attempts")
    assert route.call_count == MAX_ATTEMPTS
    messages = {parse_qs(call.request.content.decode())["message"][0] for call in route.calls}
    assert len(messages) == 1
    assert (await runtime.sms.send_due(moment + timedelta(days=1))).sent == 0
    assert route.call_count == MAX_ATTEMPTS


async def test_africastalking_down_changes_nothing_about_the_payment_or_its_event(
    client, auth, runtime, fake_providers, sms_on, africastalking
):
    route = africastalking.post(SEND_URL)
    route.side_effect = httpx.ConnectError("down")
    payment = await successful_payment(client, auth, fake_providers)

    report = await send_sms_receipts(runtime)
    delivered = await sweep_outbox(runtime)

    assert report.retrying == 1
    assert [result.delivered for result in delivered] == [True]
    shown = await client.get(f"/v1/payments/{payment['id']}", headers=auth)
    assert shown.json()["status"] == "successful"
    assert await count_rows(runtime, "events", "delivery_status = 'delivered'") == 1


async def test_a_failing_sms_run_is_caught_and_logged(runtime, monkeypatch, caplog):
    async def broken(now=None):
        raise RuntimeError("database went away")

    monkeypatch.setattr(runtime.sms, "queue_new", broken)

    report = await send_sms_receipts(runtime)

    assert report.sent == 0
    assert any("SMS receipts run failed" in r.getMessage() for r in caplog.records)


async def test_a_receipt_is_never_queued_twice(client, auth, runtime, fake_providers, sms_on):
    await successful_payment(client, auth, fake_providers)
    now = utcnow()

    counts = [await runtime.sms.queue_new(now), await runtime.sms.queue_new(now)]
    together = await asyncio.gather(*(runtime.sms.queue_new(now) for _ in range(5)))

    assert counts == [1, 0]
    assert list(together) == [0] * 5
    assert await count_rows(runtime, "sms_receipts") == 1


async def test_concurrent_sweeps_queue_one_receipt_per_payment(
    client, auth, runtime, fake_providers, sms_on
):
    for number in range(3):
        await successful_payment(client, auth, fake_providers, order_id=f"ORD-{number}")
    now = utcnow()

    inserted = await asyncio.gather(*(runtime.sms.queue_new(now) for _ in range(6)))

    assert sum(inserted) == 3
    assert await count_rows(runtime, "sms_receipts") == 3


async def test_receipts_off_or_switched_on_later_queue_nothing(
    client, auth, runtime, fake_providers, merchant
):
    await successful_payment(client, auth, fake_providers, order_id="ORD-OFF")
    assert await runtime.sms.queue_new(utcnow()) == 0

    await update_sms_receipts(runtime.sessions, merchant.id, enabled=True)
    assert await runtime.sms.queue_new(utcnow()) == 0

    await successful_payment(client, auth, fake_providers, order_id="ORD-ON")
    assert await runtime.sms.queue_new(utcnow()) == 1

    await update_sms_receipts(runtime.sessions, merchant.id, enabled=False)
    await successful_payment(client, auth, fake_providers, order_id="ORD-OFF-AGAIN")
    assert await runtime.sms.queue_new(utcnow()) == 0


async def test_without_credentials_nothing_is_queued_or_sent(
    clean_db, client, auth, runtime, fake_providers, sms_on, africastalking
):
    send = africastalking.post(SEND_URL).respond(201, json=ACCEPTED)
    await successful_payment(client, auth, fake_providers)
    unconfigured: Settings = make_settings(clean_db)
    sms = SmsReceipts(sessions=runtime.sessions, settings=unconfigured, callback_token=None)
    try:
        assert not sms.configured
        assert await sms.queue_new(utcnow()) == 0
        assert (await sms.send_due(utcnow())).sent == 0
    finally:
        await sms.aclose()
    assert send.call_count == 0
    assert await count_rows(runtime, "sms_receipts") == 0


async def test_a_payment_without_a_transaction_id_uses_its_id_as_ref(
    client, auth, runtime, fake_providers, sms_on
):
    payment = await successful_payment(client, auth, fake_providers, transaction_id=None)
    await runtime.sms.queue_new(utcnow())
    [receipt] = await receipts(runtime)
    assert receipt.message.endswith(f"Ref {payment['id']}")


async def test_a_long_order_id_is_cut_to_one_sms(client, auth, runtime, fake_providers, sms_on):
    # Exactly 160 with a 20-character order id and a 24-character ref.
    template = "{order} {ref} " + "x" * 114
    await update_sms_receipts(runtime.sessions, sms_on.id, template=template)
    await successful_payment(client, auth, fake_providers, order_id="O" * 64)
    await runtime.sms.queue_new(utcnow())
    [receipt] = await receipts(runtime)
    assert len(receipt.message) == 160
    assert receipt.message.startswith("O" * 64 + " MP210603.1234.L06941 xxx")


async def test_no_number_or_key_in_any_log_line_of_a_full_send(
    client, auth, runtime, fake_providers, sms_on, africastalking, json_logs
):
    africastalking.post(SEND_URL).respond(201, json=ACCEPTED)
    await successful_payment(client, auth, fake_providers)
    await send_sms_receipts(runtime)
    response = await client.post(
        "/api/webhooks/africastalking/at-callback-token-456",
        data={"id": "ATXid_0001", "status": "Success", "phoneNumber": "+" + PAYER},
    )
    assert response.json() == {"status": "recorded"}

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line]
    assert any(line["message"].startswith("SMS receipt sent to") for line in lines)
    text = json_logs.getvalue()
    assert PAYER not in text
    assert "772123456" not in text
    assert AT_API_KEY not in text


async def test_concurrent_senders_send_each_receipt_once(
    client, auth, runtime, fake_providers, sms_on, africastalking
):
    send = africastalking.post(SEND_URL).respond(201, json=ACCEPTED)
    await successful_payment(client, auth, fake_providers)
    now = utcnow()
    await runtime.sms.queue_new(now)

    reports = await asyncio.gather(*(runtime.sms.send_due(now) for _ in range(4)))

    assert sum(report.sent for report in reports) == 1
    assert send.call_count == 1
