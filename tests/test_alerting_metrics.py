"""The series the alert rules and the dashboard read, beyond the traffic counters: payments
waiting for an operator, the age of the oldest pending payment, the API's readiness and the
worker's heartbeat. Each is read as Prometheus reads it, from ``/metrics`` text.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.db import utcnow
from app.metrics import WORKER_HEARTBEAT
from app.runtime import Runtime
from app.workers.embedded import EmbeddedJobs
from app.workers.settings import sweep_outbox
from tests.conftest import PAYMENT_BODY, make_settings, running_app
from tests.workers.test_arq_worker import fakes, run_burst_worker

MTN = {"provider": "mtn_momo"}
AIRTEL = {"provider": "airtel_money"}


def sample(exposition: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and found.labels == (labels or {}):
                return found.value
    return None


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def pay(client: httpx.AsyncClient, auth: dict[str, str], order_id: str) -> str:
    created = await client.post(
        "/v1/payments", json={**PAYMENT_BODY, "order_id": order_id}, headers=auth
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    payment_id: str = created.json()["id"]
    return payment_id


async def set_payment(runtime: Runtime, payment_id: str, **values: object) -> None:
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE payments SET {assignments} WHERE id = :id"),  # noqa: S608 - test columns
            {**values, "id": payment_id},
        )


async def test_needs_review_and_the_oldest_pending_age_follow_the_payments(
    client: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime
) -> None:
    reviewed = await pay(client, auth, "ORD-REVIEW")
    old = await pay(client, auth, "ORD-OLD")
    await pay(client, auth, "ORD-NEW")
    await set_payment(runtime, reviewed, status="needs_review")
    await set_payment(runtime, old, created_at=utcnow() - timedelta(minutes=40))

    metrics = await scrape(client)

    assert sample(metrics, "momo_needs_review_payments", MTN) == 1
    assert sample(metrics, "momo_needs_review_payments", AIRTEL) == 0
    assert sample(metrics, "momo_pending_payments", MTN) == 2
    age = sample(metrics, "momo_oldest_pending_payment_age_seconds", MTN)
    assert age is not None
    assert 40 * 60 <= age < 45 * 60
    assert sample(metrics, "momo_oldest_pending_payment_age_seconds", AIRTEL) == 0

    # The old one settles, the reviewed one is resolved: the next scrape says so.
    await set_payment(runtime, old, status="successful")
    await set_payment(runtime, reviewed, status="failed")
    metrics = await scrape(client)

    assert sample(metrics, "momo_needs_review_payments", MTN) == 0
    age = sample(metrics, "momo_oldest_pending_payment_age_seconds", MTN)
    assert age is not None
    assert age < 5 * 60


async def test_dependency_up_says_which_dependency_the_api_misses(clean_db, fake_providers):
    settings = make_settings(clean_db, redis_url="redis://127.0.0.1:1/0")
    async with running_app(settings, fake_providers) as (_, http):
        metrics = await scrape(http)  # no /readyz call: the scrape checks by itself
    assert sample(metrics, "momo_dependency_up", {"dependency": "database"}) == 1
    assert sample(metrics, "momo_dependency_up", {"dependency": "redis"}) == 0


async def test_dependency_up_reports_an_unreachable_database_and_metrics_still_answer(
    fake_providers,
):
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    async with running_app(settings, fake_providers) as (_, http):
        metrics = await scrape(http)
        ready = await http.get("/readyz")
    assert sample(metrics, "momo_dependency_up", {"dependency": "database"}) == 0
    assert ready.status_code == 503


async def test_readyz_sets_dependency_up_too(clean_db, fake_providers):
    settings = make_settings(clean_db, redis_url="redis://127.0.0.1:1/0")
    async with running_app(settings, fake_providers) as (_, http):
        assert (await http.get("/readyz")).status_code == 503
    metrics = generate_latest().decode()
    assert sample(metrics, "momo_dependency_up", {"dependency": "redis"}) == 0


# --- the worker's heartbeat ------------------------------------------------------------------


def heartbeat() -> float | None:
    return sample(generate_latest().decode(), "momo_worker_heartbeat_timestamp_seconds")


async def test_a_worker_sweep_tick_sets_the_heartbeat(runtime: Runtime) -> None:
    WORKER_HEARTBEAT.set(0)
    before = time.time()
    await sweep_outbox({"runtime": runtime})
    beat = heartbeat()
    assert beat is not None
    assert before <= beat <= time.time()


async def test_the_embedded_jobs_beat_like_a_worker(runtime: Runtime) -> None:
    WORKER_HEARTBEAT.set(0)
    before = time.time()
    jobs = EmbeddedJobs(runtime)
    jobs.start()
    try:
        deadline = time.monotonic() + 10
        while (heartbeat() or 0) < before:
            assert time.monotonic() < deadline, "the embedded jobs never ticked"
            await asyncio.sleep(0.02)
    finally:
        await jobs.stop()


async def test_a_real_arq_worker_beats_on_its_startup_sweeps(clean_pg, redis_url):
    WORKER_HEARTBEAT.set(0)
    before = time.time()
    settings = make_settings(clean_pg, redis_url=redis_url)
    await run_burst_worker(settings, fakes())
    beat = heartbeat()
    assert beat is not None
    assert beat >= before
