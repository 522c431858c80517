"""The reconciler over the real database with a fake provider (both backends)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from app.db import utcnow
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.conftest import count_rows
from tests.payments.test_create_payment import VALID


async def create(client, auth, order_id="ORD-R"):
    response = await client.post("/v1/payments", json={**VALID, "order_id": order_id}, headers=auth)
    assert response.status_code == 201
    return response.json()


async def set_columns(runtime, payment_id, **values):
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE payments SET {assignments} WHERE id = :id"),  # noqa: S608
            {**values, "id": payment_id},
        )


async def status_of(client, auth, payment):
    return (await client.get(f"/v1/payments/{payment['id']}", headers=auth)).json()


async def test_settles_a_due_payment_once(client, auth, runtime, fake_providers):
    payment = await create(client, auth)
    fake_providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=50000, currency="UGX"
    )
    report = await runtime.reconciler.reconcile()
    assert (report.claimed, report.settled) == (1, 1)
    assert (await status_of(client, auth, payment))["status"] == "successful"
    assert await count_rows(runtime, "events") == 1
    again = await runtime.reconciler.reconcile()
    assert again.claimed == 0


async def test_backs_off_per_payment(client, auth, runtime, fake_providers):
    await create(client, auth)
    first = await runtime.reconciler.reconcile()
    second = await runtime.reconciler.reconcile()
    assert first.claimed == 1
    assert second.claimed == 0  # its next check is in the future now
    assert len(fake_providers[Provider.MTN_MOMO].status_calls) == 1


async def test_leaves_an_initiation_in_flight_alone(client, auth, runtime, fake_providers):
    payment = await create(client, auth)
    await set_columns(runtime, payment["id"], initiation_finished_at=None, next_check_at=None)
    fake_providers[Provider.MTN_MOMO].status = StatusResult(status=ProviderPaymentStatus.NOT_FOUND)

    assert (await runtime.reconciler.reconcile()).claimed == 0
    # Even asked directly, "not found" does not fail a payment whose request may still land.
    refreshed = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert refreshed.json()["status"] == "pending"


async def test_fails_an_abandoned_initiation_the_provider_never_received(
    client, auth, runtime, fake_providers
):
    payment = await create(client, auth)
    await set_columns(
        runtime,
        payment["id"],
        initiation_finished_at=None,
        next_check_at=None,
        created_at=utcnow() - timedelta(minutes=20),
    )
    fake_providers[Provider.MTN_MOMO].status = StatusResult(status=ProviderPaymentStatus.NOT_FOUND)

    report = await runtime.reconciler.reconcile()

    assert report.claimed == 1
    current = await status_of(client, auth, payment)
    assert current["status"] == "failed"
    assert current["failure_code"] == "not_found_at_provider"


async def test_expires_only_on_a_provider_answer(client, auth, runtime, fake_providers):
    silent = await create(client, auth, "ORD-SILENT")
    pending = await create(client, auth, "ORD-PENDING")
    old = utcnow() - timedelta(hours=2)
    for payment in (silent, pending):
        await set_columns(runtime, payment["id"], created_at=old)

    mtn = fake_providers[Provider.MTN_MOMO]
    mtn.unavailable = True
    await runtime.reconciler.reconcile()
    assert (await status_of(client, auth, silent))["status"] == "pending"  # silence settles nothing

    mtn.unavailable = False
    mtn.status = StatusResult(status=ProviderPaymentStatus.PENDING)
    await set_columns(runtime, pending["id"], next_check_at=utcnow() - timedelta(seconds=1))
    await runtime.reconciler.reconcile()
    assert (await status_of(client, auth, pending))["status"] == "expired"
    assert await count_rows(runtime, "events", "type = 'payment.expired'") == 1


async def test_a_late_success_after_expiry_goes_to_review(client, auth, runtime, fake_providers):
    payment = await create(client, auth)
    await set_columns(runtime, payment["id"], created_at=utcnow() - timedelta(hours=2))
    mtn = fake_providers[Provider.MTN_MOMO]
    mtn.status = StatusResult(status=ProviderPaymentStatus.PENDING)
    await runtime.reconciler.reconcile()
    assert (await status_of(client, auth, payment))["status"] == "expired"

    mtn.status = StatusResult(status=ProviderPaymentStatus.SUCCESSFUL)
    refreshed = await client.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
    assert refreshed.json()["status"] == "needs_review"
    assert await count_rows(runtime, "events", "type = 'payment.needs_review'") == 1
