"""Refund reconcilers working at once, on PostgreSQL (what SQLite cannot show): claims taken with
SKIP LOCKED are disjoint, so two reconcilers sweeping together read each pending refund's status
once per round; and refunds of one payment settling at once each count in its refunded total.

Two apps on one database stand for two worker processes: each has its own engine and pool, and
they share the in-memory providers so every status read is counted in one place.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from app.db import utcnow
from app.main import create_app
from app.merchants.service import create_merchant
from app.payments.domain import Actor
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.refunds import repository
from app.refunds.decision import RefundChange
from app.refunds.domain import RefundStatus
from app.runtime import Runtime
from app.vocabulary import Provider
from tests.conftest import make_settings
from tests.fakes import FakeProvider, FakeRefundProvider
from tests.payments.test_create_payment import VALID

REFUNDS = 30


@dataclass
class SlowRefunds(FakeRefundProvider):
    """MTN's refund status read, taking a moment, as over the network: long enough that two
    sweeps overlap."""

    delay: float = 0.02

    async def get_refund_status(self, reference: str) -> StatusResult:
        await asyncio.sleep(self.delay)
        return await super().get_refund_status(reference)


@dataclass
class Gateway:
    """Two runtimes (two worker processes, as far as the database can tell) and a client of the
    first one's API."""

    first: Runtime
    second: Runtime
    client: httpx.AsyncClient
    auth: dict[str, str]
    payments: dict[Provider, FakeProvider]
    refunds: SlowRefunds


@pytest.fixture
async def gateway(clean_pg: str) -> AsyncIterator[Gateway]:
    settings = make_settings(clean_pg)
    payments = {
        provider: FakeProvider(provider) for provider in (Provider.MTN_MOMO, Provider.AIRTEL_MONEY)
    }
    refunds = SlowRefunds(Provider.MTN_MOMO)
    refund_providers = {Provider.MTN_MOMO: refunds}
    first = create_app(
        settings, providers=payments, refund_providers=refund_providers, background_jobs=False
    )
    second = create_app(
        settings, providers=payments, refund_providers=refund_providers, background_jobs=False
    )
    async with LifespanManager(first), LifespanManager(second):
        merchant = await create_merchant(
            first.state.runtime.sessions, name="Claims shop", callback_url="https://shop.test/e"
        )
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield Gateway(
                first.state.runtime,
                second.state.runtime,
                http,
                {"Authorization": f"Bearer {merchant.api_key}"},
                payments,
                refunds,
            )


async def successful_payment(gateway: Gateway, order_id: str) -> dict[str, Any]:
    """A UGX 50000 MTN payment the provider confirmed."""
    created = await gateway.client.post(
        "/v1/payments", json={**VALID, "order_id": order_id}, headers=gateway.auth
    )
    assert created.status_code == 201, created.text
    mtn = gateway.payments[Provider.MTN_MOMO]
    mtn.status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=50000,
        currency="UGX",
        provider_transaction_id=f"txn-{order_id}",
    )
    try:
        refreshed = await gateway.client.post(
            f"/v1/payments/{created.json()['id']}/refresh", headers=gateway.auth
        )
    finally:
        mtn.status = None
    assert refreshed.json()["status"] == "successful", refreshed.text
    payment: dict[str, Any] = refreshed.json()
    return payment


async def pending_refund(gateway: Gateway, payment_id: str, amount: str) -> dict[str, Any]:
    answer = await gateway.client.post(
        "/v1/refunds", json={"payment_id": payment_id, "amount": amount}, headers=gateway.auth
    )
    assert answer.status_code == 201, answer.text
    refund: dict[str, Any] = answer.json()
    assert refund["status"] == "pending"
    return refund


async def pending_refunds(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    made = []
    for i in range(count):
        payment = await successful_payment(gateway, f"CLAIM-{i}")
        made.append(await pending_refund(gateway, payment["id"], "20000"))
    return made


async def make_all_due(runtime: Runtime) -> None:
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text("UPDATE refunds SET next_check_at = now() - interval '1 second'")
        )


async def scalar(runtime: Runtime, sql: str, **params: Any) -> Any:
    async with runtime.engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar_one()


async def test_a_claim_skips_the_refunds_another_reconciler_holds(gateway):
    made = await pending_refunds(gateway, 10)
    now = utcnow()
    async with gateway.first.sessions.begin() as holding:
        held = await repository.claim_due(holding, limit=4, due_by=now, now=now)
        # The first claim's transaction is still open: its rows are locked. Another claim must
        # neither wait for them nor take them.
        async with gateway.second.sessions.begin() as other:
            taken = await asyncio.wait_for(
                repository.claim_due(other, limit=100, due_by=now, now=now), timeout=10
            )
    held_ids = {refund.id for refund in held}
    taken_ids = {refund.id for refund in taken}
    assert len(held_ids) == 4
    assert held_ids.isdisjoint(taken_ids)
    assert held_ids | taken_ids == {refund["id"] for refund in made}


