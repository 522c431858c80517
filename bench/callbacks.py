"""Provider callbacks processed per second, with verify-by-fetch and 10 % duplicates.

1. The simulator approves at once (``approval_delay_seconds=0``) and sends no callbacks itself.
2. N payments are created through the gateway's API (so each has its per-payment callback URL).
3. One MTN callback per payment — the simulator's own body shape, ``PUT`` to
   ``MTN_MOMO_CALLBACK_URL + reference + "/" + token`` with the token from
   ``app.callback_tokens.callback_token`` — plus a repeat of 10 % of them, shuffled, are sent by
   the load generator at a fixed concurrency.

Each first callback makes the gateway record it, fetch the status from the simulator and settle
the payment (conditional update, audit row, outbox event, arq job); a repeat must answer
"Already processed" without a fetch. Reported: callbacks/s, latency, status fetches per first
callback, and whether every payment ended ``successful``. The gateway runs with ``REDIS_URL`` and
no worker, so the events queue up in Redis rather than being delivered during the measurement.

    .venv/bin/python -m bench.callbacks --payments 1500 --concurrency 64
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from app.callback_tokens import callback_token
from bench import harness, loadgen
from bench.initiation import payment_lines

DUPLICATE_SHARE = 0.10


@dataclass
class CallbackRun:
    payments: int
    callbacks: int
    duplicates: int
    concurrency: int
    seconds: float
    callbacks_per_second: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    settled_successful: int
    status_fetches: int
    status_fetches_per_payment: float
    outcomes: dict[str, int]
    cpu_ms_per_callback: float
    postgres_cpu_ms_per_callback: float
    api_peak_rss_mb: float
    machine_busy_cores: float
    other_load_cores: float


def callback_lines(
    rows: list[tuple[str, str]], secret: bytes, seed: int = 7
) -> tuple[list[loadgen.Line], int]:
    rng = random.Random(seed)
    lines = []
    for reference, order_id in rows:
        token = callback_token(secret, reference)
        body = {
            "amount": "50000",
            "currency": "UGX",
            "financialTransactionId": str(rng.randrange(100_000_000, 999_999_999)),
            "externalId": order_id,
            "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
            "payerMessage": f"Order {order_id}",
            "payeeNote": f"Order {order_id}",
            "status": "SUCCESSFUL",
        }
        lines.append(
            loadgen.Line("PUT", f"/api/webhooks/mtn-momo/{reference}/{token}", json.dumps(body))
        )
    duplicates = rng.sample(lines, round(len(lines) * DUPLICATE_SHARE))
    everything = lines + duplicates
    rng.shuffle(everything)
    return everything, len(duplicates)


def run(*, payments: int = 1500, concurrency: int = 64, log: Any = print) -> dict[str, Any]:
    work_dir = harness.run_dir("callbacks")
    db_url = harness.recreate_database()
    harness.flush_redis()
    merchant = harness.create_merchant(db_url, "http://127.0.0.1:9/events")
    auth = f"Bearer {merchant['api_key']}"
    services: list[harness.Service] = []
    try:
        simulator = harness.start_simulator(
            work_dir, {"callbacks_enabled": False, "approval_delay_seconds": 0}
        )
        services.append(simulator)
        control = harness.SimulatorControl(simulator.url or "")
        gateway = harness.start_gateway(work_dir, db_url=db_url, simulator_url=simulator.url or "")
        services.append(gateway)

        create_file = work_dir / "create.tsv"
        loadgen.write_requests(create_file, payment_lines("cb", payments))
        created = loadgen.run(
            url=gateway.url or "",
            requests_file=create_file,
            count=payments,
            concurrency=32,
            backend="httpx",
            auth=auth,
        )
        log(f"created {created.statuses} in {created.seconds:.1f} s")
        rows = [
            tuple(line.split("|"))
            for line in harness.psql_value(
                db_url,
                "SELECT provider_reference, order_id FROM payments WHERE status = 'pending'"
                " ORDER BY created_at",
            ).splitlines()
        ]
        lines, duplicates = callback_lines(
            [(r[0], r[1]) for r in rows], harness.CALLBACK_TOKEN_SECRET.encode()
        )
        callbacks_file = work_dir / "callbacks.tsv"
        # Spare lines for wrk's last in-flight requests: repeats, which cost a duplicate check.
        loadgen.write_requests(callbacks_file, lines + lines[: concurrency + 8])

        fetches0 = harness.requests_to(control.stats(), "mtn.requesttopay_status")
        cpu0, pg0 = gateway.cpu_seconds(), harness.postgres_cpu_seconds()
        sim0, busy0, t0 = simulator.cpu_seconds(), harness.machine_busy_seconds(), time.monotonic()
        result = loadgen.run(
            url=gateway.url or "",
            requests_file=callbacks_file,
            count=len(lines),
            concurrency=concurrency,
        )
        time.sleep(1.0)  # the few abandoned spare requests finish
        cpu = gateway.cpu_seconds() - cpu0
        pg = harness.postgres_cpu_seconds() - pg0
        sim = simulator.cpu_seconds() - sim0
        busy = harness.machine_busy_seconds() - busy0
        window = time.monotonic() - t0
        other = max(0.0, busy - cpu - pg - sim - (result.client_cpu_seconds or 0.0))
        fetches = harness.requests_to(control.stats(), "mtn.requesttopay_status") - fetches0
        control.close()
        settled = int(
            harness.psql_value(db_url, "SELECT count(*) FROM payments WHERE status = 'successful'")
        )
        outcomes = dict(
            tuple(line.split("|"))  # type: ignore[misc]
            for line in harness.psql_value(
                db_url, "SELECT outcome, count(*) FROM provider_callbacks GROUP BY 1"
            ).splitlines()
        )
        run_result = CallbackRun(
            payments=len(rows),
            callbacks=result.requests,
            duplicates=duplicates,
            concurrency=concurrency,
            seconds=round(result.seconds, 2),
            callbacks_per_second=round(result.throughput, 1),
            p50_ms=round(result.p50_ms, 1),
            p99_ms=round(result.p99_ms, 1),
            statuses=result.statuses,
            settled_successful=settled,
            status_fetches=fetches,
            status_fetches_per_payment=round(fetches / max(len(rows), 1), 3),
            outcomes={k: int(v) for k, v in outcomes.items()},
            cpu_ms_per_callback=round(cpu / max(result.requests, 1) * 1000, 3),
            postgres_cpu_ms_per_callback=round(pg / max(result.requests, 1) * 1000, 3),
            api_peak_rss_mb=round(gateway.peak_rss_mb(), 1),
            machine_busy_cores=round(busy / window, 2),
            other_load_cores=round(other / window, 2),
        )
        log(
            f"{run_result.callbacks_per_second}/s p50 {run_result.p50_ms} "
            f"p99 {run_result.p99_ms} ms, "
            f"{settled}/{len(rows)} successful, {fetches} status fetches"
        )
        output = asdict(run_result)
        (work_dir / "callbacks.json").write_text(json.dumps(output, indent=2))
        return output
    finally:
        for service in reversed(services):
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    harness.exit_on_sigterm()
    output = run(payments=args.payments, concurrency=args.concurrency)
    from bench import report

    print(report.callbacks_section(output))


if __name__ == "__main__":
    main()
