"""The overview: its numbers for a known mix of payments, refunds and events (computed by the
database, on SQLite and PostgreSQL alike), and the page that shows them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.console.stats import load_overview
from app.db import new_id, utcnow
from app.events.models import OutboxEvent
from app.payments.models import Payment
from app.refunds.models import Refund
from app.vocabulary import Provider
from tests.console.helpers import VIEWER_EMAIL, make_operator, sign_in

MTN, AIRTEL = "mtn_momo", "airtel_money"
# Half past noon: the chart's hours run from 13:00 the day before to the current 12:00 hour.
NOW = datetime(2031, 3, 4, 12, 30, tzinfo=UTC)


async def add_payment(
    runtime,
    merchant_id: str,
    *,
    status: str,
    at: datetime,
    provider: str = MTN,
    amount: int = 50_000,
    settled_after: float | None = None,
) -> str:
    """A payment row as the gateway leaves it, created at ``at``; settled ``settled_after``
    seconds later (completed_at), when given."""
    payment_id = new_id("pay")
    completed = at + timedelta(seconds=settled_after) if settled_after is not None else None
    async with runtime.sessions.begin() as session:
        session.add(
            Payment(
                id=payment_id,
                merchant_id=merchant_id,
                order_id=f"ORD-{uuid.uuid4().hex[:12]}",
                provider=provider,
                status=status,
                amount_minor=amount,
                currency="UGX",
                phone_number="256772123456",
                description="Order",
                provider_reference=str(uuid.uuid4()),
                created_at=at,
                updated_at=completed or at,
                completed_at=completed,
            )
        )
    return payment_id


async def add_refund(runtime, payment_id: str, merchant_id: str, *, status: str, at, amount):
    async with runtime.sessions.begin() as session:
        session.add(
            Refund(
                id=new_id("re"),
                merchant_id=merchant_id,
                payment_id=payment_id,
                provider=MTN,
                status=status,
                amount_minor=amount,
                currency="UGX",
                provider_reference=str(uuid.uuid4()),
                created_at=at,
                updated_at=at,
            )
        )


async def add_event(
    runtime,
    payment_id: str,
    merchant_id: str,
    *,
    delivery: str,
    attempts: int,
    kind: str = "payment.succeeded",
):
    async with runtime.sessions.begin() as session:
        session.add(
            OutboxEvent(
                id=new_id("evt"),
                merchant_id=merchant_id,
                payment_id=payment_id,
                type=kind,  # one event of a type per payment
                payload={},
                delivery_status=delivery,
                attempt_count=attempts,
                created_at=NOW - timedelta(minutes=attempts),
            )
        )


@pytest.fixture
async def known_mix(runtime, merchant):
    """Within the last 24 h of NOW:
    MTN    3 successful (settled in 10, 20, 30 s), 1 failed (40 s), 1 expired (300 s),
           1 pending, 1 needs_review
    Airtel 2 successful (20,000 each; 5 and 15 s), 2 failed (60 s each)
    3 days before: 2 MTN successful, 1 Airtel failed (in the 7 days only)
    10 days before: 1 MTN successful, 1 pending, 1 needs_review (in neither; still waiting)
    """
    mid = merchant.id
    hour = timedelta(hours=1)
    paid = await add_payment(
        runtime, mid, status="successful", at=NOW - timedelta(minutes=10), settled_after=10
    )
    await add_payment(runtime, mid, status="successful", at=NOW - 2 * hour, settled_after=20)
    # 12:45 the day before: in the 24 h, but before the chart's first hour (13:00).
    await add_payment(
        runtime,
        mid,
        status="successful",
        at=NOW - timedelta(hours=23, minutes=45),
        settled_after=30,
    )
    await add_payment(runtime, mid, status="failed", at=NOW - 2 * hour, settled_after=40)
    await add_payment(runtime, mid, status="expired", at=NOW - 5 * hour, settled_after=300)
    await add_payment(runtime, mid, status="pending", at=NOW - timedelta(minutes=1))
    await add_payment(runtime, mid, status="needs_review", at=NOW - 5 * hour, settled_after=90)
    for settle in (5, 15):
        await add_payment(
            runtime,
            mid,
            status="successful",
            provider=AIRTEL,
            amount=20_000,
            at=NOW - 2 * hour,
            settled_after=settle,
        )
    for _ in range(2):
        await add_payment(
            runtime, mid, status="failed", provider=AIRTEL, at=NOW - 3 * hour, settled_after=60
        )
    days = timedelta(days=1)
    for _ in range(2):
        await add_payment(runtime, mid, status="successful", at=NOW - 3 * days, settled_after=7)
    await add_payment(
        runtime, mid, status="failed", provider=AIRTEL, at=NOW - 3 * days, settled_after=9
    )
    await add_payment(runtime, mid, status="successful", at=NOW - 10 * days, settled_after=1)
    await add_payment(runtime, mid, status="pending", at=NOW - 10 * days)
    await add_payment(runtime, mid, status="needs_review", at=NOW - 10 * days, settled_after=1)

    for amount in (10_000, 5_000):
        await add_refund(runtime, paid, mid, status="succeeded", at=NOW - hour, amount=amount)
    await add_refund(runtime, paid, mid, status="pending", at=NOW - hour, amount=1_000)
    await add_refund(runtime, paid, mid, status="needs_review", at=NOW - 10 * days, amount=500)

    await add_event(runtime, paid, mid, delivery="failed", attempts=8)
    await add_event(runtime, paid, mid, delivery="pending", attempts=2, kind="payment.failed")
    # Not tried yet, and delivered: neither is failing.
    await add_event(runtime, paid, mid, delivery="pending", attempts=0, kind="payment.expired")
    await add_event(runtime, paid, mid, delivery="delivered", attempts=1, kind="refund.failed")
    return paid


async def test_the_last_24_hours_in_numbers(runtime, known_mix):
    found = await load_overview(runtime.engine, "24h", now=NOW)
    stats = found.stats
    assert stats.since == NOW - timedelta(hours=24)
    assert stats.overall.total.count == 11
    assert stats.overall.total.amounts == {"UGX": 9 * 50_000 + 2 * 20_000}
    assert stats.overall.successful == 5
    assert stats.overall.settled == 9
    assert stats.overall.success_rate == pytest.approx(5 / 9)

    mtn, airtel = (next(p for p in stats.providers if p.provider == name) for name in (MTN, AIRTEL))
    assert [p.provider for p in stats.providers] == [AIRTEL, MTN]
    assert {status: mtn.count(status) for status in mtn.by_status} == {
        "successful": 3,
        "failed": 1,
        "expired": 1,
        "pending": 1,
        "needs_review": 1,
    }
    assert mtn.by_status["successful"].amounts == {"UGX": 150_000}
    assert mtn.success_rate == pytest.approx(3 / 5)
    assert (airtel.count("successful"), airtel.count("failed")) == (2, 2)
    assert airtel.by_status["successful"].amounts == {"UGX": 40_000}
    assert airtel.success_rate == pytest.approx(0.5)

    # Medians over settled payments (successful, failed, expired) by created→completed.
    assert mtn.median_settle_seconds == pytest.approx(30)  # 10 20 30 40 300
    assert airtel.median_settle_seconds == pytest.approx(37.5)  # 5 15 60 60
    assert stats.overall.median_settle_seconds == pytest.approx(30)

    assert stats.refunds["succeeded"].count == 2
    assert stats.refunds["succeeded"].amounts == {"UGX": 15_000}
    assert stats.refunds["pending"].count == 1
    assert "needs_review" not in stats.refunds  # ten days old: outside the window


async def test_the_last_7_days_take_in_older_payments(runtime, known_mix):
    stats = (await load_overview(runtime.engine, "7d", now=NOW)).stats
    assert stats.overall.total.count == 14
    assert stats.overall.successful == 7
    assert stats.overall.settled == 12
    airtel = next(p for p in stats.providers if p.provider == AIRTEL)
    assert airtel.success_rate == pytest.approx(2 / 5)


async def test_what_waits_is_counted_over_all_time(runtime, known_mix):
    backlog = (await load_overview(runtime.engine, "24h", now=NOW)).backlog
    assert backlog.pending_payments == 2
    assert backlog.needs_review_payments == 2
    assert (backlog.pending_refunds, backlog.needs_review_refunds) == (1, 1)
    # Out of attempts, or retrying after a refusal; never an event not yet tried or delivered.
    assert (backlog.events_failed, backlog.events_retrying) == (1, 1)
    assert backlog.events_failing == 2
    assert [event.delivery_status for event in backlog.latest_failing_events] == [
        "pending",
        "failed",
    ]
    assert backlog.latest_failing_events[0].payment_id == known_mix


async def test_payments_per_hour_by_outcome(runtime, known_mix):
    hours = (await load_overview(runtime.engine, "24h", now=NOW)).hours
    assert len(hours) == 24
    assert hours[0].start == datetime(2031, 3, 3, 13, tzinfo=UTC)
    assert hours[-1].start == datetime(2031, 3, 4, 12, tzinfo=UTC)
    by_start = {hour.start.hour: hour.counts for hour in hours}
    assert by_start[12] == {
        "successful": 1,
        "failed": 0,
        "expired": 0,
        "pending": 1,
        "needs_review": 0,
    }
    assert by_start[10] == {  # NOW - 2 h: 10:30
        "successful": 3,
        "failed": 1,
        "expired": 0,
        "pending": 0,
        "needs_review": 0,
    }
    assert by_start[9]["failed"] == 2
    assert (by_start[7]["expired"], by_start[7]["needs_review"]) == (1, 1)
    # The one at 12:45 the day before is in the 24 h numbers but before the chart's first hour.
    assert sum(sum(hour.counts.values()) for hour in hours) == 10


async def test_an_empty_gateway(runtime):
    found = await load_overview(runtime.engine, "7d", now=NOW)
    assert found.stats.overall.total.count == 0
    assert found.stats.overall.success_rate is None
    assert found.stats.overall.median_settle_seconds is None
    assert found.stats.providers == []
    assert found.backlog.events_failing == 0
    assert all(sum(hour.counts.values()) == 0 for hour in found.hours)


# --- the page -----------------------------------------------------------------------------------
@pytest.fixture
async def viewer(client, runtime):
    await make_operator(runtime, VIEWER_EMAIL, "viewer")
    assert (await sign_in(client, VIEWER_EMAIL)).status_code == 303


def cell(page: str, provider: str, status: str) -> str:
    row = re.search(rf'<tr[^>]*data-provider="{provider}">(.*?)</tr>', page, re.S)
    assert row is not None, f"no row for {provider}"
    found = re.search(rf'<td class="num" data-status="{status}">(.*?)</td>', row.group(1), re.S)
    assert found is not None
    return found.group(1)


async def test_the_overview_page_shows_the_numbers_and_the_chart(
    client, runtime, merchant, payments, viewer
):
    await payments.successful(amount="50000")
    await payments.successful(provider=Provider.AIRTEL_MONEY, amount="20000")
    now = utcnow()
    await add_payment(runtime, merchant.id, status="failed", at=now - timedelta(hours=1))
    await add_payment(runtime, merchant.id, status="needs_review", at=now - timedelta(hours=2))
    await add_payment(runtime, merchant.id, status="successful", at=now - timedelta(days=3))
    failing = await add_payment(runtime, merchant.id, status="failed", at=now)
    await add_event(runtime, failing, merchant.id, delivery="failed", attempts=8)

    page = await client.get("/console/overview")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Overview</h1>" in html
    assert re.search(r'<svg [^>]*id="hourly-chart"[^>]*role="img"', html)
    assert re.search(r'<svg [^>]*role="img"[^>]*aria-label="Payments per hour', html)
    assert html.count('<g class="hour">') == 24
    for label in ("Successful (2)", "Failed (2)", "Needs review (1)"):
        assert label in html
    assert 'id="provider-success"' in html

    # 24 h: MTN 1 successful of 3 settled (2 failed); Airtel 1 of 1.
    assert cell(html, "mtn_momo", "successful").startswith("1<br>")
    assert "UGX 50,000" in cell(html, "mtn_momo", "successful")
    assert cell(html, "mtn_momo", "failed").startswith("2")
    assert cell(html, "airtel_money", "successful").startswith("1")
    assert "UGX 20,000" in cell(html, "airtel_money", "successful")
    assert cell(html, "all", "needs_review").startswith("1")
    assert re.search(r'id="card-success-rate">\s*<div class="value">50\.0%', html)
    assert re.search(r'href="/console/payments\?status=needs_review">1</a>', html), (
        "needs_review count links to the payments filtered by it"
    )
    assert re.search(r'id="card-events-failing">\s*<div class="value"><a [^>]*>1</a>', html)
    assert f'href="/console/payments/{failing}"' in html

    week = await client.get("/console/overview", params={"period": "7d"})
    assert cell(week.text, "mtn_momo", "successful").startswith("2<br>")
    assert 'aria-current="page">Last 7 days' in week.text
    # A period it does not know shows the last 24 hours.
    odd = await client.get("/console/overview", params={"period": "1y"})
    assert odd.status_code == 200
    assert cell(odd.text, "mtn_momo", "successful").startswith("1<br>")


async def test_the_hours_are_labelled_in_the_operators_timezone(client, runtime, viewer):
    page = await client.get("/console/overview")
    zone = runtime.settings.console_timezone
    assert f"Hour the payment was created ({zone})" in page.text
    # The chart is a picture made of SVG attributes: no inline style for the CSP to refuse.
    assert "style=" not in page.text
    assert "<script" not in page.text


async def test_the_overview_needs_a_session(client):
    answer = await client.get("/console/overview")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")