async def test_two_reconcilers_sweeping_at_once_read_each_pending_refund_once_per_round(
    gateway,
):
    made = await pending_refunds(gateway, REFUNDS)
    references = {refund["provider_reference"] for refund in made}

    async def round_of_sweeps() -> tuple[int, int]:
        # Small batches, so the two sweeps take turns claiming while the other reads statuses.
        first, second = await asyncio.gather(
            gateway.first.refund_reconciler.reconcile(batch=3),
            gateway.second.refund_reconciler.reconcile(batch=3),
        )
        return first.claimed, second.claimed

    # Round 1: MTN says every refund is still pending. Each is read once, by one reconciler.
    first, second = await round_of_sweeps()
    assert first + second == REFUNDS
    assert first > 0, "the second reconciler took every refund: the sweeps did not overlap"
    assert second > 0, "the first reconciler took every refund: the sweeps did not overlap"
    assert Counter(gateway.refunds.status_calls) == dict.fromkeys(references, 1)
    assert await scalar(gateway.first, "SELECT count(*) FROM refunds WHERE status = 'pending'") == (
        REFUNDS
    )

    # Round 2: every refund due again, MTN has paid them all. Each is read once more and settles
    # once: one transition out of pending, one event, whichever reconciler read it.
    await make_all_due(gateway.first)
    gateway.refunds.status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=20000, currency="UGX"
    )
    first, second = await round_of_sweeps()
    assert first + second == REFUNDS
    assert Counter(gateway.refunds.status_calls) == dict.fromkeys(references, 2)
    assert await scalar(
        gateway.first, "SELECT count(*) FROM refunds WHERE status = 'succeeded'"
    ) == (REFUNDS)
    leaving = await scalar(
        gateway.first,
        "SELECT count(*) FROM refund_transitions WHERE from_status = 'pending'",
    )
    assert leaving == REFUNDS
    events = await scalar(
        gateway.first,
        "SELECT count(DISTINCT refund_id) FROM events WHERE type = 'refund.succeeded'",
    )
    assert events == REFUNDS
    assert await scalar(
        gateway.first, "SELECT count(*) FROM events WHERE refund_id IS NOT NULL"
    ) == (REFUNDS)
    # And a third sweep finds nothing to do.
    await make_all_due(gateway.first)
    assert await round_of_sweeps() == (0, 0)
    assert len(gateway.refunds.status_calls) == 2 * REFUNDS
    # No refund was ever sent again: the reconcilers only read.
    assert len(gateway.refunds.requests) == REFUNDS


async def waiting_for_a_lock(runtime: Runtime, count: int) -> None:
    """Until ``count`` sessions on the database wait for a row lock."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        waiting = await scalar(
            runtime,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        if waiting >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{waiting} of {count} waiting"
        await asyncio.sleep(0.02)


async def test_two_refunds_of_one_payment_settling_at_once_both_count_in_amount_refunded(
    gateway,
):
    """Two reconcilers (or a reconciler and a callback) settle two refunds of one payment at the
    same moment. Each refund's transaction recounts the payment's ``amount_refunded_minor``; the
    two must not overwrite each other with a sum that misses the other's refund."""
    payment = await successful_payment(gateway, "CLAIM-RACE")
    one = await pending_refund(gateway, payment["id"], "20000")
    other = await pending_refund(gateway, payment["id"], "10000")
    succeeded = RefundChange(to_status=RefundStatus.SUCCEEDED, actor=Actor.RECONCILER)

    # Something else holds the payment row for a moment (a third refund being decided, a
    # payment transition): both settlements reach the recount and wait there together.
    async with gateway.first.engine.connect() as blocker:
        transaction = await blocker.begin()
        await blocker.execute(
            text("SELECT id FROM payments WHERE id = :id FOR UPDATE"), {"id": payment["id"]}
        )
        settling = [
            asyncio.create_task(gateway.first.refunds.transition(one["id"], succeeded)),
            asyncio.create_task(gateway.second.refunds.transition(other["id"], succeeded)),
        ]
        try:
            await waiting_for_a_lock(gateway.first, 2)
        finally:
            await transaction.rollback()
        settled = await asyncio.wait_for(asyncio.gather(*settling), timeout=10)

    assert [refund.status for refund in settled] == ["succeeded", "succeeded"]
    refunded = await scalar(
        gateway.first,
        "SELECT amount_refunded_minor FROM payments WHERE id = :id",
        id=payment["id"],
    )
    shown = (await gateway.client.get(f"/v1/payments/{payment['id']}", headers=gateway.auth)).json()
    assert (refunded, shown["amount_refunded"]) == (30000, "30000")
