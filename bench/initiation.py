"""Initiation throughput, p50/p99 latency and CPU per payment: the gateway beside its floor.

For each provider latency (0 and 300 ms on the simulator's MTN token and request-to-pay
endpoints) and each concurrency (1/8/16/64/256), the same load generator sends the same number of
unique initiations (own order id and Idempotency-Key, a number the simulator approves) to:

- the gateway: ``momo-gateway serve`` (one uvicorn process) on PostgreSQL, with ``REDIS_URL``
  set as in production (tokens in Redis, jobs go to arq; no worker runs during this benchmark);
- the floor (``bench/floor.py``): insert, request-to-pay, update, nothing else.

CPU per payment is the server process's CPU time over the level, divided by the payments it
initiated (counted in the database, after the stragglers finished). PostgreSQL's and the
simulator's CPU are reported beside it, since they share the machine.

The simulator sends no callbacks here (``callbacks_enabled=false``): callbacks have their own
benchmark, and this one measures initiation alone.

    .venv/bin/python -m bench.initiation            # full run (~7 minutes)
    .venv/bin/python -m bench.initiation --quick    # a smoke run with few requests
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import harness, loadgen
from bench.harness import Service, SimulatorControl

TWO_WORKERS = "gateway-2w"
BEFORE = "gateway-before"
CONCURRENCY_LEVELS = (1, 8, 16, 64, 256)
LATENCIES = (0.0, 0.3)
# A number the simulator approves (its failure scenarios end in 000NNN).
PHONE = "0772123456"
WARMUP_REQUESTS = 100
# An idle PostgreSQL backend publishes its transaction counts within 10 s (PGSTAT_IDLE_INTERVAL).
STATS_FLUSH_SECONDS = 11.0
PROBE_PAYMENTS = 50


def requests_for(concurrency: int, latency: float, *, quick: bool = False) -> int:
    """1,500 per level, fewer where a closed loop at this concurrency could not send them in
    reasonable time (at 300 ms a level of c connections manages at most c / 0.3 s per second),
    so that the whole run stays within ~10 minutes on 2 cores."""
    if quick:
        return max(20, min(200, concurrency * 4))
    if latency == 0:
        return 300 if concurrency == 1 else 1500
    return min(1500, max(30, concurrency * 25))


def payment_lines(prefix: str, n: int) -> Iterator[loadgen.Line]:
    for i in range(n):
        order_id = f"{prefix}-{i}"
        body = {
            "order_id": order_id,
            "amount": "50000",
            "currency": "UGX",
            "phone_number": PHONE,
            "provider": "mtn_momo",
            "description": f"Order {order_id}",
        }
        yield loadgen.Line("POST", "/v1/payments", json.dumps(body), idempotency_key=order_id)


@dataclass
class Level:
    target: str
    latency_ms: int
    concurrency: int
    requests: int
    ok: int
    statuses: dict[str, int]
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    payments: int
    server_cpu_s: float
    cpu_ms_per_payment: float
    kernel_cpu_share: float
    postgres_cpu_ms_per_payment: float
    simulator_cpu_ms_per_payment: float
    loadgen_cpu_ms_per_request: float | None
    token_requests: int
    machine_busy_cores: float
    other_load_cores: float
    backend: str


class Target:
    """A server under test and how to count the payments it has initiated."""

    def __init__(self, name: str, service: Service, auth: str | None, count_sql: str, db_url: str):
        self.name = name
        self.service = service
        self.auth = auth
        self._count_sql = count_sql
        self.db_url = db_url
        self.count_queries = 0

    def payments(self) -> int:
        self.count_queries += 1
        return int(harness.psql_value(self.db_url, self._count_sql))

    def settle(self, timeout: float = 30.0) -> int:
        """Wait until requests abandoned by the load generator have finished on the server."""
        deadline = time.monotonic() + timeout
        last = self.payments()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.payments()
            if now == last:
                return now
            last = now
        return last


def measure(
    target: Target,
    simulator: Service,
    control: SimulatorControl,
    *,
    latency: float,
    concurrency: int,
    count: int,
    work_dir: Path,
    tag: str,
    backend: str,
) -> Level:
    # Spare lines keep every connection busy to the end (see wrk_requests.lua).
    lines = payment_lines(
        f"{tag}-{target.name}-{int(latency * 1000)}-{concurrency}", count + concurrency + 8
    )
    requests_file = work_dir / f"{target.name}-{int(latency * 1000)}ms-c{concurrency}.tsv"
    loadgen.write_requests(requests_file, lines)
    control.reset()
    before_payments = target.payments()
    (user0, sys0), pg0 = target.service.cpu_split(), harness.postgres_cpu_seconds()
    sim0, busy0, t0 = simulator.cpu_seconds(), harness.machine_busy_seconds(), time.monotonic()
    result = loadgen.run(
        url=target.service.url or "",
        requests_file=requests_file,
        count=count,
        concurrency=concurrency,
        backend=backend,
        auth=target.auth,
    )
    payments = target.settle() - before_payments
    user1, sys1 = target.service.cpu_split()
    cpu = (user1 - user0) + (sys1 - sys0)
    pg = harness.postgres_cpu_seconds() - pg0
    sim = simulator.cpu_seconds() - sim0
    busy = harness.machine_busy_seconds() - busy0
    window = time.monotonic() - t0
    # Whatever the machine did beyond server, PostgreSQL, simulator and load generator.
    other = max(0.0, busy - cpu - pg - sim - (result.client_cpu_seconds or 0.0))
    stats = control.stats()
    per = max(payments, 1)
    return Level(
        target=target.name,
        latency_ms=int(latency * 1000),
        concurrency=concurrency,
        requests=result.requests,
        ok=result.ok,
        statuses=result.statuses,
        seconds=round(result.seconds, 3),
        throughput=round(result.throughput, 1),
        p50_ms=round(result.p50_ms, 1),
        p99_ms=round(result.p99_ms, 1),
        max_ms=round(result.max_ms, 1),
        payments=payments,
        server_cpu_s=round(cpu, 3),
        cpu_ms_per_payment=round(cpu / per * 1000, 3),
        kernel_cpu_share=round((sys1 - sys0) / cpu, 2) if cpu else 0.0,
        postgres_cpu_ms_per_payment=round(pg / per * 1000, 3),
        simulator_cpu_ms_per_payment=round(sim / per * 1000, 3),
        loadgen_cpu_ms_per_request=(
            round(result.client_cpu_seconds / max(result.requests, 1) * 1000, 3)
            if result.client_cpu_seconds is not None
            else None
        ),
        token_requests=harness.requests_to(stats, "mtn.token"),
        machine_busy_cores=round(busy / window, 2),
        other_load_cores=round(other / window, 2),
        backend=result.backend,
    )


def send_payments(
    target: Target, work_dir: Path, prefix: str, count: int, concurrency: int, backend: str
) -> None:
    """``count`` fresh payments (a few spare lines for the load generator) at ``concurrency``."""
    requests_file = work_dir / f"{prefix}.tsv"
    loadgen.write_requests(requests_file, payment_lines(prefix, count + 16))
    loadgen.run(
        url=target.service.url or "",
        requests_file=requests_file,
        count=count,
        concurrency=concurrency,
        backend=backend,
        auth=target.auth,
    )


def warm_up(target: Target, work_dir: Path, tag: str, backend: str) -> None:
    send_payments(target, work_dir, f"{tag}-{target.name}-warmup", WARMUP_REQUESTS, 8, backend)
    target.settle()


def transactions_per_payment(target: Target, work_dir: Path, tag: str, backend: str) -> float:
    """PostgreSQL transactions (commits + rollbacks) one initiation costs, from a quiet probe of
    PROBE_PAYMENTS sequential payments: a property of the code path, not of the load."""
    time.sleep(STATS_FLUSH_SECONDS)
    before = harness.postgres_transactions(target.db_url)
    target.count_queries = 0
    start_payments = target.payments()
    send_payments(target, work_dir, f"{tag}-{target.name}-probe", PROBE_PAYMENTS, 1, backend)
    payments = target.settle() - start_payments
    time.sleep(STATS_FLUSH_SECONDS)
    # Each psql reading is a transaction of its own: the first reading and the counts.
    own = 1 + target.count_queries
    return round((harness.postgres_transactions(target.db_url) - before - own) / payments, 2)


@dataclass
class Profile:
    level: str
    samples: int
    self_by_area: list[tuple[str, float]]
    inclusive_by_step: list[tuple[str, float]]
    cross_cutting: list[tuple[str, float]]
    database_operations: list[tuple[str, float]]
    top_self_frames: list[tuple[str, float]]
    raw_path: str


def profile_level(
    target: Target,
    control: SimulatorControl,
    *,
    latency: float,
    concurrency: int,
    count: int,
    work_dir: Path,
    tag: str,
    backend: str,
) -> Profile | None:
    """Sample the gateway with py-spy (non-blocking) while one level runs again."""
    from bench import profile

    spy = profile.py_spy()
    if spy is None:
        return None
    control.configure(harness.latency_patch(latency))
    raw_path = work_dir / f"profile-{target.name}-{int(latency * 1000)}ms-c{concurrency}.txt"
    recorder = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(target.service.pid),
            "--rate",
            "200",
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        lines = payment_lines(f"{tag}-profile-{concurrency}", count + concurrency + 8)
        requests_file = work_dir / "profile.tsv"
        loadgen.write_requests(requests_file, lines)
        loadgen.run(
            url=target.service.url or "",
            requests_file=requests_file,
            count=count,
            concurrency=concurrency,
            backend=backend,
            auth=target.auth,
        )
        target.settle()
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
    if not raw_path.exists():
        return None
    summary = profile.summarise(raw_path)
    return Profile(
        level=f"{target.name}, {int(latency * 1000)} ms, c={concurrency}",
        samples=summary.samples,
        self_by_area=summary.self_by_area,
        inclusive_by_step=summary.inclusive_by_step,
        cross_cutting=summary.cross_cutting,
        database_operations=summary.database_operations,
        top_self_frames=summary.top_self_frames,
        raw_path=str(raw_path),
    )


def run(
    *,
    quick: bool = False,
    levels: tuple[int, ...] = CONCURRENCY_LEVELS,
    latencies: tuple[float, ...] = LATENCIES,
    aiohttp_floor: bool = True,
    two_workers: bool = True,
    do_profile: bool = True,
    backend: str = "auto",
    before: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``before``: a git revision whose gateway is measured too, in the same levels, right
    before this one's (one process; "gateway-before"), for a before/after in one run."""
    work_dir = harness.run_dir("initiation")
    tag = time.strftime("%H%M%S")
    db_url = harness.recreate_database()
    harness.flush_redis()
    merchant = harness.create_merchant(db_url, "http://127.0.0.1:9/events")
    auth = f"Bearer {merchant['api_key']}"
    simulator = harness.start_simulator(work_dir, {"callbacks_enabled": False})
    control = SimulatorControl(simulator.url or "")
    services = [simulator]
    try:
        gateway = harness.start_gateway(work_dir, db_url=db_url, simulator_url=simulator.url or "")
        services.append(gateway)
        floor = harness.start_floor(work_dir, db_url=db_url, simulator_url=simulator.url or "")
        services.append(floor)
        targets = [
            Target(
                "floor",
                floor,
                None,
                "SELECT count(*) FROM floor_payments WHERE initiation_finished_at IS NOT NULL",
                db_url,
            ),
            Target(
                "gateway",
                gateway,
                auth,
                "SELECT count(*) FROM payments WHERE initiation_finished_at IS NOT NULL",
                db_url,
            ),
        ]
        before_commit = None
        if before is not None:
            before_commit = harness.git_revision(before)
            code = harness.export_code(before_commit, work_dir / f"code-{before_commit}")
            gateway_before = harness.start_gateway(
                work_dir,
                db_url=db_url,
                simulator_url=simulator.url or "",
                name=BEFORE,
                code=code,
            )
            services.append(gateway_before)
            targets.insert(
                -1,
                Target(
                    BEFORE,
                    gateway_before,
                    auth,
                    "SELECT count(*) FROM payments WHERE initiation_finished_at IS NOT NULL",
                    db_url,
                ),
            )
        if two_workers:
            # The same gateway as deployed on a 2-core host: two uvicorn workers. Its pools are
            # smaller so every server here fits in PostgreSQL's 100 connections together.
            gateway_2w = harness.start_gateway(
                work_dir,
                db_url=db_url,
                simulator_url=simulator.url or "",
                workers=2,
                name=TWO_WORKERS,
                extra_env={"DATABASE_POOL_SIZE": "15"},
            )
            services.append(gateway_2w)
            targets.append(
                Target(
                    TWO_WORKERS,
                    gateway_2w,
                    auth,
                    "SELECT count(*) FROM payments WHERE initiation_finished_at IS NOT NULL",
                    db_url,
                )
            )
        if aiohttp_floor:
            floor_aio = harness.start_floor(
                work_dir, db_url=db_url, simulator_url=simulator.url or "", client="aiohttp"
            )
            services.append(floor_aio)
            targets.insert(
                1,
                Target(
                    "floor-aiohttp",
                    floor_aio,
                    None,
                    "SELECT count(*) FROM floor_payments WHERE initiation_finished_at IS NOT NULL",
                    db_url,
                ),
            )
        for target in targets:
            warm_up(target, work_dir, tag, backend)
        harness.analyze(db_url)
        transactions = {
            t.name: transactions_per_payment(t, work_dir, tag, backend)
            for t in targets
            if t.name not in ("floor-aiohttp", TWO_WORKERS)  # the same SQL as another target
        }
        log(f"PostgreSQL transactions per payment: {transactions}")
        results: list[Level] = []
        for latency in latencies:
            control.configure(harness.latency_patch(latency))
            for concurrency in levels:
                count = requests_for(concurrency, latency, quick=quick)
                for target in targets:
                    level = measure(
                        target,
                        simulator,
                        control,
                        latency=latency,
                        concurrency=concurrency,
                        count=count,
                        work_dir=work_dir,
                        tag=tag,
                        backend=backend,
                    )
                    results.append(level)
                    log(
                        f"{level.target:>13} {level.latency_ms:>3} ms c={concurrency:<3} "
                        f"{level.throughput:8.1f}/s p50 {level.p50_ms:7.1f} "
                        f"p99 {level.p99_ms:7.1f} ms "
                        f"cpu {level.cpu_ms_per_payment:6.2f} ms/pay ok {level.ok}/{level.requests}"
                    )
        rss = {t.name: round(t.service.peak_rss_mb(), 1) for t in targets}
        startup_rss = {t.name: round(t.service.startup_rss_mb or 0.0, 1) for t in targets}
        profile_result = None
        if do_profile:
            best = max((r for r in results if r.target == "gateway"), key=lambda r: r.throughput)
            profile_result = profile_level(
                next(t for t in targets if t.name == "gateway"),
                control,
                latency=best.latency_ms / 1000,
                concurrency=best.concurrency,
                count=requests_for(best.concurrency, best.latency_ms / 1000, quick=quick),
                work_dir=work_dir,
                tag=tag,
                backend=backend,
            )
        output = {
            "levels": [asdict(r) for r in results],
            "peak_rss_mb": rss,
            "startup_rss_mb": startup_rss,
            "pg_transactions_per_payment": transactions,
            "before_commit": before_commit,
            "profile": asdict(profile_result) if profile_result else None,
            "gateway_env": "REDIS_URL set (tokens in Redis, jobs via arq; no worker running)",
            "latency_scope": "mtn.token and mtn.requesttopay (endpoint_faults)",
            "work_dir": str(work_dir),
        }
        (work_dir / "initiation.json").write_text(json.dumps(output, indent=2))
        return output
    finally:
        control.close()
        for service in reversed(services):
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few requests per level (smoke test)")
    parser.add_argument("--levels", default=",".join(map(str, CONCURRENCY_LEVELS)))
    parser.add_argument("--latencies", default="0,0.3", help="provider latencies in seconds")
    parser.add_argument("--no-aiohttp-floor", action="store_true")
    parser.add_argument("--no-two-workers", action="store_true", help="skip the 2-worker gateway")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--backend", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument(
        "--before", metavar="REV", help="also measure the gateway of this git revision, beside"
    )
    args = parser.parse_args()
    output = run(
        quick=args.quick,
        levels=tuple(int(x) for x in args.levels.split(",")),
        latencies=tuple(float(x) for x in args.latencies.split(",")),
        aiohttp_floor=not args.no_aiohttp_floor,
        two_workers=not args.no_two_workers,
        do_profile=not args.no_profile,
        backend=args.backend,
        before=args.before,
    )
    from bench import report

    print(report.initiation_section(output))


if __name__ == "__main__":
    main()
