"""Reconciliation: 10,000 pending payments whose callbacks never came, settled by the worker(s).

Setup, per run (one worker, then two): a fresh database; the simulator holds 10,000 accepted and
already approved MTN payments (created through its own request-to-pay endpoint, as the gateway
would have, with approval at once and no callbacks); the gateway's database holds the same
10,000 as ``pending`` rows inserted directly in SQL — initiation finished an hour ago, first check
due a minute ago — which is what a gateway looks like after its callbacks were lost.

Then ``momo-gateway worker`` process(es) start with ``REDIS_URL``, ``RECONCILE_MIN_AGE_SECONDS=0``
and ``RECONCILE_RATE_PER_SECOND=100000`` (MTN's real cap, 10 status checks/s per worker, would make
this a 1,000 s test of the limiter). The storefront is a sink that accepts every event, so the
workers deliver the 10,000 ``payment.succeeded`` events too, as in production. Measured: time until
no payment is pending, time until every event is delivered, provider calls per payment (simulator
statistics), worker CPU and peak RSS.

    .venv/bin/python -m bench.reconcile --payments 10000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.simulator.config import DEFAULT_MTN_API_KEY, DEFAULT_MTN_API_USER
from bench import harness

PAYMENTS = 10_000
SETTLE_TIMEOUT = 420.0
DELIVERY_TIMEOUT = 120.0


@dataclass
class ReconcileRun:
    workers: int
    payments: int
    settled: int
    seconds_to_settle: float
    settled_per_second: float
    seconds_to_deliver_events: float | None
    events_delivered: int
    status_checks: int
    status_checks_per_payment: float
    token_requests: int
    worker_cpu_s: float
    worker_cpu_ms_per_payment: float
    postgres_cpu_ms_per_payment: float
    worker_peak_rss_mb: list[float]
    machine_busy_cores: float
    other_load_cores: float


async def seed_simulator(simulator_url: str, references: list[str]) -> None:
    """Create each payment at the simulator the way the gateway's adapter would."""
    basic = base64.b64encode(f"{DEFAULT_MTN_API_USER}:{DEFAULT_MTN_API_KEY}".encode()).decode()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=simulator_url, limits=limits, trust_env=False, timeout=30
    ) as client:
        token_response = await client.post(
            "/collection/token/",
            headers={
                "Authorization": f"Basic {basic}",
                "Ocp-Apim-Subscription-Key": harness.SUBSCRIPTION_KEY,
            },
        )
        token_response.raise_for_status()
        headers = {
            "Authorization": f"Bearer {token_response.json()['access_token']}",
            "Ocp-Apim-Subscription-Key": harness.SUBSCRIPTION_KEY,
            "X-Target-Environment": "sandbox",
        }
        semaphore = asyncio.Semaphore(64)

        async def create(i: int, reference: str) -> None:
            async with semaphore:
                response = await client.post(
                    "/collection/v1_0/requesttopay",
                    headers={**headers, "X-Reference-Id": reference},
                    json={
                        "amount": "50000",
                        "currency": "UGX",
                        "externalId": f"rec-{i}",
                        "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
                        "payerMessage": f"Order rec-{i}",
                        "payeeNote": f"Order rec-{i}",
                    },
                )
                if response.status_code != 202:
                    raise RuntimeError(f"simulator refused a seed payment: {response.status_code}")

        await asyncio.gather(*(create(i, ref) for i, ref in enumerate(references)))


async def seed_database(db_url: str, merchant_id: str, references: list[str]) -> None:
    now = datetime.now(UTC)
    rows = [
        (
            f"pay_rec{i:012d}{uuid.uuid4().hex[:8]}",
            merchant_id,
            f"rec-{i}",
            "mtn_momo",
            "pending",
            50000,
            "UGX",
            "256772123456",
            f"Order rec-{i}",
            "{}",
            reference,
            now - timedelta(hours=1),
            now - timedelta(minutes=1),
            0,
            now - timedelta(hours=1),
            now - timedelta(hours=1),
        )
        for i, reference in enumerate(references)
    ]
    connection = await asyncpg.connect(db_url)
    try:
        await connection.copy_records_to_table(
            "payments",
            records=rows,
            columns=[
                "id",
                "merchant_id",
                "order_id",
                "provider",
                "status",
                "amount_minor",
                "currency",
                "phone_number",
                "description",
                "metadata",
                "provider_reference",
                "initiation_finished_at",
                "next_check_at",
                "check_count",
                "created_at",
                "updated_at",
            ],
        )
    finally:
        await connection.close()


def count(db_url: str, query: str) -> int:
    return int(harness.psql_value(db_url, query))


