"""Cold-cache burst: how many token requests 500 simultaneous initiations cost a fresh gateway.

For each shape — one process with Redis, two uvicorn workers sharing Redis, one process without
Redis (tokens in memory) — the benchmark flushes the Redis database, starts a simulator (300 ms on
both providers' token and payment endpoints, so the burst really waits on one token fetch) and a
fresh gateway, then sends 500 initiations at once, half MTN and half Airtel (asyncio httpx client
in its own process, 500 connections), and reads the simulator's token counts. The target is one
token request per provider.

    .venv/bin/python -m bench.cold_burst            # ~1 minute
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench import harness, loadgen

BURST = 500
LATENCY = 0.3
# Half MTN, half Airtel, interleaved, so both providers' token caches start cold at once.
NUMBERS = (("0772123456", "mtn_momo"), ("0752123456", "airtel_money"))
SHAPES: tuple[tuple[str, bool, int], ...] = (
    ("1 process, REDIS_URL set", True, 1),
    ("2 uvicorn workers, REDIS_URL set", True, 2),
    ("1 process, no REDIS_URL (in-memory tokens)", False, 1),
)


def burst_lines(prefix: str, n: int) -> list[loadgen.Line]:
    lines = []
    for i in range(n):
        phone, provider = NUMBERS[i % len(NUMBERS)]
        order_id = f"{prefix}-{i}"
        body = {
            "order_id": order_id,
            "amount": "50000",
            "currency": "UGX",
            "phone_number": phone,
            "provider": provider,
            "description": f"Order {order_id}",
        }
        lines.append(loadgen.Line("POST", "/v1/payments", json.dumps(body), order_id))
    return lines


def latency_patch(latency: float) -> dict[str, Any]:
    faults = {"latency_seconds": latency}
    endpoints = ("mtn.token", "mtn.requesttopay", "airtel.token", "airtel.payment")
    return {"endpoint_faults": dict.fromkeys(endpoints, faults)}


@dataclass
class Burst:
    shape: str
    requests: int
    statuses: dict[str, int]
    seconds: float
    p50_ms: float
    p99_ms: float
    token_requests_mtn: int
    token_requests_airtel: int
    requesttopay_requests: int
    airtel_payment_requests: int


def run(*, burst: int = BURST, latency: float = LATENCY, log: Any = print) -> dict[str, Any]:
    work_dir = harness.run_dir("cold-burst")
    results: list[Burst] = []
    for shape, redis, workers in SHAPES:
        db_url = harness.recreate_database()
        harness.flush_redis()
        merchant = harness.create_merchant(db_url, "http://127.0.0.1:9/events")
        services: list[harness.Service] = []
        try:
            simulator = harness.start_simulator(work_dir, {"callbacks_enabled": False})
            services.append(simulator)
            control = harness.SimulatorControl(simulator.url or "")
            control.configure(latency_patch(latency))
            gateway = harness.start_gateway(
                work_dir,
                db_url=db_url,
                simulator_url=simulator.url or "",
                redis=redis,
                workers=workers,
                name=f"gateway-burst-{len(results)}",
            )
            services.append(gateway)
            if workers > 1:
                time.sleep(2.0)  # /readyz answered by one worker; let the other finish starting
            requests_file = work_dir / f"burst-{len(results)}.tsv"
            loadgen.write_requests(requests_file, burst_lines(f"burst{len(results)}", burst))
            result = loadgen.run(
                url=gateway.url or "",
                requests_file=requests_file,
                count=burst,
                concurrency=burst,
                backend="httpx",
                auth=f"Bearer {merchant['api_key']}",
            )
            stats = control.stats()
            control.close()
            tokens = stats.get("token_requests", {})
            item = Burst(
                shape=shape,
                requests=result.requests,
                statuses=result.statuses,
                seconds=round(result.seconds, 2),
                p50_ms=round(result.p50_ms, 1),
                p99_ms=round(result.p99_ms, 1),
                token_requests_mtn=int(tokens.get("mtn_momo", 0)),
                token_requests_airtel=int(tokens.get("airtel_money", 0)),
                requesttopay_requests=harness.requests_to(stats, "mtn.requesttopay"),
                airtel_payment_requests=harness.requests_to(stats, "airtel.payment"),
            )
            results.append(item)
            log(
                f"{shape:<45} tokens: MTN {item.token_requests_mtn}, Airtel "
                f"{item.token_requests_airtel}; {item.statuses} in {item.seconds} s"
            )
        finally:
            for service in reversed(services):
                service.stop()
    output = {
        "burst": burst,
        "latency_ms": int(latency * 1000),
        "results": [asdict(r) for r in results],
    }
    (work_dir / "cold_burst.json").write_text(json.dumps(output, indent=2))
    return output


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=BURST)
    args = parser.parse_args()
    harness.exit_on_sigterm()
    output = run(burst=args.burst)
    from bench import report

    print(report.cold_burst_section(output))


if __name__ == "__main__":
    main()
