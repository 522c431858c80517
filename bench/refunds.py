"""Refunds/s, p50/p99 latency and CPU per refund, beside payments measured in the same run.

One gateway (``momo-gateway serve``, one uvicorn process, ``REDIS_URL`` set, MTN Disbursement
credentials set, no worker running), PostgreSQL, the simulator over HTTP (``bench/sim.py``). Its
own database (``momo_bench_refunds``) and Redis DB (13), so it can run beside the others.

1. Setup, not measured: successful MTN and Airtel payments of UGX 50,000, as they stand after
   their callbacks: created at the simulator through its own provider APIs (approval at once)
   and written ``successful`` into the gateway's database directly, as ``bench.reconcile``
   seeds its pending rows. The simulator sends no callbacks (as in ``bench.initiation``), so
   each level measures the API call alone: no refund callback comes back during the run.
2. For each provider latency (0 and 300 ms on every endpoint of both paths: MTN token,
   request-to-pay, disbursement token and refund; Airtel token, payment and refund) and each
   concurrency (8, 64), three levels run back to back with the same load generator as
   ``bench.initiation`` (wrk, unique requests, each with its own ``Idempotency-Key``):

   - payments: ``POST /v1/payments`` (MTN, as in ``bench.initiation``): the reference;
   - MTN refunds: ``POST /v1/refunds`` of 20,000 of a 50,000 UGX payment, two per payment (the
     second refund of a payment comes half a level after the first, so they do not meet on
     the payment's lock);
   - Airtel refunds: ``POST /v1/refunds`` without an amount (Airtel refunds the full amount,
     once, and answers at once: the refund is ``succeeded`` in the 201).

   CPU per operation is the gateway process's user+system time over the level divided by the
   rows the level created (counted in PostgreSQL after stragglers finished), PostgreSQL's and the
   simulator's CPU likewise; the ratio refund / payment at the same level is the figure to read
   on a noisy machine.
3. A contention probe sends three 20,000 refunds of one 50,000 payment at once (exactly two
   must be taken) and two full refunds of one Airtel payment at once (exactly one), and py-spy
   samples the gateway while a refund level and a payment level run again.
4. Checks: every measured request answered 201; no payment has non-failed refunds above its
   amount; no refund failed; every MTN refund reached the simulator once and was paid out at
   most once (``GET /_simulator/refunds``), and the simulator's successful refunds of a payment
   stay within its amount.

    .venv/bin/python -m bench.refunds            # ~2 minutes on 2 cores
    .venv/bin/python -m bench.refunds --quick    # a smoke run with few requests
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.db import new_id
from app.simulator.config import (
    DEFAULT_AIRTEL_CLIENT_ID,
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_DISBURSEMENT_API_KEY,
    DEFAULT_MTN_DISBURSEMENT_API_USER,
    DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
)
from bench import harness, loadgen, profile
from bench.harness import Service, SimulatorControl
from bench.initiation import Target

# A database and a Redis DB of its own, so this benchmark can run while another one (on
# momo_bench and Redis DB 14) does.
DATABASE = os.environ.get("BENCH_REFUNDS_DATABASE", "momo_bench_refunds")
REDIS_URL = os.environ.get("BENCH_REFUNDS_REDIS_URL", "redis://127.0.0.1:6379/13")
CONCURRENCY_LEVELS = (8, 64)
LATENCIES = (0.0, 0.3)
MTN_PHONE = "0772123456"  # the simulator approves both (failure scenarios end in 000NNN)
AIRTEL_PHONE = "0752123456"
PAYMENT_AMOUNT = 50_000
REFUND_AMOUNT = 20_000
REFUNDS_PER_PAYMENT = 2
WARMUP = 60
CONTENTION_PAYMENTS = 20
CONTENTION_AIRTEL_PAYMENTS = 10
PROFILE_CONCURRENCY = 64
PROFILE_REQUESTS = 300

# Every endpoint a measured level touches; tokens are cached, so only the first call pays.
LATENCY_ENDPOINTS = (
    "mtn.token",
    "mtn.requesttopay",
    "mtn.disbursement_token",
    "mtn.refund",
    "airtel.token",
    "airtel.payment",
    "airtel.refund",
)
# Provider calls counted per level (simulator statistics, deltas).
COUNTED_ENDPOINTS = (
    "mtn.token",
    "mtn.requesttopay",
    "mtn.disbursement_token",
    "mtn.refund",
    "airtel.token",
    "airtel.enquiry",
    "airtel.refund",
)

PAYMENT = "payment"
MTN_REFUND = "mtn refund"
AIRTEL_REFUND = "airtel refund"
KINDS = (PAYMENT, MTN_REFUND, AIRTEL_REFUND)

COUNT_SQL = {
    PAYMENT: "SELECT count(*) FROM payments WHERE initiation_finished_at IS NOT NULL",
    MTN_REFUND: "SELECT count(*) FROM refunds "
    "WHERE provider = 'mtn_momo' AND initiation_finished_at IS NOT NULL",
    AIRTEL_REFUND: "SELECT count(*) FROM refunds "
    "WHERE provider = 'airtel_money' AND initiation_finished_at IS NOT NULL",
}

# The gateway's steps for one refund, innermost first (see bench/profile.py): the deepest match
# on a stack wins; logging wherever it happens.
REFUND_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("provider call: token (Redis cache)", ("CachedTokenAuth.async_auth_flow", "RedisTokenCache.")),
    (
        "provider call: refund (httpx + tenacity)",
        ("MtnMomoDisbursement.request_refund", "AirtelMoneyRefunds.request_refund"),
    ),
    (
        "record the provider's answer [+ stored response] (UPDATE, commit)",
        ("RefundService._record", "RefundService.transition"),
    ),
    (
        "write-ahead under the payment's lock (no-op UPDATE, SUM, refund + audit row "
        "[+ idempotency claim], commit)",
        ("RefundService._write_ahead",),
    ),
    ("read the payment (SELECT)", ("RefundService._payment",)),
    ("refund service, other (rules, request building)", ("RefundService.",)),
    ("idempotency: claim / store response", ("IdempotencyStore.",)),
    ("auth: API key lookup (SELECT)", ("get_current_merchant",)),
    ("response rendering", ("refund_json", "RefundOut.", "JSONResponse.", "model_dump")),
    ("Idempotency-Key wrapper (fingerprint, claim hooks, replay)", ("app/idempotency_http.py",)),
    (
        "FastAPI request parsing and dependency solving",
        ("solve_dependencies", "request_body_to_args", "Request.body", "get_request_handler"),
    ),
    ("response send (uvicorn, through the middlewares)", ("RequestResponseCycle.send",)),
    ("refunds route (body model, dependencies, call)", ("app/refunds/router.py",)),
    ("RequestId / BodySizeLimit middlewares", ("app/request_id.py", "app/body_limit.py")),
)


def requests_for(kind: str, concurrency: int, latency: float, *, quick: bool = False) -> int:
    """500 per level (250 for Airtel, whose every refund needs a payment of its own), fewer
    where a closed loop at 300 ms cannot send them quickly (c / 0.3 s per second at most), so
    that the whole run stays within ~3 minutes on a busy 2-core machine."""
    full = 250 if kind == AIRTEL_REFUND else 500
    if quick:
        return max(20, min(60, concurrency * 2))
    if latency == 0:
        return full
    return min(full, concurrency * 20)


def profile_requests(quick: bool) -> int:
    return 60 if quick else PROFILE_REQUESTS


# --- request lines ----------------------------------------------------------------------------


def payment_lines(prefix: str, n: int, phone: str = MTN_PHONE) -> Iterator[loadgen.Line]:
    provider = "airtel_money" if phone == AIRTEL_PHONE else "mtn_momo"
    for i in range(n):
        order_id = f"{prefix}-{i}"
        body = {
            "order_id": order_id,
            "amount": str(PAYMENT_AMOUNT),
            "currency": "UGX",
            "phone_number": phone,
            "provider": provider,
            "description": f"Order {order_id}",
        }
        yield loadgen.Line("POST", "/v1/payments", json.dumps(body), idempotency_key=order_id)


def mtn_refund_lines(prefix: str, payment_ids: Sequence[str]) -> list[loadgen.Line]:
    """Two partial refunds per payment: every payment's first, then every payment's second."""
    lines = []
    for round_ in range(REFUNDS_PER_PAYMENT):
        for i, payment_id in enumerate(payment_ids):
            body = {
                "payment_id": payment_id,
                "amount": str(REFUND_AMOUNT),
                "reason": f"Bench refund {round_ + 1}",
            }
            key = f"{prefix}-{i}-{round_}"
            lines.append(loadgen.Line("POST", "/v1/refunds", json.dumps(body), key))
    return lines


def airtel_refund_lines(prefix: str, payment_ids: Sequence[str]) -> list[loadgen.Line]:
    """One full refund per payment (no amount: everything still refundable)."""
    return [
        loadgen.Line(
            "POST",
            "/v1/refunds",
            json.dumps({"payment_id": payment_id, "reason": "Bench refund"}),
            f"{prefix}-{i}",
        )
        for i, payment_id in enumerate(payment_ids)
    ]


def lines_needed(count: int, concurrency: int) -> int:
    """Lines for ``count`` responses, plus spares that keep every connection busy to the end
    (see ``bench/wrk_requests.lua``)."""
    return count + concurrency + 8


class PaymentPool:
    """Successful payments of one provider, handed out once each."""

    def __init__(self, provider: str, ids: list[str]) -> None:
        self.provider = provider
        self._ids = ids
        self._next = 0

    def take(self, n: int) -> list[str]:
        if self._next + n > len(self._ids):
            raise RuntimeError(
                f"{self.provider}: {n} payments wanted, {len(self._ids) - self._next} left"
            )
        taken = self._ids[self._next : self._next + n]
        self._next += n
        return taken


def refund_lines(
    kind: str, pool: PaymentPool, prefix: str, count: int, concurrency: int
) -> list[loadgen.Line]:
    needed = lines_needed(count, concurrency)
    if kind == MTN_REFUND:
        return mtn_refund_lines(prefix, pool.take(math.ceil(needed / REFUNDS_PER_PAYMENT)))
    return airtel_refund_lines(prefix, pool.take(needed))


def payments_needed(
    levels: Sequence[tuple[float, int]], *, quick: bool, do_profile: bool
) -> dict[str, int]:
    """How many successful payments of each provider the whole run consumes."""
    mtn = airtel = 0
    for latency, concurrency in levels:
        mtn += math.ceil(
            lines_needed(requests_for(MTN_REFUND, concurrency, latency, quick=quick), concurrency)
            / REFUNDS_PER_PAYMENT
        )
        airtel += lines_needed(
            requests_for(AIRTEL_REFUND, concurrency, latency, quick=quick), concurrency
        )
    mtn += math.ceil(lines_needed(WARMUP, 8) / REFUNDS_PER_PAYMENT)
    airtel += lines_needed(WARMUP // 2, 8)
    mtn += CONTENTION_PAYMENTS
    airtel += CONTENTION_AIRTEL_PAYMENTS
    if do_profile:
        mtn += math.ceil(
            lines_needed(profile_requests(quick), PROFILE_CONCURRENCY) / REFUNDS_PER_PAYMENT
        )
    return {"mtn_momo": mtn, "airtel_money": airtel}


# --- setup ------------------------------------------------------------------------------------


async def _seed_simulator(
    simulator_url: str, mtn_refs: Sequence[str], airtel_refs: Sequence[str]
) -> None:
    """Create each payment at the simulator through its own provider APIs, as the gateway's
    adapters would (the simulator approves at once: ``approval_delay_seconds=0``)."""
    basic = base64.b64encode(f"{DEFAULT_MTN_API_USER}:{DEFAULT_MTN_API_KEY}".encode()).decode()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=simulator_url, limits=limits, trust_env=False, timeout=30
    ) as client:
        mtn_token = await client.post(
            "/collection/token/",
            headers={
                "Authorization": f"Basic {basic}",
                "Ocp-Apim-Subscription-Key": harness.SUBSCRIPTION_KEY,
            },
        )
        mtn_token.raise_for_status()
        mtn_headers = {
            "Authorization": f"Bearer {mtn_token.json()['access_token']}",
            "Ocp-Apim-Subscription-Key": harness.SUBSCRIPTION_KEY,
            "X-Target-Environment": "sandbox",
        }
        airtel_token = await client.post(
            "/auth/oauth2/token",
            json={
                "client_id": DEFAULT_AIRTEL_CLIENT_ID,
                "client_secret": DEFAULT_AIRTEL_CLIENT_SECRET,
                "grant_type": "client_credentials",
            },
        )
        airtel_token.raise_for_status()
        airtel_headers = {
            "Authorization": f"Bearer {airtel_token.json()['access_token']}",
            "X-Country": "UG",
            "X-Currency": "UGX",
        }
        semaphore = asyncio.Semaphore(64)

        async def mtn(reference: str) -> None:
            async with semaphore:
                response = await client.post(
                    "/collection/v1_0/requesttopay",
                    headers={**mtn_headers, "X-Reference-Id": reference},
                    json={
                        "amount": str(PAYMENT_AMOUNT),
                        "currency": "UGX",
                        "externalId": reference,
                        "payer": {"partyIdType": "MSISDN", "partyId": "256" + MTN_PHONE[1:]},
                        "payerMessage": "Bench order",
                        "payeeNote": "Bench order",
                    },
                )
                if response.status_code != 202:
                    raise RuntimeError(f"simulator refused an MTN seed: {response.status_code}")

        async def airtel(reference: str) -> None:
            async with semaphore:
                response = await client.post(
                    "/merchant/v1/payments/",
                    headers=airtel_headers,
                    json={
                        "reference": "Bench order",
                        "subscriber": {
                            "country": "UG",
                            "currency": "UGX",
                            "msisdn": AIRTEL_PHONE[1:],
                        },
                        "transaction": {
                            "amount": PAYMENT_AMOUNT,
                            "country": "UG",
                            "currency": "UGX",
                            "id": reference,
                        },
                    },
                )
                if response.status_code != 200 or not response.json()["status"]["success"]:
                    raise RuntimeError(f"simulator refused an Airtel seed: {response.text}")

        await asyncio.gather(*(mtn(r) for r in mtn_refs), *(airtel(r) for r in airtel_refs))


async def _seed_database(
    db_url: str, merchant_id: str, rows: Sequence[tuple[str, str, str | None]]
) -> list[str]:
    """Successful payment rows for (provider, reference, provider transaction id); their ids."""
    now = datetime.now(UTC)
    records = []
    for provider, reference, transaction_id in rows:
        payment_id = new_id("pay")
        phone = "256" + (MTN_PHONE if provider == "mtn_momo" else AIRTEL_PHONE)[1:]
        records.append(
            (
                payment_id,
                merchant_id,
                f"seed-{reference}"[:64],
                provider,
                "successful",
                PAYMENT_AMOUNT,
                "UGX",
                phone,
                "Bench order",
                "{}",
                reference,
                transaction_id,
                now,
                0,
                now,
                now,
                now,
            )
        )
    connection = await asyncpg.connect(db_url)
    try:
        await connection.copy_records_to_table(
            "payments",
            records=records,
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
                "provider_transaction_id",
                "initiation_finished_at",
                "check_count",
                "created_at",
                "updated_at",
                "completed_at",
            ],
        )
    finally:
        await connection.close()
    return [record[0] for record in records]


def seed_payments(
    db_url: str, merchant_id: str, simulator_url: str, n_mtn: int, n_airtel: int
) -> dict[str, list[str]]:
    """Successful payments, as they stand after their callbacks: known to the simulator (its own
    APIs, approved at once) and ``successful`` in the gateway's database (rows written directly,
    like ``bench.reconcile`` does, so the setup costs seconds, not minutes)."""
    mtn_refs = [str(uuid.uuid4()) for _ in range(n_mtn)]
    airtel_refs = [uuid.uuid4().hex[:20] for _ in range(n_airtel)]
    asyncio.run(_seed_simulator(simulator_url, mtn_refs, airtel_refs))
    with httpx.Client(base_url=simulator_url, timeout=60, trust_env=False) as client:
        ledger = client.get("/_simulator/payments").json()
    known = {
        (p["provider"], p["reference"]): p
        for p in ledger["payments"]
        if p["status"] == "SUCCESSFUL"
    }
    rows: list[tuple[str, str, str | None]] = []
    for provider, refs in (("mtn_momo", mtn_refs), ("airtel_money", airtel_refs)):
        for reference in refs:
            payment = known.get((provider, reference))
            if payment is None or not payment.get("transaction_id"):
                raise RuntimeError(f"seed payment {provider} {reference} is not SUCCESSFUL")
            rows.append((provider, reference, payment["transaction_id"]))
    ids = asyncio.run(_seed_database(db_url, merchant_id, rows))
    return {"mtn_momo": ids[:n_mtn], "airtel_money": ids[n_mtn:]}


def psql_value(db_url: str, query: str, attempts: int = 20) -> str:
    """``harness.psql_value``, retried: PostgreSQL's 100 connections are shared with whatever
    else runs on the machine (other sessions' test suites), and a reading that finds them all
    taken for a moment ("too many clients already") is tried again rather than ending the run."""
    for attempt in range(attempts):
        try:
            return harness.psql_value(db_url, query)
        except subprocess.CalledProcessError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


class Rows(Target):
    """A level's target; it counts the rows it created with the retried reading above."""

    def payments(self) -> int:
        self.count_queries += 1
        return int(psql_value(self.db_url, self._count_sql))


def latency_patch(latency: float) -> dict[str, Any]:
    faults = {"latency_seconds": latency}
    return {"endpoint_faults": {endpoint: faults for endpoint in LATENCY_ENDPOINTS}}


def disbursement_env() -> dict[str, str]:
    return {
        "MTN_MOMO_DISBURSEMENT_API_USER": DEFAULT_MTN_DISBURSEMENT_API_USER,
        "MTN_MOMO_DISBURSEMENT_API_KEY": DEFAULT_MTN_DISBURSEMENT_API_KEY,
        "MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY": DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
    }


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Level:
    kind: str
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
    operations: int
    server_cpu_s: float
    cpu_ms_per_op: float
    kernel_cpu_share: float
    postgres_cpu_ms_per_op: float
    simulator_cpu_ms_per_op: float
    loadgen_cpu_ms_per_request: float | None
    provider_calls_per_op: dict[str, float]
    machine_busy_cores: float
    other_load_cores: float
    backend: str
    errors: dict[str, int] = field(default_factory=dict)


def _stats_counts(control: SimulatorControl) -> dict[str, int]:
    stats = control.stats()
    return {endpoint: harness.requests_to(stats, endpoint) for endpoint in COUNTED_ENDPOINTS}


def measure(
    target: Target,
    simulator: Service,
    control: SimulatorControl,
    lines: list[loadgen.Line],
    *,
    kind: str,
    latency: float,
    concurrency: int,
    count: int,
    work_dir: Path,
    backend: str,
) -> Level:
    """One level: ``count`` responses at ``concurrency``, the server's CPU over the window.

    Unlike ``bench.initiation`` the simulator is not reset between levels: it would forget the
    payments the refunds refer to. Provider calls are counted as deltas instead."""
    requests_file = (
        work_dir / f"{kind.replace(' ', '-')}-{int(latency * 1000)}ms-c{concurrency}.tsv"
    )
    loadgen.write_requests(requests_file, lines)
    before_ops = target.payments()
    calls0 = _stats_counts(control)
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
    operations = target.settle() - before_ops
    user1, sys1 = target.service.cpu_split()
    cpu = (user1 - user0) + (sys1 - sys0)
    pg = harness.postgres_cpu_seconds() - pg0
    sim = simulator.cpu_seconds() - sim0
    busy = harness.machine_busy_seconds() - busy0
    window = time.monotonic() - t0
    other = max(0.0, busy - cpu - pg - sim - (result.client_cpu_seconds or 0.0))
    calls1 = _stats_counts(control)
    per = max(operations, 1)
    return Level(
        kind=kind,
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
        operations=operations,
        server_cpu_s=round(cpu, 3),
        cpu_ms_per_op=round(cpu / per * 1000, 3),
        kernel_cpu_share=round((sys1 - sys0) / cpu, 2) if cpu else 0.0,
        postgres_cpu_ms_per_op=round(pg / per * 1000, 3),
        simulator_cpu_ms_per_op=round(sim / per * 1000, 3),
        loadgen_cpu_ms_per_request=(
            round(result.client_cpu_seconds / max(result.requests, 1) * 1000, 3)
            if result.client_cpu_seconds is not None
            else None
        ),
        provider_calls_per_op={
            endpoint: round((calls1[endpoint] - calls0[endpoint]) / per, 3)
            for endpoint in COUNTED_ENDPOINTS
            if calls1[endpoint] != calls0[endpoint]
        },
        machine_busy_cores=round(busy / window, 2),
        other_load_cores=round(other / window, 2),
        backend=result.backend,
        errors=result.errors,
    )


def send(target: Target, lines: list[loadgen.Line], path: Path, concurrency: int) -> loadgen.Result:
    """Exactly ``len(lines)`` requests (no spares), not measured."""
    loadgen.write_requests(path, lines)
    result = loadgen.run(
        url=target.service.url or "",
        requests_file=path,
        count=len(lines),
        concurrency=concurrency,
        backend="httpx",
        auth=target.auth,
    )
    target.settle()
    return result


# --- contention probe -------------------------------------------------------------------------


async def _contention(
    url: str, auth: str, mtn_ids: Sequence[str], airtel_ids: Sequence[str], tag: str
) -> dict[str, Any]:
    """Three 20,000 refunds of one 50,000 MTN payment at once (two fit), two full refunds of
    one Airtel payment at once (one fits): every request of a payment in flight together."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": auth}, limits=limits, timeout=60, trust_env=False
    ) as client:

        async def refund(payment_id: str, amount: int | None, key: str) -> tuple[str, int, str]:
            body: dict[str, Any] = {"payment_id": payment_id}
            if amount is not None:
                body["amount"] = str(amount)
            response = await client.post("/v1/refunds", json=body, headers={"Idempotency-Key": key})
            code = ""
            if response.status_code >= 400:
                code = str(response.json().get("code") or response.json().get("type", ""))
            return payment_id, response.status_code, code

        calls = [
            refund(pid, REFUND_AMOUNT, f"{tag}-contend-{pid}-{n}")
            for pid in mtn_ids
            for n in range(3)
        ] + [refund(pid, None, f"{tag}-contend-{pid}-{n}") for pid in airtel_ids for n in range(2)]
        answers = await asyncio.gather(*calls)
    per_payment: dict[str, Counter[int]] = defaultdict(Counter)
    codes: Counter[str] = Counter()
    for payment_id, status, code in answers:
        per_payment[payment_id][status] += 1
        if code:
            codes[f"{status} {code}"] += 1
    mtn_ok = sum(1 for pid in mtn_ids if per_payment[pid] == Counter({201: 2, 422: 1}))
    airtel_ok = sum(1 for pid in airtel_ids if per_payment[pid] == Counter({201: 1, 422: 1}))
    return {
        "mtn_payments": len(mtn_ids),
        "mtn_payments_two_taken_one_refused": mtn_ok,
        "airtel_payments": len(airtel_ids),
        "airtel_payments_one_taken_one_refused": airtel_ok,
        "refusals": dict(codes),
    }


# --- checks -----------------------------------------------------------------------------------


def check_invariants(db_url: str, simulator_url: str, levels: Sequence[Level]) -> dict[str, Any]:
    """What must hold at the end of the run; ``problems`` lists whatever does not."""
    problems: list[str] = []
    for level in levels:
        if level.ok != level.requests or set(level.statuses) != {"201"} or level.errors:
            problems.append(
                f"{level.kind} {level.latency_ms} ms c={level.concurrency}: "
                f"{level.statuses} {level.errors}"
            )
    over = int(
        psql_value(
            db_url,
            "SELECT count(*) FROM (SELECT p.id FROM payments p"
            " JOIN refunds r ON r.payment_id = p.id WHERE r.status <> 'failed'"
            " GROUP BY p.id, p.amount_minor HAVING sum(r.amount_minor) > p.amount_minor) AS x",
        )
    )
    if over:
        problems.append(f"{over} payments with non-failed refunds above their amount")
    wrong_total = int(
        psql_value(
            db_url,
            "SELECT count(*) FROM payments p WHERE p.amount_refunded_minor <> (SELECT"
            " coalesce(sum(r.amount_minor), 0) FROM refunds r WHERE r.payment_id = p.id"
            " AND r.status = 'succeeded')",
        )
    )
    if wrong_total:
        problems.append(f"{wrong_total} payments whose amount_refunded is not their succeeded sum")
    statuses: dict[str, dict[str, int]] = defaultdict(dict)
    for row in psql_value(
        db_url, "SELECT provider, status, count(*) FROM refunds GROUP BY 1, 2 ORDER BY 1, 2"
    ).splitlines():
        provider, status, n = row.split("|")
        statuses[provider][status] = int(n)
    failed = sum(by_status.get("failed", 0) for by_status in statuses.values())
    if failed:
        problems.append(f"{failed} refunds failed")
    gateway_refs = {
        ref
        for ref in psql_value(
            db_url, "SELECT provider_reference FROM refunds WHERE provider = 'mtn_momo'"
        ).splitlines()
    }
    amounts = {
        ref: Decimal(amount)
        for ref, amount in (
            row.split("|")
            for row in psql_value(
                db_url, "SELECT provider_reference, amount_minor FROM payments"
            ).splitlines()
        )
    }
    with httpx.Client(base_url=simulator_url, timeout=60, trust_env=False) as client:
        ledger = client.get("/_simulator/refunds").json()
    sim_refunds = ledger["refunds"]
    payouts = Counter(r["payouts"] for r in sim_refunds)
    if any(n > 1 for n in payouts if isinstance(n, int)):
        problems.append(f"simulator refunds paid out more than once: {dict(payouts)}")
    create_requests = Counter(
        r["create_requests"] for r in sim_refunds if r["provider"] == "mtn_momo"
    )
    sim_mtn = {r["reference"] for r in sim_refunds if r["provider"] == "mtn_momo"}
    if sim_mtn != gateway_refs:
        problems.append(
            f"MTN refunds: {len(gateway_refs - sim_mtn)} in the gateway only, "
            f"{len(sim_mtn - gateway_refs)} at the simulator only"
        )
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for r in sim_refunds:
        if r["status"] == "SUCCESSFUL":
            paid[r["payment_reference"]] += Decimal(r["amount"])
    # Airtel's refunds name the collection by its airtel_money_id, not the payment reference.
    airtel_paid = {
        row.split("|")[0]: row.split("|")[1]
        for row in psql_value(
            db_url,
            "SELECT provider_transaction_id, provider_reference FROM payments"
            " WHERE provider = 'airtel_money' AND provider_transaction_id IS NOT NULL",
        ).splitlines()
    }
    over_at_simulator = 0
    for reference, total in paid.items():
        payment_reference = airtel_paid.get(reference, reference)
        amount = amounts.get(payment_reference)
        if amount is None or total > amount:
            over_at_simulator += 1
    if over_at_simulator:
        problems.append(
            f"{over_at_simulator} payments refunded beyond their amount (or unknown) at the "
            "simulator"
        )
    if ledger.get("unaccepted"):
        problems.append(f"{len(ledger['unaccepted'])} refund create calls the simulator refused")
    return {
        "gateway_refunds_by_status": dict(statuses),
        "simulator_refunds": len(sim_refunds),
        "simulator_refunds_by_status": dict(Counter(r["status"] for r in sim_refunds)),
        "simulator_payouts_per_refund": {str(k): v for k, v in payouts.items()},
        "simulator_create_requests_per_mtn_refund": {str(k): v for k, v in create_requests.items()},
        "payments_over_refunded": over,
        "problems": problems,
    }


# --- profile ----------------------------------------------------------------------------------


def refund_steps(path: Path) -> list[tuple[str, float]]:
    """Share of samples per refund step (innermost step on the stack), like
    ``bench.profile.summarise`` does for initiation's steps."""
    logging_step = profile.STEPS[0]
    steps: Counter[str] = Counter()
    total = 0
    for raw in path.read_text().splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        steps[_refund_step(frames, logging_step)] += count
    return [(k, round(v / total * 100, 1)) for k, v in steps.most_common()] if total else []


def _refund_step(frames: list[str], logging_step: tuple[str, tuple[str, ...]]) -> str:
    if any(needle in frame for frame in frames for needle in logging_step[1]):
        return logging_step[0]
    for frame in reversed(frames):
        for label, needles in REFUND_STEPS:
            if any(needle in frame for needle in needles):
                return label
    for label, needles in profile.UNATTRIBUTED:
        if any(needle in frame for frame in frames for needle in needles):
            return label
    return "event loop (uvloop, C protocol callbacks)"


def profile_run(
    target: Target, lines: list[loadgen.Line], count: int, raw_path: Path
) -> dict[str, Any] | None:
    """py-spy (``--gil --nonblocking``, 200 Hz) on the gateway while one level runs again."""
    spy = profile.py_spy()
    if spy is None:
        return None
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
        requests_file = raw_path.with_suffix(".tsv")
        loadgen.write_requests(requests_file, lines)
        loadgen.run(
            url=target.service.url or "",
            requests_file=requests_file,
            count=count,
            concurrency=PROFILE_CONCURRENCY,
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
    return {
        "samples": summary.samples,
        "steps": refund_steps(raw_path) if target.name != PAYMENT else summary.inclusive_by_step,
        "database_operations": summary.database_operations,
        "self_by_area": summary.self_by_area,
        "raw_path": str(raw_path),
    }


# --- the run ----------------------------------------------------------------------------------


def run(
    *,
    quick: bool = False,
    levels: tuple[int, ...] = CONCURRENCY_LEVELS,
    latencies: tuple[float, ...] = LATENCIES,
    airtel: bool = True,
    do_profile: bool = True,
    backend: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    started = time.monotonic()
    work_dir = harness.run_dir("refunds")
    tag = time.strftime("%H%M%S")
    db_url = harness.recreate_database(DATABASE)
    subprocess.run(
        ["redis-cli", "-u", REDIS_URL, "FLUSHDB"], check=True, capture_output=True, timeout=30
    )
    merchant = harness.create_merchant(db_url, "http://127.0.0.1:9/events")
    auth = f"Bearer {merchant['api_key']}"
    # Approval at once, refunds paid out when they arrive (no timer per refund), no callbacks:
    # each level measures the API call alone, as in bench.initiation.
    simulator = harness.start_simulator(
        work_dir,
        {"callbacks_enabled": False, "approval_delay_seconds": 0, "refund_delay_seconds": 0},
    )
    control = SimulatorControl(simulator.url or "")
    services = [simulator]
    try:
        gateway = harness.start_gateway(
            work_dir,
            db_url=db_url,
            simulator_url=simulator.url or "",
            extra_env={**disbursement_env(), "REDIS_URL": REDIS_URL},
        )
        services.append(gateway)
        kinds = [kind for kind in KINDS if airtel or kind != AIRTEL_REFUND]
        targets = {kind: Rows(kind, gateway, auth, COUNT_SQL[kind], db_url) for kind in kinds}

        grid = [(latency, c) for latency in latencies for c in levels]
        needed = payments_needed(grid, quick=quick, do_profile=do_profile)
        if not airtel:
            needed["airtel_money"] = 0
        t_setup = time.monotonic()
        seeded = seed_payments(
            db_url, merchant["id"], simulator.url or "", needed["mtn_momo"], needed["airtel_money"]
        )
        pools = {provider: PaymentPool(provider, ids) for provider, ids in seeded.items()}
        setup_seconds = time.monotonic() - t_setup
        log(f"setup: {needed} successful payments in {setup_seconds:.1f} s")

        # Warm-up (not measured): connections, token caches, prepared statements.
        send(targets[PAYMENT], list(payment_lines(f"{tag}-warm", WARMUP)), work_dir / "w1.tsv", 8)
        pool = pools["mtn_momo"]
        send(
            targets[MTN_REFUND],
            refund_lines(MTN_REFUND, pool, f"{tag}-warm-mtn", WARMUP, 8),
            work_dir / "w2.tsv",
            8,
        )
        if airtel:
            send(
                targets[AIRTEL_REFUND],
                refund_lines(
                    AIRTEL_REFUND, pools["airtel_money"], f"{tag}-warm-airtel", WARMUP // 2, 8
                ),
                work_dir / "w3.tsv",
                8,
            )

        results: list[Level] = []
        for latency in latencies:
            control.configure(latency_patch(latency))
            for concurrency in levels:
                for kind in kinds:
                    count = requests_for(kind, concurrency, latency, quick=quick)
                    prefix = f"{tag}-{kind.replace(' ', '-')}-{int(latency * 1000)}-{concurrency}"
                    if kind == PAYMENT:
                        lines = list(payment_lines(prefix, lines_needed(count, concurrency)))
                    else:
                        provider = "mtn_momo" if kind == MTN_REFUND else "airtel_money"
                        lines = refund_lines(kind, pools[provider], prefix, count, concurrency)
                    level = measure(
                        targets[kind],
                        simulator,
                        control,
                        lines,
                        kind=kind,
                        latency=latency,
                        concurrency=concurrency,
                        count=count,
                        work_dir=work_dir,
                        backend=backend,
                    )
                    results.append(level)
                    log(
                        f"{kind:>13} {level.latency_ms:>3} ms c={concurrency:<3} "
                        f"{level.throughput:8.1f}/s p50 {level.p50_ms:7.1f} "
                        f"p99 {level.p99_ms:7.1f} ms cpu {level.cpu_ms_per_op:6.2f} ms/op "
                        f"pg {level.postgres_cpu_ms_per_op:5.2f} ms/op "
                        f"ok {level.ok}/{level.requests}"
                    )
        control.configure(latency_patch(0.0))

        contention = asyncio.run(
            _contention(
                gateway.url or "",
                auth,
                pools["mtn_momo"].take(CONTENTION_PAYMENTS),
                pools["airtel_money"].take(CONTENTION_AIRTEL_PAYMENTS) if airtel else [],
                tag,
            )
        )
        log(f"contention probe: {contention}")

        profiles: dict[str, Any] = {}
        if do_profile:
            count = profile_requests(quick)
            profiles[MTN_REFUND] = profile_run(
                targets[MTN_REFUND],
                refund_lines(MTN_REFUND, pool, f"{tag}-profile-mtn", count, PROFILE_CONCURRENCY),
                count,
                work_dir / "profile-mtn-refund-0ms-c64.txt",
            )
            profiles[PAYMENT] = profile_run(
                targets[PAYMENT],
                list(payment_lines(f"{tag}-profile-pay", lines_needed(count, PROFILE_CONCURRENCY))),
                count,
                work_dir / "profile-payment-0ms-c64.txt",
            )

        checks = check_invariants(db_url, simulator.url or "", results)
        if contention["mtn_payments_two_taken_one_refused"] != contention["mtn_payments"] or (
            contention["airtel_payments_one_taken_one_refused"] != contention["airtel_payments"]
        ):
            checks["problems"].append(f"contention probe: {contention}")
        log(f"checks: {checks}")
        output: dict[str, Any] = {
            "levels": [asdict(r) for r in results],
            "contention": contention,
            "checks": checks,
            "profiles": profiles,
            "setup_payments": needed,
            "setup_seconds": round(setup_seconds, 1),
            "gateway_peak_rss_mb": round(gateway.peak_rss_mb(), 1),
            "latency_scope": ", ".join(LATENCY_ENDPOINTS) + " (endpoint_faults)",
            "gateway_env": "REDIS_URL set (tokens in Redis, jobs via arq; no worker running), "
            "MTN Disbursement credentials set",
            "quick": quick,
            "seconds": round(time.monotonic() - started, 1),
            "work_dir": str(work_dir),
        }
        (work_dir / "refunds.json").write_text(json.dumps(output, indent=2))
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
    parser.add_argument("--no-airtel", action="store_true", help="skip the Airtel full refunds")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--backend", choices=["auto", "wrk", "httpx"], default="auto")
    args = parser.parse_args()
    harness.exit_on_sigterm()
    machine = harness.machine_info()
    output = run(
        quick=args.quick,
        levels=tuple(int(x) for x in args.levels.split(",")),
        latencies=tuple(float(x) for x in args.latencies.split(",")),
        airtel=not args.no_airtel,
        do_profile=not args.no_profile,
        backend=args.backend,
    )
    output["machine"] = machine
    output["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    Path(output["work_dir"], "refunds.json").write_text(json.dumps(output, indent=2))
    from bench import report

    print(report.refunds_section(output))
    if output["checks"]["problems"]:
        raise SystemExit(f"invariant checks failed: {output['checks']['problems']}")


if __name__ == "__main__":
    main()