def run_once(workers: int, payments: int, log: Any = print) -> ReconcileRun:
    work_dir = harness.run_dir(f"reconcile-{workers}")
    db_url = harness.recreate_database()
    harness.flush_redis()
    services: list[harness.Service] = []
    try:
        sink = harness.start_sink(work_dir)
        services.append(sink)
        merchant = harness.create_merchant(db_url, f"{sink.url}/events")
        simulator = harness.start_simulator(
            work_dir, {"callbacks_enabled": False, "approval_delay_seconds": 0}
        )
        services.append(simulator)
        control = harness.SimulatorControl(simulator.url or "")
        references = [str(uuid.uuid4()) for _ in range(payments)]
        seeded = time.monotonic()
        asyncio.run(seed_simulator(simulator.url or "", references))
        asyncio.run(seed_database(db_url, merchant["id"], references))
        log(f"seeded {payments} payments in {time.monotonic() - seeded:.1f} s")
        before = control.stats()
        pg0 = harness.postgres_cpu_seconds()
        sim0, sink0 = simulator.cpu_seconds(), sink.cpu_seconds()
        busy0, t0 = harness.machine_busy_seconds(), time.monotonic()
        env = {
            "RECONCILE_MIN_AGE_SECONDS": "0",
            "RECONCILE_RATE_PER_SECOND": "100000",
            "RECONCILE_INTERVAL_SECONDS": "5",
        }
        started = time.monotonic()
        worker_services = [
            harness.start_worker(
                work_dir,
                db_url=db_url,
                simulator_url=simulator.url or "",
                name=f"worker-{n}",
                extra_env=env,
            )
            for n in range(workers)
        ]
        services.extend(worker_services)
        pending = payments
        while pending and time.monotonic() - started < SETTLE_TIMEOUT:
            time.sleep(0.25)
            pending = count(db_url, "SELECT count(*) FROM payments WHERE status = 'pending'")
        settle_seconds = time.monotonic() - started
        delivered = 0
        deliver_seconds: float | None = None
        while time.monotonic() - started < SETTLE_TIMEOUT + DELIVERY_TIMEOUT:
            delivered = count(
                db_url, "SELECT count(*) FROM events WHERE delivery_status = 'delivered'"
            )
            if delivered >= payments - pending:
                deliver_seconds = time.monotonic() - started
                break
            time.sleep(0.25)
        cpu = sum(w.cpu_seconds() for w in worker_services)
        pg = harness.postgres_cpu_seconds() - pg0
        ours = cpu + pg + simulator.cpu_seconds() - sim0 + sink.cpu_seconds() - sink0
        busy = harness.machine_busy_seconds() - busy0
        window = time.monotonic() - t0
        after = control.stats()
        control.close()
        settled = payments - pending
        checks = harness.requests_to(after, "mtn.requesttopay_status") - harness.requests_to(
            before, "mtn.requesttopay_status"
        )
        tokens = harness.requests_to(after, "mtn.token") - harness.requests_to(before, "mtn.token")
        result = ReconcileRun(
            workers=workers,
            payments=payments,
            settled=settled,
            seconds_to_settle=round(settle_seconds, 1),
            settled_per_second=round(settled / settle_seconds, 1),
            seconds_to_deliver_events=round(deliver_seconds, 1) if deliver_seconds else None,
            events_delivered=delivered,
            status_checks=checks,
            status_checks_per_payment=round(checks / max(settled, 1), 3),
            token_requests=tokens,
            worker_cpu_s=round(cpu, 2),
            worker_cpu_ms_per_payment=round(cpu / max(settled, 1) * 1000, 3),
            postgres_cpu_ms_per_payment=round(pg / max(settled, 1) * 1000, 3),
            worker_peak_rss_mb=[round(w.peak_rss_mb(), 1) for w in worker_services],
            machine_busy_cores=round(busy / window, 2),
            other_load_cores=round(max(0.0, busy - ours) / window, 2),
        )
        log(
            f"{workers} worker(s): {settled}/{payments} settled in {result.seconds_to_settle} s "
            f"({result.settled_per_second}/s), events delivered after "
            f"{result.seconds_to_deliver_events} s, "
            f"{result.status_checks_per_payment} checks/payment"
        )
        (work_dir / "reconcile.json").write_text(json.dumps(asdict(result), indent=2))
        return result
    finally:
        for service in reversed(services):
            service.stop()


def run(*, payments: int = PAYMENTS, log: Any = print) -> dict[str, Any]:
    return {"runs": [asdict(run_once(workers, payments, log)) for workers in (1, 2)]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=PAYMENTS)
    args = parser.parse_args()
    harness.exit_on_sigterm()
    output = run(payments=args.payments)
    from bench import report

    print(report.reconcile_section(output))


if __name__ == "__main__":
    main()
