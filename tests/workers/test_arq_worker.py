"""A real arq Worker (burst mode) against real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from arq.worker import Worker
from redis.asyncio import Redis
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from app.db import utcnow
from app.merchants.service import create_merchant
from app.providers import registry
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from app.workers import jobs
from app.workers.settings import worker_settings
from tests.conftest import count_rows, make_settings, running_app
from tests.fakes import FakeProvider
from tests.receiver import storefront_receiver

pytestmark = pytest.mark.usefixtures("redis_url")


def fakes() -> dict[Provider, FakeProvider]:
    return {provider: FakeProvider(provider) for provider in registry.names()}


async def run_burst_worker(settings, providers) -> None:
    options = worker_settings(settings)
    options["ctx"] = {"settings": settings, "providers": providers}
    worker = Worker(**options, burst=True, poll_delay=0.05, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


async def run_until_delivered(settings, providers, runtime, *, rounds: int = 5) -> None:
    """Burst workers stop once their queue looks empty, which can be while a running job is
    still queueing deliveries: run bursts until no event is left pending (a real worker just
    keeps polling)."""
    for _ in range(rounds):
        await run_burst_worker(settings, providers)
        if await count_rows(runtime, "events", "delivery_status = 'pending'") == 0:
            return
    raise AssertionError("events still pending after several worker runs")


async def new_payment(http, api_key, order_id, phone) -> dict:
    response = await http.post(
        "/v1/payments",
        json={"order_id": order_id, "amount": "1000", "phone_number": phone},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_burst_worker_settles_a_silent_payment_and_expires_a_stale_one(clean_pg, redis_url):
    settings = make_settings(clean_pg, redis_url=redis_url, payment_timeout_seconds=60)
    providers = fakes()
    async with storefront_receiver() as receiver, running_app(settings, providers) as (app, http):
        runtime = app.state.runtime
        merchant = await create_merchant(runtime.sessions, name="Shop", callback_url=receiver.url)
        silent = await new_payment(http, merchant.api_key, "ORD-SILENT", "0772123456")
        stale = await new_payment(http, merchant.api_key, "ORD-STALE", "0700123456")
        async with runtime.engine.begin() as connection:
            await connection.execute(
                text("UPDATE payments SET created_at = :t WHERE id = :id"),
                {"t": utcnow() - timedelta(minutes=5), "id": stale["id"]},
            )
        providers[Provider.MTN_MOMO].status = StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=1000, currency="UGX"
        )
        providers[Provider.AIRTEL_MONEY].status = StatusResult(status=ProviderPaymentStatus.PENDING)

        await run_burst_worker(settings, providers)
        await run_until_delivered(settings, providers, runtime)

        auth = {"Authorization": f"Bearer {merchant.api_key}"}
        assert (await http.get(f"/v1/payments/{silent['id']}", headers=auth)).json()[
            "status"
        ] == "successful"
        assert (await http.get(f"/v1/payments/{stale['id']}", headers=auth)).json()[
            "status"
        ] == "expired"
        assert await count_rows(runtime, "events", "payment_id = :p", p=silent["id"]) == 1
        assert await count_rows(runtime, "events", "payment_id = :p", p=stale["id"]) == 1
        delivered = await receiver.wait_for(2)
        assert sorted(d.event["type"] for d in delivered) == [
            "payment.expired",
            "payment.succeeded",
        ]


async def test_two_workers_check_each_payment_once_and_deliver_each_event_once(clean_pg, redis_url):
    settings = make_settings(clean_pg, redis_url=redis_url, reconcile_rate_per_second=1000)
    providers = fakes()
    async with storefront_receiver() as receiver, running_app(settings, providers) as (app, http):
        runtime = app.state.runtime
        merchant = await create_merchant(runtime.sessions, name="Shop", callback_url=receiver.url)
        created = await asyncio.gather(
            *(new_payment(http, merchant.api_key, f"ORD-{i}", "0772123456") for i in range(200))
        )
        providers[Provider.MTN_MOMO].status = StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=1000, currency="UGX"
        )

        await asyncio.gather(
            run_burst_worker(settings, providers), run_burst_worker(settings, providers)
        )
        await run_until_delivered(settings, providers, runtime)

        calls = providers[Provider.MTN_MOMO].status_calls
        assert len(calls) == 200
        assert set(calls) == {p["provider_reference"] for p in created}
        await receiver.wait_for(200)
        ids = [d.headers["webhook-id"] for d in receiver.accepted]
        assert len(ids) == len(set(ids)) == 200
        assert await count_rows(runtime, "events", "delivery_status = 'delivered'") == 200


async def test_a_failing_storefront_gets_the_event_on_attempt_four(clean_pg, redis_url):
    settings = make_settings(clean_pg, redis_url=redis_url, event_retry_base_seconds=0.01)
    providers = fakes()
    async with (
        storefront_receiver(fail_first=3) as receiver,
        running_app(settings, providers) as (app, http),
    ):
        runtime = app.state.runtime
        merchant = await create_merchant(runtime.sessions, name="Shop", callback_url=receiver.url)
        payment = await new_payment(http, merchant.api_key, "ORD-1", "0772123456")
        providers[Provider.MTN_MOMO].status = StatusResult(status=ProviderPaymentStatus.SUCCESSFUL)
        auth = {"Authorization": f"Bearer {merchant.api_key}"}
        await http.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)

        deadline = asyncio.get_running_loop().time() + 10
        while not receiver.accepted:
            assert asyncio.get_running_loop().time() < deadline, "event never delivered"
            await jobs.sweep_outbox(runtime)
            await asyncio.sleep(0.02)

        assert len(receiver.received) == 4
        assert len({d.headers["webhook-id"] for d in receiver.received}) == 1
        final = receiver.accepted[0]
        Webhook(merchant.webhook_secret).verify(final.body, final.headers)
        assert final.event["data"]["id"] == payment["id"]

        listed = (await http.get(f"/v1/events?payment_id={payment['id']}", headers=auth)).json()
        delivery = listed["data"][0]["delivery"]
        assert delivery["status"] == "delivered"
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
        assert listed["data"][0]["id"] == final.headers["webhook-id"]


async def test_event_committed_then_redis_flushed_is_still_delivered(clean_pg, redis_url):
    settings = make_settings(clean_pg, redis_url=redis_url)
    providers = fakes()
    async with storefront_receiver() as receiver, running_app(settings, providers) as (app, http):
        runtime = app.state.runtime
        merchant = await create_merchant(runtime.sessions, name="Shop", callback_url=receiver.url)
        payment = await new_payment(http, merchant.api_key, "ORD-1", "0772123456")
        providers[Provider.MTN_MOMO].status = StatusResult(status=ProviderPaymentStatus.SUCCESSFUL)
        auth = {"Authorization": f"Bearer {merchant.api_key}"}
        await http.post(f"/v1/payments/{payment['id']}/refresh", headers=auth)
        redis = Redis.from_url(redis_url)
        assert await redis.zcard("arq:queue") == 1  # the delivery job was queued ...
        await redis.flushdb()  # ... and is lost
        await redis.aclose()

        await run_burst_worker(settings, providers)

        delivered = await receiver.wait_for(1)
        assert delivered[0].event["data"]["id"] == payment["id"]
