"""An operator resolves a needs_review payment or refund: note, admin, one winner, one event,
and the order is free again after a failed resolution."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from app.operators.resolution import (
    NothingToResolve,
    ResolutionRefused,
    resolve_payment,
    resolve_refund,
)
from app.operators.service import OperatorNotAllowed, create_operator, disable_operator
from app.operators.timeline import payment_timeline
from app.payments.decision import Change
from app.payments.domain import Actor, PaymentStatus
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.conftest import count_rows
from tests.payments.test_create_payment import VALID

NOTE = "Checked with MTN support: the payer was charged 50,000 once."


@pytest.fixture
async def admin(runtime):
    operator, _ = await create_operator(runtime.sessions, "ops@shop.example", role="admin")
    return operator


async def needs_review_payment(client, auth, runtime, order_id="ORD-REVIEW-1"):
    created = (
        await client.post("/v1/payments", json={**VALID, "order_id": order_id}, headers=auth)
    ).json()
    moved = await runtime.payments.transition(
        created["id"],
        Change(
            to_status=PaymentStatus.NEEDS_REVIEW,
            actor=Actor.CALLBACK,
            detail="amount 40000 != 50000",
            failure_message="Provider reported successful: amount 40000 != 50000 (minor units)",
        ),
    )
    assert moved is not None
    return created


async def resolve(runtime, payment_id, status="successful", note=NOTE, operator="ops@shop.example"):
    return await resolve_payment(
        runtime, payment_id, status=status, note=note, operator_email=operator, source="cli"
    )


async def events_of(client, auth, payment_id):
    return (await client.get(f"/v1/events?payment_id={payment_id}", headers=auth)).json()["data"]


async def test_resolving_to_successful_emits_the_event_and_records_the_operator(
    client, auth, runtime, admin
):
    payment = await needs_review_payment(client, auth, runtime)
    resolved = await resolve(runtime, payment["id"])
    assert resolved.status == "successful"
    assert resolved.failure_message is None
    shown = (await client.get(f"/v1/payments/{payment['id']}", headers=auth)).json()
    assert shown["status"] == "successful"
    assert [e["type"] for e in await events_of(client, auth, payment["id"])] == [
        "payment.succeeded",
        "payment.needs_review",
    ]
    async with runtime.engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT actor, operator_id, detail FROM payment_transitions "
                    "WHERE payment_id = :p AND to_status = 'successful'"
                ),
                {"p": payment["id"]},
            )
        ).one()
    assert tuple(row) == ("operator", admin.id, NOTE)
    audit = await count_rows(
        runtime,
        "operator_actions",
        "action = 'payment.resolve' AND target_id = :p AND operator_id = :o AND source = 'cli'",
        p=payment["id"],
        o=admin.id,
    )
    assert audit == 1
    timeline = await payment_timeline(runtime.sessions, payment["id"])
    resolution = [e for e in timeline if e.summary == "needs_review → successful"]
    assert resolution[0].actor == "operator ops@shop.example"
    assert any(e.kind == "operator_action" for e in timeline)


async def test_a_payment_that_succeeded_before_its_review_is_announced_again(
    client, auth, runtime, admin, fake_providers
):
    """successful → needs_review (a contradiction) → successful by hand: a second
    payment.succeeded, tied to the operator's audit entry, is allowed and sent."""
    created = (await client.post("/v1/payments", json=VALID, headers=auth)).json()
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000, currency="UGX"
    )
    await client.post(f"/v1/payments/{created['id']}/refresh", headers=auth)
    fake_providers[Provider.MTN_MOMO].status = StatusResult(status=ProviderPaymentStatus.FAILED)
    contradicted = await client.post(f"/v1/payments/{created['id']}/refresh", headers=auth)
    assert contradicted.json()["status"] == "needs_review"
    await resolve(runtime, created["id"])
    types = [e["type"] for e in await events_of(client, auth, created["id"])]
    assert sorted(types) == ["payment.needs_review", "payment.succeeded", "payment.succeeded"]


async def test_resolving_to_failed_frees_the_order(client, auth, runtime, admin):
    payment = await needs_review_payment(client, auth, runtime)
    blocked = await client.post(
        "/v1/payments", json={**VALID, "order_id": "ORD-REVIEW-1"}, headers=auth
    )
    assert blocked.status_code == 409
    resolved = await resolve(runtime, payment["id"], status="failed")
    assert resolved.status == "failed"
    assert resolved.failure_message.startswith("Resolved as failed by an operator: Checked")
    types = [e["type"] for e in await events_of(client, auth, payment["id"])]
    assert types[0] == "payment.failed"
    again = await client.post(
        "/v1/payments", json={**VALID, "order_id": "ORD-REVIEW-1"}, headers=auth
    )
    assert again.status_code == 201


