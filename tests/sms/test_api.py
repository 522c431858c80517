"""Delivery reports (unsigned, so the URL's token is all that stands between a forger and the
records) and ``GET /v1/payments/{id}/sms``."""

from __future__ import annotations

from sqlalchemy import select

from app.db import utcnow
from app.server_secrets import ServerSecret
from app.sms.models import SmsReceipt
from tests.conftest import make_settings, running_app
from tests.sms.conftest import (
    ACCEPTED,
    CALLBACK_TOKEN,
    MASKED_PAYER,
    PAYER,
    SEND_URL,
    successful_payment,
)

REPORTS = f"/api/webhooks/africastalking/{CALLBACK_TOKEN}"


async def sent_receipt(client, auth, runtime, fake_providers, africastalking) -> dict:
    africastalking.post(SEND_URL).respond(201, json=ACCEPTED)
    payment = await successful_payment(client, auth, fake_providers)
    now = utcnow()
    await runtime.sms.queue_new(now)
    assert (await runtime.sms.send_due(now)).sent == 1
    return payment


async def stored(runtime) -> SmsReceipt:
    async with runtime.sessions() as session:
        return (await session.scalars(select(SmsReceipt))).one()


async def test_a_success_report_marks_the_receipt_delivered(
    client, auth, runtime, fake_providers, sms_on, africastalking
):
    await sent_receipt(client, auth, runtime, fake_providers, africastalking)

    response = await client.post(
        REPORTS,
        data={
            "id": "ATXid_0001",
            "status": "Success",
            "phoneNumber": "+" + PAYER,
            "networkCode": "64110",
        },
    )

    assert (response.status_code, response.json()) == (200, {"status": "recorded"})
    receipt = await stored(runtime)
    assert (receipt.status, receipt.delivery_status) == ("delivered", "Success")

    # A late intermediate report does not undo the final one.
    late = await client.post(REPORTS, data={"id": "ATXid_0001", "status": "Buffered"})
    assert late.json() == {"status": "recorded"}
    assert (await stored(runtime)).status == "delivered"


async def test_a_failed_report_marks_it_undelivered_with_the_reason(
    client, auth, runtime, fake_providers, sms_on, africastalking
):
    await sent_receipt(client, auth, runtime, fake_providers, africastalking)

    buffered = await client.post(REPORTS, data={"id": "ATXid_0001", "status": "Buffered"})
    assert buffered.json() == {"status": "recorded"}
    assert ((await stored(runtime)).status, (await stored(runtime)).delivery_status) == (
        "sent",
        "Buffered",
    )
    response = await client.post(
        REPORTS,
        data={"id": "ATXid_0001", "status": "Failed", "failureReason": "UserIsInactive"},
    )

    assert response.json() == {"status": "recorded"}
    receipt = await stored(runtime)
    assert (receipt.status, receipt.failure_reason) == ("undelivered", "UserIsInactive")


async def test_a_forged_report_is_404_and_changes_nothing(
    client, auth, runtime, fake_providers, sms_on, africastalking
):
    await sent_receipt(client, auth, runtime, fake_providers, africastalking)

    for token in ("wrong-token", CALLBACK_TOKEN + "x", "ünïcode", "x" * 500):
        response = await client.post(
            f"/api/webhooks/africastalking/{token}", data={"id": "ATXid_0001", "status": "Failed"}
        )
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "not_found"
    assert (await stored(runtime)).status == "sent"


async def test_unknown_or_unreadable_reports_are_ignored(client, runtime, sms_on):
    unknown = await client.post(REPORTS, data={"id": "ATXid_nobody", "status": "Success"})
    assert (unknown.status_code, unknown.json()) == (200, {"status": "ignored"})
    for body, content_type in [
        (b"", "application/x-www-form-urlencoded"),
        (b"status=Success", "application/x-www-form-urlencoded"),
        (b"\xff\xfe%%%&&&==", "application/x-www-form-urlencoded"),
        (b"&".join(b"f%d=1" % n for n in range(500)), "application/x-www-form-urlencoded"),
        (b'{"id": "ATXid_0001", "status": "Success"}', "application/json"),
        (b"--b\r\nContent-Disposition: form-data\r\n\r\n", "multipart/form-data; boundary=b"),
    ]:
        response = await client.post(REPORTS, content=body, headers={"content-type": content_type})
        assert (response.status_code, response.json()) == (200, {"status": "ignored"}), body


async def test_a_payments_receipts_are_listed_masked_for_its_merchant_only(
    client, auth, runtime, fake_providers, sms_on, africastalking, other_merchant
):
    payment = await sent_receipt(client, auth, runtime, fake_providers, africastalking)

    response = await client.get(f"/v1/payments/{payment['id']}/sms", headers=auth)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    [receipt] = body["data"]
    assert receipt["object"] == "sms_receipt"
    assert receipt["id"].startswith("sms_")
    assert receipt["payment_id"] == payment["id"]
    assert receipt["to"] == MASKED_PAYER
    assert (receipt["status"], receipt["status_code"], receipt["attempts"]) == ("sent", 101, 1)
    assert "UGX 50,000" in receipt["message"]
    assert receipt["sent_at"] is not None
    assert PAYER not in response.text

    other = {"Authorization": f"Bearer {other_merchant.api_key}"}
    hidden = await client.get(f"/v1/payments/{payment['id']}/sms", headers=other)
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "not_found"
    assert (await client.get(f"/v1/payments/{payment['id']}/sms")).status_code == 401
    assert (await client.get("/v1/payments/pay_nobody/sms", headers=auth)).status_code == 404
    assert (await client.get("/v1/payments/%20;drop/sms", headers=auth)).status_code == 404


async def test_a_payment_without_receipts_lists_none(client, auth, fake_providers, sms_on):
    payment = await successful_payment(client, auth, fake_providers)
    response = await client.get(f"/v1/payments/{payment['id']}/sms", headers=auth)
    assert response.json() == {"object": "list", "data": []}


async def test_without_a_configured_token_one_is_generated_kept_and_logged(
    clean_db, fake_providers, caplog
):
    settings = make_settings(
        clean_db,
        africastalking_username="sandbox",
        africastalking_api_key="k",
    )
    caplog.set_level("INFO", logger="app.runtime")
    async with running_app(settings, fake_providers) as (app, http):
        async with app.state.runtime.sessions() as session:
            token = await session.scalar(
                select(ServerSecret.value).where(
                    ServerSecret.name == "africastalking_callback_token"
                )
            )
        assert token
        response = await http.post(
            f"/api/webhooks/africastalking/{token}", data={"id": "x", "status": "Success"}
        )
        assert response.json() == {"status": "ignored"}
    logged = [r.getMessage() for r in caplog.records if "delivery reports" in r.getMessage()]
    assert logged == [
        f"Africa's Talking delivery reports: <your public URL>/api/webhooks/africastalking/{token}"
    ]
    async with running_app(settings, fake_providers) as (app, _http):
        assert app.state.runtime.sms.callback_token_matches(token)


async def test_without_sms_configured_every_report_is_404(clean_db, fake_providers):
    async with running_app(make_settings(clean_db), fake_providers) as (_app, http):
        response = await http.post("/api/webhooks/africastalking/anything", data={"id": "x"})
    assert response.status_code == 404
