"""Overload: ``POST /v1/payments`` at 256 in flight, with and without ``MAX_REQUESTS_IN_FLIGHT``.

What it measures, for each case (by default: no limit; a limit of 16 with clients that retry a
503 at once; the same limit with clients that wait ``Retry-After``), on a fresh database,
simulator and gateway each:

- **Load.** One aiohttp client in this process, ``--concurrency`` (256) closed-loop workers over
  one connection pool, provider latency 0 ms (the simulator approves at once and sends no
  callbacks, as in ``bench.initiation``). Each order is unique (own order id and
  ``Idempotency-Key``, phone 0772123456). A worker that is answered 503 sends the same request
  again (same key), either at once (the pressure stays at 256 in flight: the worst case) or
  after the ``Retry-After`` delay spread by ±50 % (a storefront as the README asks for one;
  ``--retry-delay`` with ``--limit``). The level stops
  sending new orders after ``--requests`` (3,000) payments were accepted (201); the requests
  still in flight then are answered and counted, never abandoned.
- **Per status.** Every response's latency (request sent to body read), by status: accepted
  (201) p50/p90/p99/max, refused (503) p50/p99/max; the same two from the gateway's own access
  log (time inside the application, without the wait in the socket and event loop); each 503
  checked for a ``Retry-After`` header and a problem+json body with ``"code": "overloaded"``.
  Per accepted order: time from its first attempt to its 201, and attempts it took.
- **Cost.** Accepted payments/s (up to the ``--requests``-th 201); gateway CPU (psutil,
  user + system over the level, until no payment is left in initiation) and PostgreSQL CPU
  (``harness.postgres_cpu_seconds``) per accepted payment; the client's own CPU per request.
- **Nothing half-made.** After the level, ``momo-gateway worker`` (reconciliation without a
  minimum age) settles every payment at the provider and delivers its event to a storefront
  receiver in this process (``tests.receiver``); then the invariant checker of the reliability
  tests (``tests.reliability.invariants.check_invariants``, delivery required, outbox marked
  delivered) runs against the database, the simulator's ledger and the receiver's log. Besides:
  the payments in the database are exactly the orders answered 201 (a 503 made nothing), one
  finished idempotency record per payment, one request-to-pay at the simulator per payment.

Its own database (``momo_bench_overload``, ``BENCH_OVERLOAD_DATABASE``) and Redis DB (12,
``BENCH_OVERLOAD_REDIS_URL``), so it can run beside the other benchmarks.

    .venv/bin/python -m bench.overload                 # the three cases, 3,000 accepted each
    .venv/bin/python -m bench.overload --limit 16 --retry-delay 1   # one case
    .venv/bin/python -m bench.overload --quick         # a smoke run: 200 accepted per limit
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import harness
from bench.harness import Service, SimulatorControl
from bench.loadgen import percentile
from tests.receiver import Receiver, storefront_receiver
from tests.reliability.invariants import (
    check_invariants,
    deliveries_from,
    format_violations,
    read_gateway,
    read_simulator,
)

DATABASE = os.environ.get("BENCH_OVERLOAD_DATABASE", "momo_bench_overload")
REDIS_URL = os.environ.get("BENCH_OVERLOAD_REDIS_URL", "redis://127.0.0.1:6379/12")
PHONE = "0772123456"  # a number the simulator approves
RETRY_AFTER_SECONDS = 1.0  # what the gateway's 503 says
# With a 0 ms provider one process makes the most payments/s at 8-16 in flight (bench.initiation):
# past that, accepting more only queues them.
LIMIT = 16
# The unlimited gateway; the limit against clients that retry at once (the worst case); the
# limit against clients that wait Retry-After (the storefronts the README asks for).
DEFAULT_CASES = ((0, 0.0), (LIMIT, 0.0), (LIMIT, RETRY_AFTER_SECONDS))
CONCURRENCY = 256
REQUESTS = 3000
QUICK_REQUESTS = 200
WARMUP_REQUESTS = 100
WARMUP_CONCURRENCY = 8
# Bounds: one level's sending, one request, the drain of the requests in flight at the end.
MAX_LOAD_SECONDS = 300.0
REQUEST_TIMEOUT = 60.0
INITIATION_TIMEOUT = 60.0
SETTLE_TIMEOUT = 240.0
POLL_SECONDS = 0.25
LAG_PROBE_SECONDS = 0.002
# What the issue asks of a limited gateway at c = 256, 0 ms provider latency.
MAX_P99_OVER_P50 = 3.0
MAX_REFUSAL_MS = 5.0
WORKER_ENV = {
    "RECONCILE_INTERVAL_SECONDS": "1",
    "RECONCILE_MIN_AGE_SECONDS": "0",
    "RECONCILE_RATE_PER_SECOND": "100000",
    "WORKER_METRICS_PORT": "0",
    "REDIS_URL": REDIS_URL,
}


# --- the load -------------------------------------------------------------------------------------


@dataclass
class Load:
    """What the client saw in one level; latencies in seconds."""

    target: int
    concurrency: int
    retry_delay: float
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    other: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    accepted_orders: set[str] = field(default_factory=set)
    order_seconds: list[float] = field(default_factory=list)  # first attempt to 201
    attempts: Counter[int] = field(default_factory=Counter)  # attempts per accepted order
    abandoned_orders: int = 0  # refused (or failed) when the level stopped: never retried
    refused_without_retry_after: int = 0
    refused_not_overloaded: int = 0  # not problem+json with "code": "overloaded"
    other_samples: list[str] = field(default_factory=list)
    connections_opened: int = 0
    # How late the client's own event loop woke a 2 ms timer: its share of every latency.
    loop_lag: list[float] = field(default_factory=list)
    seconds_to_target: float = 0.0
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    timed_out: bool = False
    stopped: bool = False

    @property
    def requests(self) -> int:
        return (
            len(self.accepted)
            + len(self.refused)
            + sum(len(v) for v in self.other.values())
            + sum(self.errors.values())
        )


def _body(order_id: str) -> bytes:
    return json.dumps(
        {
            "order_id": order_id,
            "amount": "50000",
            "currency": "UGX",
            "phone_number": PHONE,
            "provider": "mtn_momo",
            "description": f"Order {order_id}",
        }
    ).encode()


def _is_overloaded(response: aiohttp.ClientResponse, payload: bytes) -> bool:
    if response.content_type != "application/problem+json":
        return False
    try:
        return bool(json.loads(payload).get("code") == "overloaded")
    except (ValueError, AttributeError):
        return False


async def send_load(
    url: str,
    auth: str,
    prefix: str,
    *,
    target: int,
    concurrency: int,
    retry_delay: float = 0.0,
) -> Load:
    """``concurrency`` closed-loop workers send fresh orders until ``target`` were accepted."""
    load = Load(target=target, concurrency=concurrency, retry_delay=retry_delay)
    jitter = random.Random(0)
    numbers = itertools.count()
    started = time.perf_counter()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if not load.stopped:
            load.stopped = True
            load.seconds_to_target = time.perf_counter() - started

    async def connection_opened(*_: object) -> None:
        load.connections_opened += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(connection_opened)
    session = aiohttp.ClientSession(
        base_url=url,
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        headers={"Authorization": auth, "Content-Type": "application/json"},
        trace_configs=[trace],
    )

    async def order() -> None:
        order_id = f"{prefix}-{next(numbers)}"
        body, headers = _body(order_id), {"Idempotency-Key": order_id}
        first = time.perf_counter()
        for attempt in itertools.count(1):
            sent = time.perf_counter()
            try:
                async with session.post("/v1/payments", data=body, headers=headers) as response:
                    payload = await response.read()
                    status = response.status
                    elapsed = time.perf_counter() - sent
                    if status == 503:
                        if "Retry-After" not in response.headers:
                            load.refused_without_retry_after += 1
                        if not _is_overloaded(response, payload):
                            load.refused_not_overloaded += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                load.errors[type(exc).__name__] += 1
                status, elapsed = 0, 0.0
            if status == 201:
                load.accepted.append(elapsed)
                load.accepted_orders.add(order_id)
                load.order_seconds.append(time.perf_counter() - first)
                load.attempts[attempt] += 1
                if len(load.accepted_orders) >= target:
                    stop()
                return
            if status == 503:
                load.refused.append(elapsed)
            elif status:
                load.other.setdefault(str(status), []).append(elapsed)
                if len(load.other_samples) < 5:
                    load.other_samples.append(f"{status} {payload[:300]!r}")
                return  # neither accepted nor refused: the storefront would not retry blindly
            if load.stopped:
                load.abandoned_orders += 1
                return
            # Refused (or no answer): the same request again, with its Idempotency-Key. A
            # storefront that honours Retry-After waits it, spread by ±50 % so that clients
            # refused together do not all come back together.
            if retry_delay:
                await asyncio.sleep(retry_delay * jitter.uniform(0.5, 1.5))

    async def worker() -> None:
        while not load.stopped:
            await order()

    async def lag_probe() -> None:
        while True:
            slept = time.perf_counter()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            load.loop_lag.append(time.perf_counter() - slept - LAG_PROBE_SECONDS)

    cpu_before = time.process_time()
    deadline = loop.call_later(MAX_LOAD_SECONDS, stop)
    try:
        async with session:
            probe = asyncio.create_task(lag_probe())
            workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
            try:
                await asyncio.wait_for(
                    asyncio.gather(*workers), MAX_LOAD_SECONDS + REQUEST_TIMEOUT + 10
                )
            except TimeoutError:
                load.timed_out = True
            finally:
                probe.cancel()
    finally:
        deadline.cancel()
    load.timed_out = load.timed_out or len(load.accepted_orders) < target
    load.seconds = time.perf_counter() - started
    if not load.seconds_to_target:
        load.seconds_to_target = load.seconds
    load.client_cpu_seconds = time.process_time() - cpu_before
    return load


# --- the database and the processes ----------------------------------------------------------


async def scalar(engine: AsyncEngine, query: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(query))).scalar_one())


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float
) -> tuple[bool, float]:
    """Poll ``condition`` until it holds or ``timeout`` passes: (held, seconds waited)."""
    started = time.monotonic()
    while True:
        if await condition():
            return True, time.monotonic() - started
        if time.monotonic() - started > timeout:
            return False, time.monotonic() - started
        await asyncio.sleep(POLL_SECONDS)


def server_durations(log_path: Path | None, status: int) -> list[float]:
    """``duration_ms`` of the gateway's access log lines for ``POST /v1/payments`` answered
    ``status``: time inside the application, from the outermost middleware to the response."""
    if log_path is None or not log_path.exists():
        return []
    values = []
    needle = f'"status": {status}'
    with log_path.open() as lines:
        for line in lines:
            if needle not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if (
                record.get("logger") == "app.access"
                and record.get("method") == "POST"
                and record.get("path") == "/v1/payments"
                and record.get("status") == status
            ):
                values.append(float(record["duration_ms"]))
    return sorted(values)


# --- one limit ------------------------------------------------------------------------------------


@dataclass
class LimitRun:
    limit: int
    concurrency: int
    target: int
    retry_delay_s: float
    # the level, as the client saw it
    requests: int
    accepted: int
    accepted_per_s: float
    seconds: float
    accepted_p50_ms: float
    accepted_p90_ms: float
    accepted_p99_ms: float
    accepted_max_ms: float
    p99_over_p50: float
    order_p50_ms: float
    order_p99_ms: float
    attempts_mean: float
    attempts_max: int
    refused: int
    refused_per_accepted: float
    refused_p50_ms: float | None
    refused_p99_ms: float | None
    refused_max_ms: float | None
    refused_without_retry_after: int
    refused_not_overloaded: int
    abandoned_orders: int
    other_statuses: dict[str, int]
    other_samples: list[str]
    errors: dict[str, int]
    connections_opened: int
    client_loop_lag_p50_ms: float
    client_loop_lag_p99_ms: float
    load_timed_out: bool
    # the same requests inside the gateway (its access log)
    server_accepted_p50_ms: float | None
    server_accepted_p99_ms: float | None
    server_refused_p50_ms: float | None
    server_refused_p99_ms: float | None
    server_refused_max_ms: float | None
    # cost
    gateway_cpu_s: float
    gateway_cpu_ms_per_accepted: float
    gateway_kernel_share: float
    postgres_cpu_ms_per_accepted: float
    simulator_cpu_ms_per_accepted: float
    client_cpu_ms_per_request: float
    machine_busy_cores: float
    other_load_cores: float
    gateway_peak_rss_mb: float
    # nothing half-made (warm-up included: these count the whole database)
    initiations_finished: bool
    answered_201: int
    payments: int
    payments_without_201: int
    orders_201_without_payment: int
    idempotency_records: int
    idempotency_unfinished: int
    provider_requesttopay_calls: int
    provider_payments: int
    settled: bool
    settle_seconds: float
    payments_by_status: dict[str, int]
    events_delivered: int
    invariants_held: bool
    violations: list[str]
    criteria: dict[str, bool]


def _ms(values: Sequence[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1)


def _server_ms(values: Sequence[float], q: float) -> float | None:
    return round(percentile(values, q), 2) if values else None


async def run_limit(
    limit: int,
    *,
    base_dir: Path,
    target: int,
    concurrency: int,
    retry_delay: float,
    tag: str,
    log: Callable[[str], None] = print,
) -> LimitRun:
    work_dir = base_dir / f"limit-{limit}-retry-{retry_delay:g}s"
    db_url = harness.recreate_database(DATABASE)
    harness.flush_redis(REDIS_URL)
    engine = create_async_engine(
        db_url.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=2
    )
    try:
        async with storefront_receiver() as receiver:
            merchant = harness.create_merchant(db_url, receiver.url)
            simulator = harness.start_simulator(
                work_dir, {"callbacks_enabled": False, "approval_delay_seconds": 0}
            )
            with harness.running(simulator):
                control = SimulatorControl(simulator.url or "")
                try:
                    control.configure(harness.latency_patch(0.0))
                    gateway = harness.start_gateway(
                        work_dir,
                        db_url=db_url,
                        simulator_url=simulator.url or "",
                        extra_env={"REDIS_URL": REDIS_URL, "MAX_REQUESTS_IN_FLIGHT": str(limit)},
                    )
                    with harness.running(gateway):
                        return await _measure(
                            limit,
                            engine=engine,
                            receiver=receiver,
                            gateway=gateway,
                            simulator=simulator,
                            control=control,
                            auth=f"Bearer {merchant['api_key']}",
                            db_url=db_url,
                            work_dir=work_dir,
                            target=target,
                            concurrency=concurrency,
                            retry_delay=retry_delay,
                            tag=tag,
                            log=log,
                        )
                finally:
                    control.close()
    finally:
        await engine.dispose()


async def _measure(
    limit: int,
    *,
    engine: AsyncEngine,
    receiver: Receiver,
    gateway: Service,
    simulator: Service,
    control: SimulatorControl,
    auth: str,
    db_url: str,
    work_dir: Path,
    target: int,
    concurrency: int,
    retry_delay: float,
    tag: str,
    log: Callable[[str], None],
) -> LimitRun:
    url = gateway.url or ""

    async def initiations_done() -> bool:
        return (
            await scalar(
                engine, "SELECT count(*) FROM payments WHERE initiation_finished_at IS NULL"
            )
            == 0
        )

    # Warm-up (not measured): the provider token, the pools, the first statements.
    warmup = await send_load(
        url, auth, f"{tag}-warmup", target=WARMUP_REQUESTS, concurrency=WARMUP_CONCURRENCY
    )
    await wait_until(initiations_done, INITIATION_TIMEOUT)
    harness.analyze(db_url)

    (user0, sys0), pg0 = gateway.cpu_split(), harness.postgres_cpu_seconds()
    sim0, busy0, t0 = simulator.cpu_seconds(), harness.machine_busy_seconds(), time.monotonic()
    load = await send_load(
        url,
        auth,
        f"{tag}-c{concurrency}-l{limit}",
        target=target,
        concurrency=concurrency,
        retry_delay=retry_delay,
    )
    finished, _ = await wait_until(initiations_done, INITIATION_TIMEOUT)
    user1, sys1 = gateway.cpu_split()
    cpu = (user1 - user0) + (sys1 - sys0)
    pg = harness.postgres_cpu_seconds() - pg0
    sim = simulator.cpu_seconds() - sim0
    busy = harness.machine_busy_seconds() - busy0
    window = time.monotonic() - t0
    other_load = max(0.0, busy - cpu - pg - sim - load.client_cpu_seconds)
    peak_rss = gateway.peak_rss_mb()
    accepted_n = len(load.accepted_orders)
    per = max(accepted_n, 1)
    log(
        f"limit {limit}: {accepted_n} accepted, {len(load.refused)} refused in "
        f"{load.seconds:.1f} s; settling"
    )

    # Settle: the worker checks every pending payment at the provider and delivers its event.
    # The API scheduled each first check RECONCILE_MIN_AGE_SECONDS (3 min) after initiation;
    # bring them forward rather than wait, as bench.reconcile seeds its rows already due.
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE payments SET next_check_at = now() WHERE status = 'pending'")
        )
    worker = harness.start_worker(
        work_dir, db_url=db_url, simulator_url=simulator.url or "", extra_env=WORKER_ENV
    )
    with harness.running(worker):

        async def settled() -> bool:
            return (
                await scalar(
                    engine,
                    "SELECT (SELECT count(*) FROM payments WHERE status = 'pending')"
                    " + (SELECT count(*) FROM events WHERE delivery_status <> 'delivered')",
                )
                == 0
            )

        is_settled, settle_seconds = await wait_until(settled, SETTLE_TIMEOUT)
        violations = await _invariant_violations(
            engine, simulator.url or "", receiver, deadline=30.0 if is_settled else 5.0
        )

    stats = control.stats()
    with httpx.Client(base_url=simulator.url or "", timeout=60, trust_env=False) as client:
        ledger = client.get("/_simulator/payments").json()
    prefix = f"{tag}-c{concurrency}-l{limit}-"
    async with engine.connect() as connection:
        orders = {
            row[0]
            for row in await connection.execute(
                text("SELECT order_id FROM payments WHERE order_id LIKE :p"), {"p": prefix + "%"}
            )
        }
        by_status = {
            row[0]: int(row[1])
            for row in await connection.execute(
                text("SELECT status, count(*) FROM payments GROUP BY status ORDER BY status")
            )
        }
    payments = sum(by_status.values())
    answered_201 = len(load.accepted_orders) + len(warmup.accepted_orders)
    idempotency = await scalar(engine, "SELECT count(*) FROM idempotency_records")
    unfinished = await scalar(
        engine,
        "SELECT count(*) FROM idempotency_records"
        " WHERE response_status IS NULL OR response_status <> 201",
    )
    delivered = await scalar(
        engine, "SELECT count(*) FROM events WHERE delivery_status = 'delivered'"
    )

    accepted = sorted(load.accepted)
    refused = sorted(load.refused)
    orders_s = sorted(load.order_seconds)
    server_201 = server_durations(gateway.log_path, 201)
    server_503 = server_durations(gateway.log_path, 503)
    p50, p99 = _ms(accepted, 50), _ms(accepted, 99)
    attempts_total = sum(n * k for n, k in load.attempts.items())
    run = LimitRun(
        limit=limit,
        concurrency=concurrency,
        target=target,
        retry_delay_s=retry_delay,
        requests=load.requests,
        accepted=accepted_n,
        accepted_per_s=round(min(accepted_n, target) / load.seconds_to_target, 1),
        seconds=round(load.seconds, 2),
        accepted_p50_ms=p50,
        accepted_p90_ms=_ms(accepted, 90),
        accepted_p99_ms=p99,
        accepted_max_ms=_ms(accepted, 100),
        p99_over_p50=round(p99 / p50, 2) if p50 else 0.0,
        order_p50_ms=_ms(orders_s, 50),
        order_p99_ms=_ms(orders_s, 99),
        attempts_mean=round(attempts_total / per, 2),
        attempts_max=max(load.attempts, default=0),
        refused=len(refused),
        refused_per_accepted=round(len(refused) / per, 2),
        refused_p50_ms=round(percentile(refused, 50) * 1000, 2) if refused else None,
        refused_p99_ms=round(percentile(refused, 99) * 1000, 2) if refused else None,
        refused_max_ms=round(refused[-1] * 1000, 2) if refused else None,
        refused_without_retry_after=load.refused_without_retry_after,
        refused_not_overloaded=load.refused_not_overloaded,
        abandoned_orders=load.abandoned_orders,
        other_statuses={k: len(v) for k, v in load.other.items()},
        other_samples=load.other_samples,
        errors=dict(load.errors),
        connections_opened=load.connections_opened,
        client_loop_lag_p50_ms=_ms(sorted(load.loop_lag), 50),
        client_loop_lag_p99_ms=_ms(sorted(load.loop_lag), 99),
        load_timed_out=load.timed_out,
        server_accepted_p50_ms=_server_ms(server_201, 50),
        server_accepted_p99_ms=_server_ms(server_201, 99),
        server_refused_p50_ms=_server_ms(server_503, 50),
        server_refused_p99_ms=_server_ms(server_503, 99),
        server_refused_max_ms=round(server_503[-1], 2) if server_503 else None,
        gateway_cpu_s=round(cpu, 3),
        gateway_cpu_ms_per_accepted=round(cpu / per * 1000, 3),
        gateway_kernel_share=round((sys1 - sys0) / cpu, 2) if cpu else 0.0,
        postgres_cpu_ms_per_accepted=round(pg / per * 1000, 3),
        simulator_cpu_ms_per_accepted=round(sim / per * 1000, 3),
        client_cpu_ms_per_request=round(load.client_cpu_seconds / max(load.requests, 1) * 1000, 3),
        machine_busy_cores=round(busy / window, 2),
        other_load_cores=round(other_load / window, 2),
        gateway_peak_rss_mb=round(peak_rss, 1),
        initiations_finished=finished,
        answered_201=answered_201,
        payments=payments,
        payments_without_201=len(orders - load.accepted_orders),
        orders_201_without_payment=len(load.accepted_orders - orders),
        idempotency_records=idempotency,
        idempotency_unfinished=unfinished,
        provider_requesttopay_calls=harness.requests_to(stats, "mtn.requesttopay"),
        provider_payments=len(ledger["payments"]),
        settled=is_settled,
        settle_seconds=round(settle_seconds, 1),
        payments_by_status=by_status,
        events_delivered=delivered,
        invariants_held=not violations,
        violations=violations,
        criteria={},
    )
    run.criteria = criteria(run)
    return run


async def _invariant_violations(
    engine: AsyncEngine, simulator_url: str, receiver: Receiver, *, deadline: float
) -> list[str]:
    """The reliability tests' invariants, strict (every event delivered and marked so),
    polled until they hold or ``deadline`` seconds pass; the violations left, as text."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=simulator_url, timeout=60, trust_env=False) as client:
        while True:
            simulator = await read_simulator(client)
            gateway = await read_gateway(engine)
            deliveries = deliveries_from(list(receiver.received), list(receiver.accepted))
            violations = check_invariants(
                gateway,
                simulator,
                deliveries,
                require_delivery=True,
                require_delivered_status=True,
            )
            if not violations or time.monotonic() - started > deadline:
                break
            await asyncio.sleep(1.0)
    if not violations:
        return []
    return format_violations(violations, limit=30).splitlines()


