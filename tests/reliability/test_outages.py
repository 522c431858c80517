"""Infrastructure failing under a running system: Redis wiped, database connections cut, the
storefront down. PostgreSQL is the source of truth, so each must cost time, never a payment or
an event."""

from __future__ import annotations

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.receiver import storefront_receiver
from tests.reliability.harness import (
    collector,
    create_payments,
    invariants_hold,
    mixed_orders,
    one_worker,
    poll_until,
    refused_payment_ids,
    reliability_stack,
    statuses,
    unexpected_outcomes,
)

SETTLE_TIMEOUT = 150  # generous: a loaded machine converges late, a broken one never does


async def test_redis_flushed_mid_run_loses_no_payment_and_no_event(clean_pg, redis_url, tmp_path):
    orders = mixed_orders("FLUSH", 80)
    redis = Redis.from_url(redis_url)
    flushes = 0

    async def flush_now_and_then(done: int) -> None:
        # Four times during the run: queued delivery jobs, cached tokens and the worker's
        # bookkeeping all vanish while payments are being created and settled.
        nonlocal flushes
        if done % 20 == 10:
            await redis.flushdb()
            flushes += 1

    try:
        async with (
            storefront_receiver() as receiver,
            reliability_stack(clean_pg, redis_url, receiver) as stack,
            one_worker(stack.settings, tmp_path) as worker,
        ):
            responses = await create_payments(
                stack, orders, concurrency=8, on_progress=flush_now_and_then
            )
            assert flushes == 4
            assert statuses(responses) == [201] * len(orders)

            evidence = await invariants_hold(
                collector(stack, receiver),
                [worker],
                timeout=SETTLE_TIMEOUT,
                refused_at_initiation=await refused_payment_ids(stack, orders),
                require_delivered_status=True,
            )
            assert unexpected_outcomes(orders, evidence) == []
            # The token cache really was lost: both providers were asked for a new token.
            tokens = (await stack.sim("/_simulator/stats"))["token_requests"]
            assert tokens["mtn_momo"] > 1, tokens
            assert tokens["airtel_money"] > 1, tokens
    finally:
        await redis.aclose()


async def test_database_connections_dropped_mid_run_recover(clean_pg, redis_url, tmp_path):
    orders = mixed_orders("DBDROP", 80)
    url = make_url(clean_pg)
    admin = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port or 5432,
        database=url.database,
    )
    terminated: list[int] = []

    async def cut_connections(done: int) -> None:
        # Three times during the run, every other session on the gateway's database (API and
        # worker alike) is killed, whatever it was in the middle of.
        if done in (15, 40, 65):
            terminated.append(
                await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

    try:
        async with (
            storefront_receiver() as receiver,
            reliability_stack(clean_pg, redis_url, receiver) as stack,
            one_worker(stack.settings, tmp_path) as worker,
        ):
            responses = await create_payments(
                stack, orders, concurrency=8, on_progress=cut_connections
            )
            assert len(terminated) == 3
            assert sum(terminated) > 0  # there were live sessions to cut
            # A request whose database connection died may fail, but only as a clean
            # problem+json 5xx, on a client connection that stays usable.
            for response in responses:
                assert isinstance(response, httpx.Response), response
                if response.status_code != 201:
                    assert response.status_code >= 500, response.text
                    assert response.headers["content-type"].startswith("application/problem+json")

            # A request whose connection was cut just as it recorded the provider's answer
            # leaves its payment with an initiation that never finished; the reconciler takes
            # such a payment up once it is old enough to have been abandoned (minutes). Every
            # request has returned by now, so let those payments look twenty minutes old rather
            # than wait.
            async with stack.runtime.engine.begin() as connection:
                await connection.execute(
                    text(
                        "UPDATE payments SET created_at = created_at - interval '20 minutes' "
                        "WHERE status = 'pending' AND initiation_finished_at IS NULL"
                    )
                )
            # Delivery is judged by what the storefront received: a delivery whose outcome
            # could not be recorded (its connection was cut) stays due in the outbox until
            # its 60 s claim lease runs out and is then sent again, same webhook-id.
            await invariants_hold(
                collector(stack, receiver),
                [worker],
                timeout=SETTLE_TIMEOUT,
                refused_at_initiation=await refused_payment_ids(stack, orders),
            )
    finally:
        await admin.close()


async def test_storefront_down_for_the_first_half_gets_every_event_after(
    clean_pg, redis_url, tmp_path
):
    orders = mixed_orders("DOWN", 60)
    half = len(orders) // 2
    async with (
        storefront_receiver(down=True) as receiver,
        reliability_stack(clean_pg, redis_url, receiver) as stack,
        one_worker(stack.settings, tmp_path, EVENT_RETRY_BASE_SECONDS="0.2") as worker,
    ):
        first = await create_payments(stack, orders[:half], concurrency=8)

        async def refused_some() -> bool:
            return len(receiver.received) >= 20

        # The storefront really was asked, and said 503, before it came back.
        await poll_until(refused_some, timeout=SETTLE_TIMEOUT, what="deliveries to be refused")
        assert receiver.accepted == []
        receiver.down = False
        second = await create_payments(stack, orders[half:], concurrency=8)
        assert statuses(first + second) == [201] * len(orders)

        evidence = await invariants_hold(
            collector(stack, receiver),
            [worker],
            timeout=SETTLE_TIMEOUT,
            refused_at_initiation=await refused_payment_ids(stack, orders),
            require_delivered_status=True,
        )
        assert unexpected_outcomes(orders, evidence) == []
        # Events of the first half were refused at least once and delivered after, under the
        # id they were first sent with.
        refused_ids = {d.webhook_id for d in evidence.deliveries if not d.accepted}
        delivered_ids = {d.webhook_id for d in evidence.deliveries if d.accepted}
        assert refused_ids
        assert refused_ids <= delivered_ids
