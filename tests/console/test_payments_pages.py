"""The payments pages: the list (filters, search, keyset pages, CSV export) and one payment
(fields, timeline, an admin's actions, each audited), over HTTP with the in-process client."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.console import payment_search
from app.events.models import OutboxEvent
from app.merchants.service import create_merchant
from app.operators.models import OperatorAction
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.conftest import count_rows
from tests.console.helpers import (
    ADMIN_EMAIL,
    VIEWER_EMAIL,
    csrf_of,
    make_operator,
    post_form,
    sign_in,
)
from tests.console.payment_fixtures import (
    PHONE,
    insert_payments,
    many_payments,
    needs_review_payment,
    payment_row,
    refund_in_review,
)

NOTE = "MTN support confirmed 50,000 was collected once."
NOON = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
LINK = re.compile(r'href="/console/payments/(pay_[0-9a-f]+)"')


@pytest.fixture
async def admin(client, runtime):
    await make_operator(runtime, ADMIN_EMAIL, "admin")
    assert (await sign_in(client)).status_code == 303


@pytest.fixture
async def viewer(client, runtime):
    await make_operator(runtime, VIEWER_EMAIL, "viewer")
    assert (await sign_in(client, VIEWER_EMAIL)).status_code == 303


def main_part(page: str) -> str:
    return page.split("<main", 1)[1]


def listed(page: str) -> list[str]:
    """The payment ids the list shows, in its order."""
    return LINK.findall(main_part(page))


async def audit_entries(runtime, action: str) -> list[OperatorAction]:
    async with runtime.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(OperatorAction)
                    .where(OperatorAction.action == action)
                    .order_by(OperatorAction.id)
                )
            ).all()
        )


async def status_of(client, auth, payment_id: str) -> str:
    status: str = (await client.get(f"/v1/payments/{payment_id}", headers=auth)).json()["status"]
    return status


def page_path(payment_id: str) -> str:
    return f"/console/payments/{payment_id}"


# --- the list ----------------------------------------------------------------------------------
async def test_the_list_shows_each_payment_with_a_masked_number(client, merchant, payments, admin):
    paid = await payments.successful(amount="50000")
    page = await client.get("/console/payments")
    assert page.status_code == 200
    html = main_part(page.text)
    assert f'<a class="mono" href="/console/payments/{paid["id"]}">{paid["order_id"]}</a>' in html
    assert "Kampala Electronics" in html
    assert "UGX 50,000" in html
    assert "MTN MoMo" in html
    assert "2567*****456" in html
    assert PHONE not in page.text
    assert 'class="status status-successful"' in html
    # The search box and its button, as the browser tests find them.
    assert 'id="q" name="q"' in html
    assert ">Search</button>" in html


async def test_filters_by_status_provider_and_merchant(client, runtime, merchant, admin):
    other = await create_merchant(
        runtime.sessions, name="Jinja Gadgets", callback_url="https://other.example/hooks"
    )
    failed, airtel, elsewhere = await insert_payments(
        runtime,
        [
            payment_row(merchant.id, at=NOON, status="failed"),
            payment_row(
                merchant.id,
                at=NOON - timedelta(minutes=1),
                provider="airtel_money",
                phone="256752123456",
            ),
            payment_row(other.id, at=NOON - timedelta(minutes=2)),
        ],
    )
    everything = await client.get("/console/payments")
    assert listed(everything.text) == [failed.id, airtel.id, elsewhere.id]
    by_status = await client.get("/console/payments", params={"status": "failed"})
    assert listed(by_status.text) == [failed.id]
    assert '<option value="failed" selected>' in by_status.text
    by_provider = await client.get("/console/payments", params={"provider": "airtel_money"})
    assert listed(by_provider.text) == [airtel.id]
    by_merchant = await client.get("/console/payments", params={"merchant": other.id})
    assert listed(by_merchant.text) == [elsewhere.id]
    assert f'<option value="{other.id}" selected>Jinja Gadgets</option>' in by_merchant.text
    both = await client.get(
        "/console/payments", params={"merchant": merchant.id, "status": "successful"}
    )
    assert listed(both.text) == [airtel.id]


async def test_an_unknown_filter_value_is_named_and_left_out(client, runtime, merchant, admin):
    (row,) = await insert_payments(runtime, [payment_row(merchant.id, at=NOON)])
    page = await client.get("/console/payments", params={"status": "paid", "from": "4 March"})
    assert page.status_code == 200
    assert "There is no status &#39;paid&#39;" in page.text
    assert "is not a date" in page.text
    assert listed(page.text) == [row.id]


async def test_the_date_range_is_read_in_the_operators_timezone(client, runtime, merchant, admin):
    """Kampala is UTC+3: 22:30 UTC on the 4th is 01:30 on the 5th there."""
    late, evening, next_day = await insert_payments(
        runtime,
        [
            payment_row(merchant.id, at=datetime(2031, 3, 4, 22, 30, tzinfo=UTC)),
            payment_row(merchant.id, at=datetime(2031, 3, 4, 20, 30, tzinfo=UTC)),
            payment_row(merchant.id, at=datetime(2031, 3, 5, 21, 30, tzinfo=UTC)),
        ],
    )
    fifth = await client.get("/console/payments", params={"from": "2031-03-05", "to": "2031-03-05"})
    assert listed(fifth.text) == [late.id]
    fourth = await client.get("/console/payments", params={"to": "2031-03-04"})
    assert listed(fourth.text) == [evening.id]
    since = await client.get("/console/payments", params={"from": "2031-03-05"})
    assert listed(since.text) == [next_day.id, late.id]
    assert "5 Mar 2031, 01:30 EAT" in fifth.text


async def test_search_by_payment_id_order_id_reference_and_transaction_id(
    client, runtime, merchant, admin
):
    wanted, other = await insert_payments(
        runtime,
        [
            payment_row(merchant.id, at=NOON, order_id="ORD-2002", transaction_id="1234567890"),
            payment_row(merchant.id, at=NOON - timedelta(minutes=1), order_id="ORD-2001"),
        ],
    )
    for typed in (wanted.id, "ORD-2002", wanted.provider_reference, "1234567890"):
        found = await client.get("/console/payments", params={"q": typed})
        assert listed(found.text) == [wanted.id], typed
        assert f'value="{typed}"' in found.text
    nothing = await client.get("/console/payments", params={"q": "no such <thing>"})
    assert listed(nothing.text) == []
    assert "No payments match these filters" in nothing.text
    assert listed((await client.get("/console/payments", params={"q": "ORD-2001"})).text) == [
        other.id
    ]


async def test_search_by_the_last_digits_of_the_phone_number(client, runtime, merchant, admin):
    ends_654, ends_456, ordered_as_digits = await insert_payments(
        runtime,
        [
            payment_row(merchant.id, at=NOON, phone="256772987654"),
            payment_row(merchant.id, at=NOON - timedelta(minutes=1), phone="256772123456"),
            payment_row(merchant.id, at=NOON - timedelta(minutes=2), order_id="7654"),
        ],
    )
    suffix = await client.get("/console/payments", params={"q": "87654"})
    assert listed(suffix.text) == [ends_654.id]
    assert "256772987654" not in suffix.text
    assert "Numbers ending in" in suffix.text
    three = await client.get("/console/payments", params={"q": "456"})
    assert listed(three.text) == [ends_456.id, ordered_as_digits.id]  # both numbers end so
    whole = await client.get("/console/payments", params={"q": "+256 772 123 456"})
    assert ends_456.id in listed(whole.text)
    assert ends_654.id not in listed(whole.text)
    # Digits that are a whole id find that payment, not numbers ending so.
    as_order = await client.get("/console/payments", params={"q": "7654"})
    assert listed(as_order.text) == [ordered_as_digits.id]
    # Fewer than three digits are no phone search.
    assert listed((await client.get("/console/payments", params={"q": "56"})).text) == []


async def test_a_phone_search_reads_a_bounded_window_of_payments(
    client, runtime, merchant, admin, monkeypatch
):
    """The suffix is matched among the newest PHONE_SEARCH_WINDOW payments (of the other
    filters, below the cursor), never the whole table."""
    monkeypatch.setattr(payment_search, "PHONE_SEARCH_WINDOW", 5)
    newest = await many_payments(runtime, merchant.id, 5, newest=NOON, phone="256772000111")
    (old,) = await insert_payments(
        runtime, [payment_row(merchant.id, at=NOON - timedelta(days=1), phone="256772999888")]
    )
    recent = await client.get("/console/payments", params={"q": "9888"})
    assert listed(recent.text) == []
    assert "among the newest 5 payments" in recent.text
    further = await client.get("/console/payments", params={"q": "9888", "to": "2031-03-03"})
    assert listed(further.text) == [old.id]
    assert listed((await client.get("/console/payments", params={"q": "0111"})).text) == [
        row.id for row in newest
    ]


async def test_cursor_pages_walk_older_and_back_newer(client, runtime, merchant, admin):
    rows = await many_payments(runtime, merchant.id, 120, newest=NOON)
    ids = [row.id for row in rows]
    first = await client.get("/console/payments")
    assert listed(first.text) == ids[:50]
    assert "← Newer" not in first.text
    older = re.search(r'href="([^"]+)" rel="next">Older →', first.text)
    assert older is not None
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert listed(second.text) == ids[50:100]
    third_link = re.search(r'href="([^"]+)" rel="next">Older →', second.text)
    assert third_link is not None
    third = await client.get(third_link.group(1).replace("&amp;", "&"))
    assert listed(third.text) == ids[100:]
    assert "Older →" not in third.text
    newer = re.search(r'href="([^"]+)" rel="prev">← Newer', third.text)
    assert newer is not None
    back = await client.get(newer.group(1).replace("&amp;", "&"))
    assert listed(back.text) == ids[50:100]
    newest = re.search(r'href="([^"]+)" rel="prev">← Newer', back.text)
    assert newest is not None
    top = await client.get(newest.group(1).replace("&amp;", "&"))
    assert listed(top.text) == ids[:50]
    # A mangled cursor shows the newest page.
    assert listed((await client.get("/console/payments?before=nonsense")).text) == ids[:50]


async def test_pages_keep_their_filters(client, runtime, merchant, admin):
    await many_payments(runtime, merchant.id, 60, newest=NOON, status="failed")
    await many_payments(runtime, merchant.id, 10, newest=NOON + timedelta(hours=1))
    first = await client.get("/console/payments", params={"status": "failed"})
    older = re.search(r'href="([^"]+)" rel="next">Older →', first.text)
    assert older is not None
    assert "status=failed" in older.group(1)
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert len(listed(second.text)) == 10
    assert 'class="status status-successful"' not in main_part(second.text)


async def test_the_csv_export_streams_the_filtered_payments_masked_and_audited(
    client, runtime, merchant, admin
):
    await insert_payments(
        runtime,
        [
            payment_row(merchant.id, at=NOON, order_id="ORD-1", amount=50_000),
            payment_row(
                merchant.id, at=NOON - timedelta(minutes=1), order_id="=HYPERLINK(1)", amount=7
            ),
            payment_row(merchant.id, at=NOON - timedelta(minutes=2), status="failed"),
        ],
    )
    page = await client.get("/console/payments", params={"status": "successful"})
    assert 'href="/console/payments.csv?status=successful"' in page.text
    assert "at most 100,000 rows" in page.text
    export = await client.get("/console/payments.csv", params={"status": "successful"})
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    assert PHONE not in export.text
    table = list(csv.DictReader(io.StringIO(export.text)))
    assert [row["order_id"] for row in table] == ["ORD-1", "'=HYPERLINK(1)"]
    first = table[0]
    assert first["amount"] == "50000"
    assert first["currency"] == "UGX"
    assert first["phone_number"] == "2567*****456"
    assert first["created_at"] == "2031-03-04T12:00:00Z"
    assert first["merchant_name"] == "Kampala Electronics"
    assert first["status"] == "successful"
    (entry,) = await audit_entries(runtime, "payments.export")
    assert entry.detail == {"status": "successful"}
    assert entry.actor == ADMIN_EMAIL


async def test_the_export_goes_past_one_chunk_and_stops_at_its_limit(
    client, runtime, merchant, viewer, monkeypatch
):
    monkeypatch.setattr(payment_search, "EXPORT_CHUNK", 7)
    monkeypatch.setattr(payment_search, "EXPORT_LIMIT", 30)
    rows = await many_payments(runtime, merchant.id, 40, newest=NOON)
    export = await client.get("/console/payments.csv")
    table = list(csv.DictReader(io.StringIO(export.text)))
    assert [row["id"] for row in table] == [row.id for row in rows[:30]]


# --- one payment -------------------------------------------------------------------------------
async def test_the_payment_page_shows_every_field_and_the_timeline(
    client, runtime, auth, payments, admin
):
    paid = await payments.successful(amount="50000", transaction_id="txn-77")
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.payment_id == paid["id"])
            .values(delivery_status="delivered", attempt_count=1)
        )
    page = await client.get(page_path(paid["id"]))
    assert page.status_code == 200
    html = main_part(page.text)
    fields = html.split('<dl class="fields"', 1)[1].split("</dl>", 1)[0]
    for shown in (
        paid["id"],
        paid["order_id"],
        "Kampala Electronics",
        paid["provider_reference"],
        "txn-77",
        "UGX 50,000",
        "UGX 0",
        "MTN MoMo",
        "2567*****456",
        "status-successful",
        "EAT",
    ):
        assert shown in fields, shown
    assert PHONE not in page.text
    timeline = html.split('<ol class="timeline"', 1)[1].split("</ol>", 1)[0]
    entries = re.findall(r"<li[ >].*?</li>", timeline, re.S)
    assert len(entries) >= 3
    assert any("pending → successful" in entry for entry in entries)
    assert any("payment.succeeded" in entry and "delivered" in entry for entry in entries), timeline
    assert any("status of the payment: successful" in entry for entry in entries)
    events = html.split('<table id="events"', 1)[1].split("</table>", 1)[0]
    assert "payment.succeeded" in events
    assert "status-delivered" in events


async def test_an_unknown_payment_is_a_404_page(client, admin):
    for path in ("/console/payments/pay_nothing", "/console/payments/%00x"):
        missing = await client.get(path)
        assert missing.status_code == 404
        assert "There is no payment" in missing.text


async def test_a_viewer_sees_no_forms_and_never_the_whole_number(
    client, runtime, auth, payments, viewer
):
    paid = await payments.successful()
    review = await needs_review_payment(runtime, client, auth, "ORD-VIEW-1")
    for payment_id in (paid["id"], review["id"]):
        page = await client.get(page_path(payment_id))
        assert page.status_code == 200
        assert "<form" not in main_part(page.text)
        assert "Reveal number" not in page.text
        assert PHONE not in page.text
        assert '<ol class="timeline"' in page.text


async def test_a_viewer_cannot_act_even_with_a_valid_token(
    client, runtime, auth, payments, fake_refunds, viewer
):
    paid = await payments.successful()
    review = await needs_review_payment(runtime, client, auth, "ORD-VIEW-2")
    refund_id = await refund_in_review(runtime, client, auth, paid["id"], fake_refunds)
    async with runtime.sessions() as session:
        event_id = await session.scalar(
            select(OutboxEvent.id).where(OutboxEvent.payment_id == paid["id"]).limit(1)
        )
    token = csrf_of(await client.get(page_path(paid["id"])))
    actions_before = await count_rows(runtime, "operator_actions")
    refunds_before = await count_rows(runtime, "refunds")
    for action, fields in (
        (f"/console/payments/{review['id']}/resolve", {"status": "successful", "note": NOTE}),
        (f"/console/payments/{paid['id']}/refresh", {}),
        (f"/console/payments/{paid['id']}/refund", {"amount": "", "reason": ""}),
        (f"/console/payments/{paid['id']}/reveal-phone", {}),
        (f"/console/refunds/{refund_id}/resolve", {"status": "succeeded", "note": NOTE}),
        (f"/console/events/{event_id}/redeliver", {}),
    ):
        refused = await client.post(action, data={**fields, "csrf_token": token})
        assert refused.status_code == 403, action
        assert "Only an admin can do this" in refused.text
        assert PHONE not in refused.text
    assert await status_of(client, auth, review["id"]) == "needs_review"
    assert await count_rows(runtime, "refunds") == refunds_before
    assert await count_rows(runtime, "operator_actions") == actions_before


async def test_a_post_without_the_csrf_token_is_refused(client, runtime, auth, admin):
    review = await needs_review_payment(runtime, client, auth, "ORD-CSRF-1")
    for data in (
        {"status": "successful", "note": NOTE},
        {"status": "successful", "note": NOTE, "csrf_token": "forged"},
    ):
        refused = await client.post(f"/console/payments/{review['id']}/resolve", data=data)
        assert refused.status_code == 403
        assert "security token" in refused.text
    bare = await client.post(f"/console/payments/{review['id']}/refresh", data={})
    assert bare.status_code == 403
    assert await status_of(client, auth, review["id"]) == "needs_review"
    assert await count_rows(runtime, "operator_actions", "action LIKE 'payment.%'") == 0


# --- an admin's actions ------------------------------------------------------------------------
async def test_an_admin_resolves_a_payment_in_review(client, runtime, auth, admin):
    review = await needs_review_payment(runtime, client, auth, "ORD-RES-1")
    page = await client.get(page_path(review["id"]))
    html = main_part(page.text)
    assert '<textarea id="note" name="note"' in html
    assert '<select id="resolve-status" name="status">' in html
    assert ">Resolve</button>" in html
    resolved = await post_form(
        client,
        page_path(review["id"]),
        f"/console/payments/{review['id']}/resolve",
        {"status": "successful", "note": NOTE},
    )
    assert resolved.status_code == 303
    assert resolved.headers["location"].startswith(page_path(review["id"]) + "?notice=")
    assert await status_of(client, auth, review["id"]) == "successful"
    (entry,) = await audit_entries(runtime, "payment.resolve")
    assert (entry.actor, entry.target_id, entry.source) == (ADMIN_EMAIL, review["id"], "127.0.0.1")
    after = await client.get(resolved.headers["location"])
    assert 'class="notice"' in after.text
    assert "resolved as successful" in after.text
    assert "needs_review → successful" in after.text
    assert ">Resolve</button>" not in after.text  # only a payment in review offers it


async def test_a_short_note_is_refused_with_422_and_nothing_changes(client, runtime, auth, admin):
    review = await needs_review_payment(runtime, client, auth, "ORD-RES-2")
    refused = await post_form(
        client,
        page_path(review["id"]),
        f"/console/payments/{review['id']}/resolve",
        {"status": "failed", "note": "ok"},
    )
    assert refused.status_code == 422
    assert "a note of at least 10 characters must say why" in refused.text
    assert '<option value="failed" selected>' in refused.text  # what was typed stays
    assert await status_of(client, auth, review["id"]) == "needs_review"
    assert await count_rows(runtime, "operator_actions", "action = 'payment.resolve'") == 0


async def test_an_admin_resolves_a_refund_in_review(
    client, runtime, auth, payments, fake_refunds, admin
):
    paid = await payments.successful()
    refund_id = await refund_in_review(runtime, client, auth, paid["id"], fake_refunds)
    page = await client.get(page_path(paid["id"]))
    assert f'action="/console/refunds/{refund_id}/resolve"' in page.text
    short = await post_form(
        client,
        page_path(paid["id"]),
        f"/console/refunds/{refund_id}/resolve",
        {"status": "succeeded", "note": "short"},
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    resolved = await post_form(
        client,
        page_path(paid["id"]),
        f"/console/refunds/{refund_id}/resolve",
        {"status": "succeeded", "note": "MTN confirmed 20,000 went back to the payer."},
    )
    assert resolved.status_code == 303
    assert resolved.headers["location"].startswith(page_path(paid["id"]))
    refund = (await client.get(f"/v1/refunds/{refund_id}", headers=auth)).json()
    assert refund["status"] == "succeeded"
    (entry,) = await audit_entries(runtime, "refund.resolve")
    assert (entry.actor, entry.target_id) == (ADMIN_EMAIL, refund_id)
    after = await client.get(resolved.headers["location"])
    assert "UGX 20,000" in after.text.split("<dt>Refunded</dt>", 1)[1].split("</dd>", 1)[0]


async def test_an_admin_refreshes_a_payment_from_its_provider(
    client, runtime, auth, fake_providers, admin
):
    created = await client.post(
        "/v1/payments",
        json={
            "order_id": "ORD-REF-1",
            "amount": "50000",
            "phone_number": "0772 123 456",
            "provider": "mtn_momo",
        },
        headers=auth,
    )
    payment_id = created.json()["id"]
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000, currency="UGX"
    )
    refreshed = await post_form(
        client, page_path(payment_id), f"/console/payments/{payment_id}/refresh", {}
    )
    assert refreshed.status_code == 303
    assert await status_of(client, auth, payment_id) == "successful"
    (entry,) = await audit_entries(runtime, "payment.refresh")
    assert entry.target_id == payment_id
    assert entry.detail == {"provider": "mtn_momo", "from": "pending", "to": "successful"}
    after = await client.get(refreshed.headers["location"])
    assert "now successful (was pending)" in after.text


async def test_a_provider_that_cannot_be_reached_is_a_notice_not_an_error(
    client, runtime, auth, fake_providers, admin
):
    created = await client.post(
        "/v1/payments",
        json={"order_id": "ORD-REF-2", "amount": "50000", "phone_number": "0772 123 456"},
        headers=auth,
    )
    payment_id = created.json()["id"]
    fake_providers[Provider.MTN_MOMO].unavailable = True
    refreshed = await post_form(
        client, page_path(payment_id), f"/console/payments/{payment_id}/refresh", {}
    )
    assert refreshed.status_code == 303
    after = await client.get(refreshed.headers["location"])
    assert after.status_code == 200
    assert "MTN MoMo could not be reached" in after.text
    assert "the payment stays pending" in after.text
    assert await status_of(client, auth, payment_id) == "pending"
    (entry,) = await audit_entries(runtime, "payment.refresh")
    assert entry.detail["error"] == "ProviderUnavailable"


async def test_an_admin_redelivers_an_event(client, runtime, payments, admin):
    paid = await payments.successful()
    async with runtime.sessions.begin() as session:
        event = await session.scalar(
            select(OutboxEvent).where(OutboxEvent.payment_id == paid["id"])
        )
        assert event is not None
        event_id = event.id
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == event_id)
            .values(delivery_status="undeliverable", attempt_count=8)
        )
    page = await client.get(page_path(paid["id"]))
    assert f'action="/console/events/{event_id}/redeliver"' in page.text
    sent = await post_form(
        client, page_path(paid["id"]), f"/console/events/{event_id}/redeliver", {}
    )
    assert sent.status_code == 303
    assert sent.headers["location"].startswith(page_path(paid["id"]))
    async with runtime.sessions() as session:
        again = await session.get(OutboxEvent, event_id)
        assert again is not None
        assert again.delivery_status == "pending"
    (entry,) = await audit_entries(runtime, "event.redeliver")
    assert (entry.actor, entry.target_id) == (ADMIN_EMAIL, event_id)
    assert entry.detail == {"payment_id": paid["id"], "type": "payment.succeeded"}
    missing = await post_form(
        client, page_path(paid["id"]), "/console/events/evt_none/redeliver", {}
    )
    assert missing.status_code == 404


async def test_an_admin_refunds_part_of_a_payment(client, runtime, auth, payments, admin):
    paid = await payments.successful(amount="50000")
    page = await client.get(page_path(paid["id"]))
    assert f'action="/console/payments/{paid["id"]}/refund"' in page.text
    made = await post_form(
        client,
        page_path(paid["id"]),
        f"/console/payments/{paid['id']}/refund",
        {"amount": "20,000", "reason": "Returned the phone"},
    )
    assert made.status_code == 303
    listed_refunds = (
        await client.get(f"/v1/refunds?payment_id={paid['id']}", headers=auth)
    ).json()["data"]
    assert [(r["amount"], r["reason"]) for r in listed_refunds] == [("20000", "Returned the phone")]
    (entry,) = await audit_entries(runtime, "refund.create")
    assert entry.target_id == listed_refunds[0]["id"]
    assert entry.detail["payment_id"] == paid["id"]
    assert entry.detail["amount_minor"] == 20000
    after = await client.get(made.headers["location"])
    assert "UGX 20,000" in after.text
    assert listed_refunds[0]["id"] in after.text


async def test_a_refund_the_rules_refuse_is_a_4xx_page_with_the_reason(
    client, runtime, auth, payments, admin
):
    paid = await payments.successful(amount="50000")
    too_much = await post_form(
        client,
        page_path(paid["id"]),
        f"/console/payments/{paid['id']}/refund",
        {"amount": "60000", "reason": ""},
    )
    assert too_much.status_code == 422
    assert "UGX 50000 of this payment&#39;s UGX 50000 is still refundable" in too_much.text
    assert 'value="60000"' in too_much.text
    not_a_number = await post_form(
        client,
        page_path(paid["id"]),
        f"/console/payments/{paid['id']}/refund",
        {"amount": "lots", "reason": ""},
    )
    assert not_a_number.status_code == 422
    review = await needs_review_payment(runtime, client, auth, "ORD-NR-1")
    page = await client.get(page_path(review["id"]))
    assert f'/console/payments/{review["id"]}/refund"' not in page.text  # not offered
    not_refundable = await client.post(
        f"/console/payments/{review['id']}/refund",
        data={"amount": "", "reason": "", "csrf_token": csrf_of(page)},
    )
    assert not_refundable.status_code == 409
    assert "Only a successful payment can be refunded" in not_refundable.text
    assert await count_rows(runtime, "refunds") == 0
    assert await count_rows(runtime, "operator_actions", "action = 'refund.create'") == 0


async def test_an_admin_reveals_the_number_once_and_it_is_audited(client, runtime, payments, admin):
    paid = await payments.successful()
    page = await client.get(page_path(paid["id"]))
    assert PHONE not in page.text
    assert ">Reveal number</button>" in page.text
    revealed = await post_form(
        client, page_path(paid["id"]), f"/console/payments/{paid['id']}/reveal-phone", {}
    )
    assert revealed.status_code == 200
    assert f'<span class="mono" id="full-phone">{PHONE}</span>' in revealed.text
    assert PHONE not in revealed.headers.get("set-cookie", "")
    (entry,) = await audit_entries(runtime, "payment.reveal_phone")
    assert (entry.actor, entry.target_id) == (ADMIN_EMAIL, paid["id"])
    assert PHONE not in str(entry.detail)
    # Loading the page again shows the masked number again.
    assert PHONE not in (await client.get(page_path(paid["id"]))).text


async def test_actions_on_unknown_ids_are_404_pages(client, runtime, payments, admin):
    paid = await payments.successful()
    token = csrf_of(await client.get(page_path(paid["id"])))
    for action, fields in (
        ("/console/payments/pay_none/refresh", {}),
        ("/console/payments/pay_none/resolve", {"status": "failed", "note": NOTE}),
        ("/console/payments/pay_none/refund", {"amount": ""}),
        ("/console/payments/pay_none/reveal-phone", {}),
        ("/console/refunds/re_none/resolve", {"status": "failed", "note": NOTE}),
        ("/console/events/evt_none/redeliver", {}),
    ):
        missing = await client.post(action, data={**fields, "csrf_token": token})
        assert missing.status_code == 404, action
        assert "There is no" in missing.text