def criteria(run: LimitRun) -> dict[str, bool]:
    """The issue's conditions, as this run meets them (refusal conditions only with a limit)."""
    made_once = (
        run.payments == run.answered_201
        and run.payments_without_201 == 0
        and run.orders_201_without_payment == 0
        and run.idempotency_records == run.payments
        and run.idempotency_unfinished == 0
        and run.provider_requesttopay_calls == run.payments
        and run.provider_payments == run.payments
    )
    found = {
        "accepted p99 <= 3x p50": run.p99_over_p50 <= MAX_P99_OVER_P50,
        "nothing half-made (invariants, counts)": run.invariants_held and made_once,
    }
    if run.limit:
        found |= {
            f"503 p99 < {MAX_REFUSAL_MS:g} ms": (
                run.refused_p99_ms is not None and run.refused_p99_ms < MAX_REFUSAL_MS
            ),
            "every 503 overloaded, with Retry-After": (
                run.refused_without_retry_after == 0 and run.refused_not_overloaded == 0
            ),
        }
    return found


# --- the whole run --------------------------------------------------------------------------------


def run(
    *,
    cases: Sequence[tuple[int, float]] = DEFAULT_CASES,
    target: int = REQUESTS,
    concurrency: int = CONCURRENCY,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``cases``: (MAX_REQUESTS_IN_FLIGHT, seconds a refused client waits before retrying, 0 =
    at once), each measured on a fresh database, simulator and gateway."""
    harness.exit_on_sigterm()
    base_dir = harness.run_dir("overload")
    tag = time.strftime("%H%M%S")
    machine = harness.machine_info()
    runs: list[LimitRun] = []
    for limit, retry_delay in cases:
        result = uvloop.run(
            run_limit(
                limit,
                base_dir=base_dir,
                target=target,
                concurrency=concurrency,
                retry_delay=retry_delay,
                tag=tag,
                log=log,
            )
        )
        runs.append(result)
        log(summary_line(result))
    output = {
        "machine": machine,
        "runs": [asdict(r) for r in runs],
        "concurrency": concurrency,
        "target": target,
        "provider_latency_ms": 0,
        "client": (
            f"aiohttp {aiohttp.__version__}, one session, {concurrency} closed-loop workers; "
            "a 503 is retried with the same Idempotency-Key, at once or after the Retry-After "
            "delay ±50 %"
        ),
        "gateway_env": "momo-gateway serve, one process, REDIS_URL set, MAX_REQUESTS_IN_FLIGHT",
        "work_dir": str(base_dir),
    }
    (base_dir / "overload.json").write_text(json.dumps(output, indent=2))
    return output


def summary_line(r: LimitRun) -> str:
    refused = (
        f"503 {r.refused} p50/p99/max {r.refused_p50_ms}/{r.refused_p99_ms}/{r.refused_max_ms} ms"
        if r.refused
        else "no 503"
    )
    return (
        f"limit {r.limit or 'none':>4}: {r.accepted_per_s:7.1f} accepted/s, "
        f"p50/p99 {r.accepted_p50_ms}/{r.accepted_p99_ms} ms ({r.p99_over_p50}x); {refused}; "
        f"gateway {r.gateway_cpu_ms_per_accepted} ms CPU/accepted; "
        f"invariants {'held' if r.invariants_held else 'VIOLATED'}"
    )


# --- the report -----------------------------------------------------------------------------------


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: dict[str, Any]) -> str:
    """A markdown fragment for BENCHMARKS.md: the table, then each run's checks."""
    m = results["machine"]
    runs = results["runs"]
    lines = [
        f"### Overload: MAX_REQUESTS_IN_FLIGHT at concurrency {results['concurrency']}",
        "",
        f"Machine: {m.get('nproc')} cores, {m.get('memory_gib')} GiB, {m.get('cpu_model')}; "
        f"python {m.get('python')}, postgresql {m.get('postgresql')}, "
        f"uvicorn {m.get('uvicorn')}, code {m.get('git')}.",
        "",
        f"`POST /v1/payments` at concurrency {results['concurrency']}, closed loop, provider "
        "latency 0 ms, one gateway process (REDIS_URL set); "
        f"{results['client']}. A level stops after {results['target']} "
        "accepted payments; latencies are the client's, per request. CPU is per accepted "
        "payment (refusals included in it). Invariants: `tests.reliability.invariants` after "
        "the worker settled every payment and delivered its event, plus payments = 201s = "
        "idempotency records = request-to-pay calls at the simulator.",
        "",
        "| limit | a refused client retries | accepted/s | accepted p50 / p99 ms | p99÷p50 | 503s "
        "| 503 p50 / p99 / max ms | Retry-After present "
        "| gateway CPU ms/accepted | PG CPU ms/accepted | invariants |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        refused = r["refused"]
        retry_after = f"{refused - r['refused_without_retry_after']}/{refused}" if refused else "-"
        held = "held" if r["invariants_held"] else f"**{len(r['violations'])} lines violated**"
        lines.append(
            f"| {r['limit'] or 'none'} | {retry_label(r['retry_delay_s'])} "
            f"| {r['accepted_per_s']:.1f} "
            f"| {r['accepted_p50_ms']:.1f} / {r['accepted_p99_ms']:.1f} "
            f"| {r['p99_over_p50']:.2f} | {refused} "
            f"| {_cell(r['refused_p50_ms'], 2)} / {_cell(r['refused_p99_ms'], 2)} / "
            f"{_cell(r['refused_max_ms'], 2)} "
            f"| {retry_after} | {r['gateway_cpu_ms_per_accepted']:.2f} "
            f"| {r['postgres_cpu_ms_per_accepted']:.2f} | {held} |"
        )
    lines.append("")
    for r in runs:
        met = ", ".join(
            f"{name}: {'met' if ok else '**missed**'}" for name, ok in r["criteria"].items()
        )
        server = (
            f"inside the gateway 503 p50 / p99 {_cell(r['server_refused_p50_ms'], 2)} / "
            f"{_cell(r['server_refused_p99_ms'], 2)} ms, "
            if r["server_refused_p50_ms"] is not None
            else ""
        )
        lines.append(
            f"- limit {r['limit'] or 'none'}, retrying {retry_label(r['retry_delay_s'])}: "
            f"{r['requests']} requests, "
            f"{r['refused_per_accepted']} refusals per accepted payment, "
            f"an order took {r['attempts_mean']} attempts on average (at most "
            f"{r['attempts_max']}), first attempt to 201 p50 / p99 "
            f"{r['order_p50_ms']:.1f} / {r['order_p99_ms']:.1f} ms; {server}"
            f"client event loop lag p99 {r['client_loop_lag_p99_ms']:.1f} ms, "
            f"connections opened {r['connections_opened']}; payments {r['payments']} = 201s "
            f"{r['answered_201']}, idempotency records {r['idempotency_records']}, "
            f"request-to-pay calls {r['provider_requesttopay_calls']}; other load "
            f"{r['other_load_cores']} cores. {met}."
        )
    return "\n".join(lines) + "\n"


def retry_label(retry_delay: float) -> str:
    return f"after {retry_delay:g} s ±50 %" if retry_delay else "at once"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--limit",
        type=int,
        action="append",
        help="MAX_REQUESTS_IN_FLIGHT (repeatable; 0 = no limit), each with --retry-delay; "
        "default: 0 and 16 retrying at once, then 16 retrying after Retry-After",
    )
    parser.add_argument("--requests", type=int, help=f"accepted payments per level ({REQUESTS})")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=0.0,
        help="seconds a refused client waits before retrying, ±50 %% (0: at once)",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REQUESTS} per level")
    args = parser.parse_args()
    target = args.requests or (QUICK_REQUESTS if args.quick else REQUESTS)
    output = run(
        cases=(
            tuple((limit, args.retry_delay) for limit in args.limit)
            if args.limit
            else DEFAULT_CASES
        ),
        target=target,
        concurrency=args.concurrency,
    )
    print()
    print(render(output))
    for r in output["runs"]:
        for line in r["violations"]:
            print(f"limit {r['limit']}: {line}")
    print(f"results: {output['work_dir']}/overload.json")


if __name__ == "__main__":
    main()