@pytest.mark.parametrize(
    ("status", "note", "message"),
    [
        ("successful", "", "at least 10 characters"),
        ("successful", "   too   short  ", "at least 10 characters"),
        ("expired", NOTE, "failed or successful"),
        ("pending", NOTE, "failed or successful"),
    ],
)
async def test_bad_resolutions_are_refused_and_change_nothing(
    client, auth, runtime, admin, status, note, message
):
    payment = await needs_review_payment(client, auth, runtime)
    with pytest.raises(ResolutionRefused, match=message):
        await resolve(runtime, payment["id"], status=status, note=note)
    shown = (await client.get(f"/v1/payments/{payment['id']}", headers=auth)).json()
    assert shown["status"] == "needs_review"
    assert await count_rows(runtime, "operator_actions", "action = 'payment.resolve'") == 0


async def test_only_a_needs_review_payment_is_resolved(client, auth, runtime, admin):
    created = (await client.post("/v1/payments", json=VALID, headers=auth)).json()
    with pytest.raises(ResolutionRefused, match="is pending: only a payment in needs_review"):
        await resolve(runtime, created["id"])
    with pytest.raises(NothingToResolve):
        await resolve(runtime, "pay_unknown")


async def test_unknown_disabled_and_viewer_operators_cannot_resolve(client, auth, runtime, admin):
    payment = await needs_review_payment(client, auth, runtime)
    await create_operator(runtime.sessions, "viewer@shop.example", role="viewer")
    await create_operator(runtime.sessions, "gone@shop.example", role="admin")
    await disable_operator(runtime.sessions, "gone@shop.example")
    for email, why in (
        ("nobody@shop.example", "no operator"),
        ("gone@shop.example", "disabled"),
        ("viewer@shop.example", "admin is required"),
    ):
        with pytest.raises(OperatorNotAllowed, match=why):
            await resolve(runtime, payment["id"], operator=email)
    shown = (await client.get(f"/v1/payments/{payment['id']}", headers=auth)).json()
    assert shown["status"] == "needs_review"


async def test_two_concurrent_resolutions_one_wins_one_event(client, auth, runtime, admin):
    payment = await needs_review_payment(client, auth, runtime)
    outcomes = await asyncio.gather(
        resolve(runtime, payment["id"], status="successful"),
        resolve(runtime, payment["id"], status="failed"),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, Exception)]
    lost = [o for o in outcomes if isinstance(o, Exception)]
    assert len(won) == 1
    assert len(lost) == 1
    assert isinstance(lost[0], ResolutionRefused)
    types = [e["type"] for e in await events_of(client, auth, payment["id"])]
    assert len(types) == 2  # needs_review, and one resolution
    assert await count_rows(runtime, "operator_actions", "action = 'payment.resolve'") == 1


async def test_a_refund_in_review_is_resolved_and_the_refunded_total_follows(
    client, auth, runtime, admin, payments, fake_refunds
):
    payment = await payments.successful(amount="50000")
    created = (
        await client.post(
            "/v1/refunds", json={"payment_id": payment["id"], "amount": "20000"}, headers=auth
        )
    ).json()
    fake_refunds[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=25000, currency="UGX"
    )
    await runtime.refund_reconciler.reconcile()
    assert (await client.get(f"/v1/refunds/{created['id']}", headers=auth)).json()[
        "status"
    ] == "needs_review"
    resolved = await resolve_refund(
        runtime,
        created["id"],
        status="succeeded",
        note="MTN confirmed 20,000 went back; the 25,000 was their display error.",
        operator_email="ops@shop.example",
        source="cli",
    )
    assert resolved.status == "succeeded"
    shown = (await client.get(f"/v1/payments/{payment['id']}", headers=auth)).json()
    assert shown["amount_refunded"] == "20000"
    refund_events = [
        e["type"] for e in await events_of(client, auth, payment["id"]) if e["refund_id"]
    ]
    assert sorted(refund_events) == ["refund.needs_review", "refund.succeeded"]
    with pytest.raises(ResolutionRefused, match="is succeeded"):
        await resolve_refund(
            runtime,
            created["id"],
            status="failed",
            note=NOTE,
            operator_email="ops@shop.example",
            source="cli",
        )
    # The provider keeps reporting the other amount: a callback's check leaves the person's
    # decision as it is, with no second review and no new event.
    again = await runtime.refunds.check_with_provider(created["id"], Actor.CALLBACK)
    assert again.status == "succeeded"
    after = [e["type"] for e in await events_of(client, auth, payment["id"]) if e["refund_id"]]
    assert sorted(after) == ["refund.needs_review", "refund.succeeded"]


async def test_a_resolved_payment_stays_resolved_when_the_provider_still_disagrees(
    client, auth, runtime, admin, fake_providers
):
    payment = await needs_review_payment(client, auth, runtime)
    await resolve(runtime, payment["id"])
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.FAILED, failure_code=None
    )
    refreshed = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert (refreshed.status_code, refreshed.json()["status"]) == (200, "successful")
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=40000, currency="UGX"
    )
    refreshed = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert (refreshed.status_code, refreshed.json()["status"]) == (200, "successful")
    types = [e["type"] for e in await events_of(client, auth, payment["id"])]
    assert types == ["payment.succeeded", "payment.needs_review"]
