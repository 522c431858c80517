"""The operator console on a big database: response times of its pages with 1,000,000 payments.

1. Setup (skipped with ``--reuse`` when the database already holds the same seed): a new
   PostgreSQL database (``momo_bench_console``), migrated with ``app.migrate``, then seeded in
   a few ``INSERT … SELECT`` statements over ``generate_series`` (minutes at most for 10^6):

   - 20 merchants (``app.merchants.service.create_merchant``), a few big ones and a long tail
     (22 %, 15 %, 11 % … 1 % of the payments);
   - payments spread over the last 180 days, in time order, more in the afternoon and the
     evening (Kampala time), on Fridays and Saturdays, and slowly growing (the last 24 h hold
     ~6,000); outcomes ~83 % successful, 12 % failed (with the providers' failure codes), 5 %
     expired (30 min after creation), 0.1 % needs_review; a payment whose outcome would come
     later than now is still pending (so pending ones are only in the last half hour);
     mtn_momo ~65 % / airtel_money ~35 %, by customer: 300,000 customers with their own Uganda
     MSISDN (2567[78]… for MTN, 2567[05]… for Airtel), some of them regulars; amounts
     log-normal around UGX 25,000 in steps of 500; unique order ids and provider references;
   - every payment's audit trail (created, then its outcome), an event (and its delivery
     attempt) for each payment of the last 7 days and 5 % of the older ones, a refund for ~1 %
     of the successful payments (with their audit trail, and the payments' refunded amounts),
     ~10,000 operator audit entries by 6 operators (``create_operator``);
   - then VACUUM ANALYZE, as autovacuum would have done on a live database.

2. The console served by uvicorn on a real port (``app.simulator.server.serve_in_background``,
   ``create_app(..., background_jobs=False)``), signed in as an admin the way a browser does
   (``GET /console/login`` for the CSRF cookie and token, ``POST /console/login``). Each URL:
   3 warm-up requests, then 20 timed ones in sequence (httpx, keep-alive); p50/p95/max in ms.
   One more request per URL runs with a ``before_cursor_execute`` listener on the app's engine,
   counting its SQL statements and their time; for a URL whose p50 is over ``--explain-over``
   (100 ms) its statements are run again under ``EXPLAIN (ANALYZE, BUFFERS)`` (a custom plan
   for these parameters, and the generic plan that prepared statements switch to after five
   runs) and printed.

Right after seeding, one page of ``GET /v1/payments`` for the biggest merchant (and one payment
of each status) is loaded through the app with that merchant's API key: the seeded rows are
what the API expects. Results: a table on stdout, JSON and the plans under
``bench/results/<timestamp>-console/``.

    .venv/bin/python -m bench.console                      # seeds 10^6 payments (~3-5 min)
    .venv/bin/python -m bench.console --reuse              # measure again on the same data
    .venv/bin/python -m bench.console --reuse --revision 0005   # without the console indexes
    .venv/bin/python -m bench.console --payments 20000     # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.merchants.service import create_merchant
from app.migrate import downgrade_async, upgrade_async
from app.operators.service import ADMIN, VIEWER, OperatorExists, create_operator
from app.simulator.server import serve_in_background
from bench import harness

DATABASE = "momo_bench_console"
PAYMENTS = 1_000_000
DAYS = 180
WARMUP = 3
TIMED = 20
EXPLAIN_OVER_MS = 100.0
# Statements of a slow page this slow (in the captured request) get their plans printed.
EXPLAIN_STATEMENT_MS = 5.0
KAMPALA = timezone(timedelta(hours=3))  # no daylight saving time

ADMIN_EMAIL = "admin@bench.example"
PASSWORD = "bench console password"  # a benchmark operator's, on a local database
OTHER_OPERATORS = (
    ("amina@bench.example", ADMIN),
    ("brian@bench.example", ADMIN),
    ("grace@bench.example", VIEWER),
    ("joseph@bench.example", VIEWER),
    ("sarah@bench.example", VIEWER),
)

# Merchants, biggest first, and their share of the payments in percent (sums to 100).
MERCHANTS = (
    ("Kampala Fresh Market", 22),
    ("Jinja Electronics", 15),
    ("Nile Fashion House", 11),
    ("Entebbe Air Tickets", 8),
    ("Mbarara Dairy Co", 7),
    ("Kabalagala Pharmacy", 6),
    ("Ntinda Hardware", 5),
    ("Masaka Coffee Roasters", 4),
    ("Wandegeya Stationers", 3),
    ("Mukono Furniture", 3),
    ("Kololo Bakery", 3),
    ("Fort Portal Tours", 2),
    ("Lira Agro Supplies", 2),
    ("Bugolobi Gym", 2),
    ("Naguru Cinema", 2),
    ("Mbale Motor Spares", 1),
    ("Arua Solar", 1),
    ("Soroti School Fees", 1),
    ("Hoima Water Services", 1),
    ("Gulu Books", 1),
)
# Payments per local hour of the day (Kampala), relative: quiet nights, lunch and evening peaks.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 9, 8, 7, 7, 7, 8, 9, 10, 9, 7, 4, 2)
# Monday … Sunday.
WEEKDAY_WEIGHTS = (1.0, 0.95, 0.95, 1.0, 1.15, 1.25, 0.85)
CUSTOMERS = 300_000


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- the database ---------------------------------------------------------------------------


def sqlalchemy_url(database_url: str) -> str:
    return Settings(_env_file=None, database_url=database_url).database_url


def asyncpg_dsn(database_url: str) -> str:
    return (
        make_url(sqlalchemy_url(database_url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


async def _admin_connection(database_url: str) -> asyncpg.Connection:
    url = make_url(asyncpg_dsn(database_url)).set(database="postgres")
    return await asyncpg.connect(url.render_as_string(hide_password=False))


async def database_seed(database_url: str) -> dict[str, Any] | None:
    """What this database was seeded with (the comment ``seed`` leaves on it), or None."""
    admin = await _admin_connection(database_url)
    try:
        name = make_url(asyncpg_dsn(database_url)).database
        row = await admin.fetchrow(
            "SELECT shobj_description(oid, 'pg_database') AS note FROM pg_database "
            "WHERE datname = $1",
            name,
        )
    finally:
        await admin.close()
    if row is None or not row["note"]:
        return None
    try:
        note: dict[str, Any] = json.loads(row["note"])
    except ValueError:
        return None
    return note if note.get("bench") == "console" else None


async def recreate_database(database_url: str) -> None:
    name = make_url(asyncpg_dsn(database_url)).database
    admin = await _admin_connection(database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        found = await connection.exec_driver_sql(
            "SELECT to_regclass('alembic_version') IS NOT NULL"
        )
        if not found.scalar_one():
            return None
        result = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        return result.scalar_one_or_none()


async def migrate_to(database_url: str, revision: str) -> dict[str, Any]:
    """Bring the database to ``revision`` (``head`` or a numbered one), up or down; timed, since
    on a big table building an index is part of what a migration costs."""
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        before = await current_revision(engine)
        started = time.monotonic()
        if revision != "head" and before is not None and int(before) > int(revision):
            await downgrade_async(engine, revision)
        else:
            await upgrade_async(engine, revision)
        seconds = time.monotonic() - started
        after = await current_revision(engine)
    finally:
        await engine.dispose()
    if before != after:
        log(f"migrated {before} -> {after} in {seconds:.1f} s")
    return {"from": before, "to": after, "seconds": round(seconds, 1)}


def hour_buckets(total: int, now: datetime, days: int = DAYS) -> tuple[list[datetime], list[int]]:
    """The start of each hour before ``now`` and how many payments it gets (summing to
    ``total``): local hour of day x day of week x a slow growth, rounded by largest
    remainder."""
    starts: list[datetime] = []
    weights: list[float] = []
    hours = days * 24
    for back in range(hours):
        start = now - timedelta(hours=back + 1)
        local = start.astimezone(KAMPALA)
        growth = 0.8 + 0.4 * (1 - back / hours)
        starts.append(start)
        weights.append(HOUR_WEIGHTS[local.hour] * WEEKDAY_WEIGHTS[local.weekday()] * growth)
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    counts = [math.floor(x) for x in exact]
    short = total - sum(counts)
    for i in sorted(range(hours), key=lambda i: exact[i] - counts[i], reverse=True)[:short]:
        counts[i] += 1
    return starts, counts


# The providers' failure codes for failed payments, with the messages they come with, and the
# share of failed payments each has (sums to 1).
FAILURES = (
    ("insufficient_funds", "Payer does not have enough balance", 0.35),
    ("rejected_by_payer", "The payer rejected the request", 0.22),
    ("incorrect_pin", "Incorrect PIN entered", 0.10),
    ("payer_not_found", "Payer account not found", 0.08),
    ("payer_timeout", "The payer did not respond in time", 0.08),
    ("limit_exceeded", "Transaction limit exceeded", 0.05),
    ("not_allowed", "Payer is not allowed to make this transaction", 0.05),
    ("provider_error", "Internal error at the provider", 0.05),
    ("not_found_at_provider", "The provider has no record of this payment.", 0.02),
)


def _failure_table() -> str:
    rows, low = [], 0.0
    for code, message, share in FAILURES:
        high = 1.01 if code == FAILURES[-1][0] else low + share
        rows.append(f"('{code}', '{message}', {low:.4f}, {high:.4f})")
        low = high
    return "(VALUES " + ", ".join(rows) + ") AS f(code, message, low, high)"


_ISO = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
# Our ids: a prefix, 12 hex digits of milliseconds since the epoch, 20 random hex digits.
_ID = (
    "'{prefix}_' || lpad(to_hex(floor(extract(epoch FROM {at}) * 1000)::bigint), 12, '0') "
    "|| substr(md5(random()::text || clock_timestamp()::text), 1, 20)"
)

SEED_PAYMENTS = f"""
INSERT INTO payments (
    id, merchant_id, order_id, provider, status, amount_minor, currency, phone_number,
    description, metadata, provider_reference, provider_transaction_id, failure_code,
    failure_message, reported_amount_minor, reported_currency, initiation_finished_at,
    next_check_at, check_count, amount_refunded_minor, created_at, updated_at, completed_at)
WITH draws AS (
    SELECT b.start + random() * interval '1 hour' AS created_at,
           random() AS u_merchant, random() AS u_customer, random() AS u_outcome,
           random() AS u_delay, random() AS u_failure, 1 - random() AS u_amount1,
           random() AS u_amount2
    FROM unnest($1::timestamptz[], $2::int[]) AS b(start, n), generate_series(1, b.n)
), numbered AS (
    SELECT row_number() OVER (ORDER BY created_at) AS seq,
           floor({CUSTOMERS} * power(u_customer, 1.6))::int AS customer, d.*
    FROM draws d
), shaped AS (
    SELECT n.*,
        ($3::text[])[1 + floor(u_merchant * 100)::int] AS merchant_id,
        CASE WHEN abs(hashtext('provider' || customer)::bigint) % 100 < 65
             THEN 'mtn_momo' ELSE 'airtel_money' END AS provider,
        CASE WHEN u_outcome < 0.001 THEN 'needs_review'
             WHEN u_outcome < 0.121 THEN 'failed'
             WHEN u_outcome < 0.171 THEN 'expired'
             ELSE 'successful' END AS outcome,
        least(5000000, greatest(1000, round(exp(ln(25000) + 1.1 * sqrt(-2 * ln(u_amount1))
            * cos(2 * pi() * u_amount2)) / 500) * 500))::bigint AS amount,
        'ORD-' || to_char(created_at AT TIME ZONE 'Africa/Kampala', 'YYMMDD') || '-'
            || lpad(seq::text, 7, '0') AS order_id
    FROM numbered n
), timed AS (
    SELECT s.*,
        s.created_at + make_interval(secs => CASE s.outcome
            WHEN 'successful' THEN 8 + 110 * power(u_delay, 2)
            WHEN 'failed' THEN 3 + 60 * u_delay
            WHEN 'expired' THEN 1830 + 270 * u_delay
            ELSE 300 + 7200 * u_delay END) AS settled_at,
        s.created_at + make_interval(secs => 0.25 + 1.5 * u_delay) AS initiated_at,
        CASE WHEN s.provider = 'mtn_momo'
             THEN (ARRAY['25677', '25678'])[1 + abs(hashtext('prefix' || customer)::bigint) % 2]
             ELSE (ARRAY['25670', '25675'])[1 + abs(hashtext('prefix' || customer)::bigint) % 2]
        END || lpad((abs(hashtext('number' || customer)::bigint) % 10000000)::text, 7, '0')
            AS phone
    FROM shaped s
), settled AS (
    SELECT t.*, t.settled_at <= now() AS final FROM timed t
)
SELECT
    {_ID.format(prefix="pay", at="s.created_at")},
    s.merchant_id, s.order_id, s.provider,
    CASE WHEN s.final THEN s.outcome ELSE 'pending' END,
    s.amount, 'UGX', s.phone, 'Order ' || s.order_id,
    CASE WHEN s.seq % 3 = 0 THEN jsonb_build_object('cart', 'c_' || s.seq) ELSE '{{}}'::jsonb END,
    gen_random_uuid()::text,
    CASE WHEN NOT s.final OR s.outcome IN ('failed', 'expired') THEN NULL
         WHEN s.provider = 'mtn_momo' THEN (4100000000 + s.seq)::text
         ELSE 'MP' || to_char(s.created_at, 'YYMMDD.HH24MI') || '.'
              || upper(substr(md5(s.seq::text), 1, 6)) END,
    CASE WHEN s.final AND s.outcome = 'failed' THEN f.code END,
    CASE WHEN NOT s.final THEN NULL
         WHEN s.outcome = 'failed' THEN f.message
         WHEN s.outcome = 'expired' THEN 'The payer did not complete the payment in time.'
         WHEN s.outcome = 'needs_review'
              THEN 'provider now says successful, we recorded failed' END,
    NULL, NULL,
    s.initiated_at,
    s.initiated_at + interval '180 seconds',
    CASE WHEN NOT s.final THEN 0
         WHEN s.outcome = 'expired' THEN 6
         WHEN s.outcome = 'needs_review' THEN 3
         WHEN s.seq % 7 = 0 THEN 1 ELSE 0 END,
    0,
    s.created_at,
    CASE WHEN s.final THEN s.settled_at ELSE s.initiated_at END,
    CASE WHEN s.final THEN s.settled_at END
FROM settled s
JOIN {_failure_table()} ON s.u_failure >= f.low AND s.u_failure < f.high
ORDER BY s.created_at
"""

SEED_PAYMENT_TRANSITIONS = """
INSERT INTO payment_transitions (payment_id, from_status, to_status, actor, detail, created_at)
SELECT id, from_status, to_status, actor, detail, at FROM (
    SELECT id, NULL AS from_status, 'pending' AS to_status, 'api' AS actor,
           'created' AS detail, created_at AS at
    FROM payments
    UNION ALL
    SELECT id, 'pending', status,
           CASE WHEN status IN ('expired', 'needs_review') OR check_count > 0
                THEN 'reconciler' ELSE 'callback' END,
           CASE status
               WHEN 'expired' THEN 'still pending at the provider past the payment timeout'
               WHEN 'needs_review' THEN failure_message END,
           completed_at
    FROM payments WHERE status <> 'pending'
) t
ORDER BY at
"""

_PAYMENT_JSON = f"""jsonb_build_object(
    'id', p.id, 'object', 'payment', 'status', p.status, 'provider', p.provider,
    'order_id', p.order_id, 'amount', p.amount_minor::text, 'currency', p.currency,
    'phone_number', p.phone_number, 'description', p.description, 'metadata', p.metadata,
    'provider_reference', p.provider_reference,
    'provider_transaction_id', p.provider_transaction_id, 'failure_code', p.failure_code,
    'failure_message', p.failure_message, 'amount_refunded', '0',
    'created_at', {_ISO.format("p.created_at")}, 'updated_at', {_ISO.format("p.updated_at")},
    'completed_at', {_ISO.format("p.completed_at")})"""

SEED_EVENTS = f"""
INSERT INTO events (
    id, merchant_id, payment_id, type, payload, delivery_status, attempt_count, next_attempt_at,
    created_at, delivered_at)
SELECT e.id, p.merchant_id, p.id, e.type,
    jsonb_build_object('id', e.id, 'type', e.type,
                       'created_at', {_ISO.format("p.completed_at")}, 'data', {_PAYMENT_JSON}),
    CASE WHEN e.u < 0.01 THEN 'failed' ELSE 'delivered' END,
    CASE WHEN e.u < 0.01 THEN 12 WHEN e.u < 0.03 THEN 3 ELSE 1 END,
    NULL,
    p.completed_at,
    CASE WHEN e.u < 0.01 THEN NULL
         WHEN e.u < 0.03 THEN p.completed_at + interval '95 seconds'
         ELSE p.completed_at + make_interval(secs => 0.2 + 2 * e.u) END
FROM payments p
CROSS JOIN LATERAL (
    SELECT {_ID.format(prefix="evt", at="p.completed_at")} AS id,
           CASE p.status WHEN 'successful' THEN 'payment.succeeded'
                         WHEN 'failed' THEN 'payment.failed'
                         WHEN 'expired' THEN 'payment.expired'
                         ELSE 'payment.needs_review' END AS type,
           random() AS u
) e
WHERE p.status <> 'pending'
  AND (p.created_at > now() - interval '7 days' OR random() < 0.05)
ORDER BY p.completed_at
"""

SEED_DELIVERY_ATTEMPTS = """
INSERT INTO event_delivery_attempts (event_id, attempted_at, status_code, latency_ms, error)
SELECT id, coalesce(delivered_at, created_at + interval '6 hours'),
       CASE WHEN delivery_status = 'delivered' THEN 200 ELSE 503 END,
       40 + (abs(hashtext(id)::bigint) % 400),
       CASE WHEN delivery_status = 'delivered' THEN NULL ELSE 'HTTP 503' END
FROM events ORDER BY created_at
"""

SEED_REFUNDS = f"""
INSERT INTO refunds (
    id, merchant_id, payment_id, provider, status, amount_minor, currency, reason, metadata,
    provider_reference, provider_transaction_id, failure_code, failure_message,
    initiation_finished_at, next_check_at, check_count, created_at, updated_at, completed_at)
WITH chosen AS (
    SELECT p.*, p.completed_at + (now() - interval '10 minutes' - p.completed_at)
               * least(1.0, 14 / greatest(1, extract(epoch FROM now() - p.completed_at) / 86400))
               * power(random(), 3) AS refund_at,
           random() AS u_status, random() AS u_amount
    FROM payments p
    WHERE p.status = 'successful' AND p.completed_at < now() - interval '1 hour'
      AND random() < 0.0125
)
SELECT {_ID.format(prefix="re", at="c.refund_at")},
    c.merchant_id, c.id, c.provider,
    CASE WHEN c.u_status < 0.93 THEN 'succeeded'
         WHEN c.u_status < 0.97 THEN 'failed' ELSE 'needs_review' END,
    CASE WHEN c.u_amount < 0.6 THEN c.amount_minor
         ELSE greatest(500, least(c.amount_minor, round(c.amount_minor
              * (0.1 + 2 * (c.u_amount - 0.6)) / 500) * 500))::bigint END,
    c.currency,
    (ARRAY['Customer returned the goods', 'Order cancelled', 'Paid twice',
           'Out of stock'])[1 + floor(c.u_amount * 4)::int],
    '{{}}'::jsonb,
    gen_random_uuid()::text,
    CASE WHEN c.u_status < 0.93 THEN
        CASE WHEN c.provider = 'mtn_momo' THEN (7100000000 + (c.u_amount * 1e8)::bigint)::text
             ELSE 'RF' || to_char(c.refund_at, 'YYMMDD.HH24MI') || '.'
                  || upper(substr(md5(c.id), 1, 6)) END END,
    CASE WHEN c.u_status >= 0.93 AND c.u_status < 0.97 THEN 'not_allowed' END,
    CASE WHEN c.u_status >= 0.93 AND c.u_status < 0.97 THEN 'Refund not allowed for this payment'
         WHEN c.u_status >= 0.97 THEN 'no answer from the provider' END,
    c.refund_at + interval '1 second',
    c.refund_at + interval '181 seconds',
    CASE WHEN c.u_status >= 0.97 THEN 4 ELSE 0 END,
    c.refund_at,
    c.refund_at + interval '20 seconds',
    c.refund_at + interval '20 seconds'
FROM chosen c
ORDER BY c.refund_at
"""

SEED_REFUND_TRANSITIONS = """
INSERT INTO refund_transitions (refund_id, from_status, to_status, actor, detail, created_at)
SELECT id, from_status, to_status, actor, detail, at FROM (
    SELECT id, NULL AS from_status, 'pending' AS to_status, 'api' AS actor,
           'created' AS detail, created_at AS at FROM refunds
    UNION ALL
    SELECT id, 'pending', status,
           CASE WHEN status = 'needs_review' THEN 'reconciler' ELSE 'api' END,
           failure_message, completed_at FROM refunds
) t ORDER BY at
"""

SEED_REFUNDED_AMOUNTS = """
UPDATE payments p SET amount_refunded_minor = r.total
FROM (SELECT payment_id, sum(amount_minor) AS total FROM refunds
      WHERE status = 'succeeded' GROUP BY payment_id) r
WHERE p.id = r.payment_id
"""

# Operators' audit entries: mostly sign-ins and sign-outs, in working hours, and the odd
# redelivery, resolution or merchant change. $1/$2: the operators' ids and emails; $3: some
# payment ids, $4: some event ids, $5: the merchant ids.
SEED_OPERATOR_ACTIONS = """
INSERT INTO operator_actions (at, operator_id, actor, action, target_type, target_id, source,
                              detail)
WITH draws AS (
    SELECT date_trunc('day', now() - random() * interval '180 days')
               + interval '5 hours' + random() * interval '12 hours' AS at,
           1 + floor(random() * array_length($1::text[], 1))::int AS who,
           random() AS u, random() AS v, g AS n
    FROM generate_series(1, $6::int) AS g
), acted AS (
    SELECT d.*,
        CASE WHEN u < 0.55 THEN 'console.login'
             WHEN u < 0.75 THEN 'console.logout'
             WHEN u < 0.80 THEN 'console.login_failed'
             WHEN u < 0.88 THEN 'event.redeliver'
             WHEN u < 0.90 THEN 'payment.resolve'
             WHEN u < 0.93 THEN 'merchant.rotate_key'
             WHEN u < 0.96 THEN 'merchant.update_callback_url'
             WHEN u < 0.98 THEN 'merchant.rotate_secret'
             ELSE 'operator.set_timezone' END AS action
    FROM draws d
)
SELECT least(a.at, now()), ($1::text[])[a.who], ($2::text[])[a.who], a.action,
    CASE WHEN a.action LIKE 'console.%' OR a.action LIKE 'operator.%' THEN 'operator'
         WHEN a.action = 'event.redeliver' THEN 'event'
         WHEN a.action = 'payment.resolve' THEN 'payment'
         ELSE 'merchant' END,
    CASE WHEN a.action LIKE 'console.%' OR a.action LIKE 'operator.%' THEN ($1::text[])[a.who]
         WHEN a.action = 'event.redeliver'
              THEN ($4::text[])[1 + floor(a.v * array_length($4::text[], 1))::int]
         WHEN a.action = 'payment.resolve'
              THEN ($3::text[])[1 + floor(a.v * array_length($3::text[], 1))::int]
         ELSE ($5::text[])[1 + floor(a.v * array_length($5::text[], 1))::int] END,
    '10.20.0.' || (1 + a.who * 7 + floor(a.v * 3)::int),
    CASE WHEN a.action = 'payment.resolve'
         THEN jsonb_build_object('from', 'needs_review', 'to', 'successful',
                                 'note', 'Confirmed with the provider')
         WHEN a.action = 'operator.set_timezone' THEN '{"timezone": "Africa/Kampala"}'::jsonb
         ELSE '{}'::jsonb END
FROM acted a
ORDER BY 1
"""


@dataclass
class Seeded:
    merchants: list[dict[str, str]]  # id, name, api_key (only known in the run that seeded)
    payments: int
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


async def seed(database_url: str, payments: int) -> Seeded:
    """A fresh database at ``head``, filled as the module's docstring says."""
    started = time.monotonic()
    await recreate_database(database_url)
    await migrate_to(database_url, "head")
    engine = create_engine(sqlalchemy_url(database_url))
    sessions = create_sessionmaker(engine)
    merchants = []
    try:
        for name, _share in MERCHANTS:
            slug = re.sub(r"[^a-z]+", "-", name.lower()).strip("-")
            created = await create_merchant(
                sessions, name=name, callback_url=f"https://{slug}.example/momo/events"
            )
            merchants.append({"id": created.id, "name": name, "api_key": created.api_key})
        for email, role in ((ADMIN_EMAIL, ADMIN), *OTHER_OPERATORS):
            await create_operator(sessions, email, role=role, password=PASSWORD)
    finally:
        await engine.dispose()

    steps: dict[str, float] = {}
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:

        async def step(name: str, sql: str, *args: Any) -> None:
            t0 = time.monotonic()
            status = await connection.execute(sql, *args)
            steps[name] = round(time.monotonic() - t0, 1)
            log(f"seed: {name}: {status} in {steps[name]} s")

        await connection.execute("SET work_mem = '256MB'")
        await connection.execute("UPDATE merchants SET created_at = now() - interval '200 days'")
        await connection.execute(
            "UPDATE operators SET created_at = now() - interval '190 days', "
            "password_changed_at = now() - interval '190 days'"
        )
        starts, counts = hour_buckets(payments, datetime.now(UTC))
        weighted = [
            m["id"]
            for (m, (_, share)) in zip(merchants, MERCHANTS, strict=True)
            for _ in range(share)
        ]
        await step("payments", SEED_PAYMENTS, starts, counts, weighted)
        await step("payment_transitions", SEED_PAYMENT_TRANSITIONS)
        await step("events", SEED_EVENTS)
        await step("event_delivery_attempts", SEED_DELIVERY_ATTEMPTS)
        await step("refunds", SEED_REFUNDS)
        await step("refund_transitions", SEED_REFUND_TRANSITIONS)
        await step("payments.amount_refunded_minor", SEED_REFUNDED_AMOUNTS)
        operators = await connection.fetch("SELECT id, email FROM operators ORDER BY email")
        some_payments = [
            r["id"]
            for r in await connection.fetch(
                "SELECT id FROM payments TABLESAMPLE SYSTEM (1) "
                "WHERE status IN ('successful', 'failed') LIMIT 300"
            )
        ]
        some_events = [
            r["id"]
            for r in await connection.fetch(
                "SELECT id FROM events TABLESAMPLE SYSTEM (5) LIMIT 500"
            )
        ]
        await step(
            "operator_actions",
            SEED_OPERATOR_ACTIONS,
            [r["id"] for r in operators],
            [r["email"] for r in operators],
            some_payments or ["pay_none"],
            some_events or ["evt_none"],
            [m["id"] for m in merchants],
            max(100, min(10_000, payments // 100)),
        )
        t0 = time.monotonic()
        await connection.execute("VACUUM ANALYZE")
        steps["vacuum analyze"] = round(time.monotonic() - t0, 1)
        log(f"seed: VACUUM ANALYZE in {steps['vacuum analyze']} s")
        rows = {}
        for table in (
            "payments",
            "payment_transitions",
            "events",
            "event_delivery_attempts",
            "refunds",
            "refund_transitions",
            "operator_actions",
        ):
            rows[table] = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
        seconds = round(time.monotonic() - started, 1)
        note = {
            "bench": "console",
            "payments": payments,
            "seeded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": seconds,
            "steps": steps,
            "rows": rows,
        }
        name = make_url(asyncpg_dsn(database_url)).database
        comment = json.dumps(note).replace("'", "''")
        await connection.execute(f"COMMENT ON DATABASE \"{name}\" IS '{comment}'")
    finally:
        await connection.close()
    log(f"seeded {payments:,} payments in {seconds} s: {rows}")
    return Seeded(merchants=merchants, payments=payments, seconds=seconds, steps=steps, rows=rows)


async def distribution(database_url: str) -> dict[str, Any]:
    """What the seeded data looks like, for the record."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        total = await connection.fetchval("SELECT count(*) FROM payments")

        async def shares(column: str) -> dict[str, float]:
            rows = await connection.fetch(
                f"SELECT {column} AS k, count(*) AS n FROM payments GROUP BY 1 ORDER BY 2 DESC"
            )
            return {str(r["k"]): round(100 * r["n"] / total, 2) for r in rows}

        return {
            "payments": total,
            "status_percent": await shares("status"),
            "provider_percent": await shares("provider"),
            "last_24h": await connection.fetchval(
                "SELECT count(*) FROM payments WHERE created_at > now() - interval '24 hours'"
            ),
            "last_7d": await connection.fetchval(
                "SELECT count(*) FROM payments WHERE created_at > now() - interval '7 days'"
            ),
            "oldest": str(await connection.fetchval("SELECT min(created_at) FROM payments")),
            "merchants": await connection.fetchval("SELECT count(*) FROM merchants"),
            "database_size": await connection.fetchval(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            ),
            "payments_size": await connection.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('payments'))"
            ),
        }
    finally:
        await connection.close()


async def indexes(database_url: str) -> list[str]:
    """Every index on the tables the console reads, with its size."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT indexdef, pg_size_pretty(pg_relation_size(indexname::regclass)) AS size "
            "FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename IN ('payments', 'refunds', 'events', 'operator_actions', "
            "'payment_transitions') ORDER BY tablename, indexname"
        )
        return [f"{r['indexdef']}  -- {r['size']}" for r in rows]
    finally:
        await connection.close()


# --- the app and its SQL --------------------------------------------------------------------


def bench_settings(database_url: str) -> Settings:
    """The console on; provider credentials that need no network (nothing is initiated)."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=None,
        console_enabled=True,
        log_level="WARNING",
        mtn_momo_api_user="3f2b6c1e-8a4d-4b1e-9d6f-0c7a5e2b1d90",
        mtn_momo_api_key="mtn-api-key",
        mtn_momo_subscription_key="mtn-subscription-key",
        mtn_momo_target_env="sandbox",
        mtn_momo_callback_url="https://gateway.example/api/webhooks/mtn-momo/",
        airtel_money_client_id="airtel-client",
        airtel_money_client_secret="airtel-secret",
        callback_token_secret="bench-callback-token-secret",
        worker_metrics_port=0,
    )


@dataclass
class Statement:
    sql: str
    parameters: Any
    ms: float = 0.0


class SqlCapture:
    """Every statement the app's engine runs while ``active``, and how long each took."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.active = False
        self.statements: list[Statement] = []
        self._started: dict[int, tuple[float, Statement]] = {}
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if self.active:
            captured = Statement(statement, parameters)
            self.statements.append(captured)
            self._started[id(cursor)] = (time.perf_counter(), captured)

    def _after(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        started = self._started.pop(id(cursor), None)
        if started is not None:
            started[1].ms = (time.perf_counter() - started[0]) * 1000

    @asynccontextmanager
    async def capturing(self) -> Any:
        self.statements = []
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LINK = re.compile(r"<a\b([^>]*)>(.*?)</a>", re.S | re.I)
_HREF = re.compile(r'href="([^"]*)"')


def links(page: str) -> Iterator[tuple[str, str, str]]:
    """(href, attributes, text) of every link on a page."""
    for attributes, inner in _LINK.findall(page):
        href = _HREF.search(attributes)
        if href:
            text = re.sub(r"<[^>]+>", "", inner)
            yield html.unescape(href.group(1)), attributes, html.unescape(text).strip()


def older_link(page: str) -> str | None:
    """The payments list's link to its next (older) page."""
    for href, attributes, text in links(page):
        if 'rel="next"' in attributes or text.lower().startswith("older"):
            return href
    return None


async def sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/console/login")
    token = _CSRF.search(form.text)
    if form.status_code != 200 or token is None:
        raise RuntimeError(f"no login form: {form.status_code} {form.text[:300]}")
    answer = await client.post(
        "/console/login",
        data={"email": ADMIN_EMAIL, "password": PASSWORD, "csrf_token": token.group(1), "next": ""},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"console login refused: {answer.status_code} {answer.text[:300]}")


@dataclass
class Timing:
    label: str
    url: str
    status: int
    bytes: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    statements: int = 0
    sql_ms: float = 0.0
    slowest_sql_ms: float = 0.0
    # The slowest statements of the captured request: (ms, the start of the SQL).
    slowest: list[tuple[float, str]] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def time_url(client: httpx.AsyncClient, label: str, url: str) -> Timing:
    for _ in range(WARMUP):
        await client.get(url)
    times: list[float] = []
    response = None
    for _ in range(TIMED):
        t0 = time.perf_counter()
        response = await client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
    assert response is not None
    return Timing(
        label=label,
        url=url,
        status=response.status_code,
        bytes=len(response.content),
        p50_ms=round(statistics.median(times), 1),
        p95_ms=round(percentile(times, 0.95), 1),
        max_ms=round(max(times), 1),
    )


def _explainable(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return head in ("SELECT", "WITH") and not re.search(r"\b(INSERT|UPDATE|DELETE)\b", sql, re.I)


async def explain(database_url: str, statements: Sequence[Statement]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each slow read: the custom plan for these parameters, and
    the generic plan a prepared statement may switch to after five runs."""
    plans = []
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for captured in statements:
            if captured.ms < EXPLAIN_STATEMENT_MS or not _explainable(captured.sql):
                continue
            params = list(captured.parameters or ())
            entry: dict[str, Any] = {
                "sql": captured.sql,
                "parameters": repr(params)[:2000],
                "captured_ms": round(captured.ms, 1),
            }
            for mode in ("auto", "force_generic_plan"):
                await connection.execute(f"SET plan_cache_mode = {mode}")
                async with connection.transaction():
                    rows = await connection.fetch(
                        "EXPLAIN (ANALYZE, BUFFERS) " + captured.sql, *params
                    )
                entry["custom" if mode == "auto" else "generic"] = "\n".join(r[0] for r in rows)
            await connection.execute("RESET plan_cache_mode")
            plans.append(entry)
    finally:
        await connection.close()
    return plans


async def targets(database_url: str) -> dict[str, Any]:
    """Rows to look up: a payment about three weeks old, the smallest merchant, a day a month
    ago (Kampala time)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        payment = await connection.fetchrow(
            "SELECT id, order_id, provider_reference, phone_number FROM payments "
            "WHERE created_at < now() - interval '20 days' AND status = 'successful' "
            "ORDER BY created_at DESC LIMIT 1"
        )
        refunded = await connection.fetchval(
            "SELECT payment_id FROM refunds ORDER BY created_at DESC LIMIT 1"
        )
        smallest = await connection.fetchval(
            "SELECT merchant_id FROM payments GROUP BY 1 ORDER BY count(*) LIMIT 1"
        )
    finally:
        await connection.close()
    day = (datetime.now(KAMPALA) - timedelta(days=30)).date()
    return {
        "payment": dict(payment) if payment else {},
        "refunded_payment": refunded,
        "smallest_merchant": smallest,
        "day": day.isoformat(),
    }


def date_fields(page: str) -> tuple[str, str]:
    """The names of the payments filter's two date inputs (from, to)."""
    names = re.findall(r'<input[^>]*type="date"[^>]*name="([^"]+)"', page)
    names += re.findall(r'<input[^>]*name="([^"]+)"[^>]*type="date"', page)
    seen = list(dict.fromkeys(names))
    return (seen[0], seen[1]) if len(seen) >= 2 else ("from", "to")


async def check_api(base_url: str, merchant: dict[str, str]) -> str:
    """One page of GET /v1/payments (and one payment) through the app with the merchant's key."""
    headers = {"Authorization": f"Bearer {merchant['api_key']}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, trust_env=False) as client:
        page = await client.get("/v1/payments", params={"limit": 100})
        if page.status_code != 200:
            raise RuntimeError(f"GET /v1/payments: {page.status_code} {page.text[:500]}")
        data = page.json()["data"]
        statuses = sorted({p["status"] for p in data})
        more = await client.get(
            "/v1/payments", params={"limit": 100, "starting_after": data[-1]["id"]}
        )
        if more.status_code != 200:
            raise RuntimeError(f"GET /v1/payments (page 2): {more.status_code} {more.text[:500]}")
        for status in ("failed", "expired", "needs_review"):
            one = await client.get("/v1/payments", params={"limit": 5, "status": status})
            if one.status_code != 200 or not one.json()["data"]:
                raise RuntimeError(f"GET /v1/payments?status={status}: {one.text[:300]}")
    return f"GET /v1/payments for {merchant['name']}: {len(data)} payments ({', '.join(statuses)})"


async def measure(
    database_url: str, seeded: Seeded | None, *, explain_over: float
) -> dict[str, Any]:
    application: FastAPI = create_app(bench_settings(database_url), background_jobs=False)
    async with serve_in_background(application) as base_url:
        runtime = application.state.runtime
        with suppress(OperatorExists):
            await create_operator(runtime.sessions, ADMIN_EMAIL, role=ADMIN, password=PASSWORD)
        api_check = "skipped (the database was seeded by an earlier run)"
        if seeded is not None:
            api_check = await check_api(base_url, seeded.merchants[0])
        log(f"API check: {api_check}")

        found = await targets(database_url)
        payment = found["payment"]
        capture = SqlCapture(runtime.engine)
        results: list[Timing] = []
        async with httpx.AsyncClient(
            base_url=base_url, trust_env=False, timeout=60, follow_redirects=False
        ) as client:
            await sign_in(client)
            overview = await client.get("/console/overview")
            listing = await client.get("/console/payments")
            start_field, end_field = date_fields(listing.text)
            older = older_link(listing.text) if listing.status_code == 200 else None
            if older and older.startswith("http"):
                older = urlsplit(older).path + ("?" + urlsplit(older).query)
            day = found["day"]
            urls: list[tuple[str, str]] = [("overview", "/console/overview")]
            if "period=7d" in overview.text:
                urls.append(("overview 7d", "/console/overview?period=7d"))
            urls += [
                ("payments", "/console/payments"),
                ("status=needs_review", "/console/payments?status=needs_review"),
                ("status=failed", "/console/payments?status=failed"),
                ("provider=airtel_money", "/console/payments?provider=airtel_money"),
                (
                    "merchant=<smallest>",
                    f"/console/payments?{urlencode({'merchant': found['smallest_merchant']})}",
                ),
                (
                    "one day a month ago",
                    f"/console/payments?{urlencode({start_field: day, end_field: day})}",
                ),
                ("q=<order id>", f"/console/payments?{urlencode({'q': payment.get('order_id')})}"),
                ("q=<payment id>", f"/console/payments?{urlencode({'q': payment.get('id')})}"),
                (
                    "q=<provider reference>",
                    f"/console/payments?{urlencode({'q': payment.get('provider_reference')})}",
                ),
                (
                    "q=<last 4 digits>",
                    f"/console/payments?{urlencode({'q': str(payment.get('phone_number'))[-4:]})}",
                ),
            ]
            if older:
                urls.append(("older page", older))
            urls += [
                ("payment page", f"/console/payments/{payment.get('id')}"),
                ("payment page (refunded)", f"/console/payments/{found['refunded_payment']}"),
                ("audit", "/console/audit"),
            ]
            for label, url in urls:
                timing = await time_url(client, label, url)
                async with capture.capturing() as statements:
                    await client.get(url)
                timing.statements = len(statements)
                timing.sql_ms = round(sum(s.ms for s in statements), 1)
                timing.slowest_sql_ms = round(max((s.ms for s in statements), default=0.0), 1)
                timing.slowest = [
                    (round(s.ms, 1), " ".join(s.sql.split())[:300])
                    for s in sorted(statements, key=lambda s: -s.ms)[:3]
                ]
                if timing.p50_ms > explain_over:
                    timing.plans = await explain(database_url, statements)
                results.append(timing)
                log(
                    f"{label:<28} {timing.status} p50 {timing.p50_ms:7.1f} "
                    f"p95 {timing.p95_ms:7.1f} max {timing.max_ms:7.1f} ms, "
                    f"{timing.statements} statements {timing.sql_ms:.1f} ms"
                )
        capture.close()
    return {"api_check": api_check, "targets": found, "urls": [asdict(r) for r in results]}


# --- report ---------------------------------------------------------------------------------


def table(rows: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]] | None = None) -> str:
    earlier = {r["label"]: r for r in before or ()}
    lines = []
    if before:
        lines.append(
            "| page | URL | before p50 / p95 ms | after p50 / p95 ms | max ms | SQL (n, ms) |"
        )
        lines.append("|---|---|---|---|---|---|")
    else:
        lines.append("| page | URL | status | p50 ms | p95 ms | max ms | SQL (n, ms) |")
        lines.append("|---|---|---|---|---|---|---|")
    for r in rows:
        url = r["url"] if len(r["url"]) <= 60 else r["url"][:57] + "..."
        sql = f"{r['statements']}, {r['sql_ms']}"
        if before:
            old = earlier.get(r["label"])
            was = f"{old['p50_ms']} / {old['p95_ms']}" if old else "—"
            lines.append(
                f"| {r['label']} | `{url}` | {was} | {r['p50_ms']} / {r['p95_ms']} "
                f"| {r['max_ms']} | {sql} |"
            )
        else:
            lines.append(
                f"| {r['label']} | `{url}` | {r['status']} | {r['p50_ms']} | {r['p95_ms']} "
                f"| {r['max_ms']} | {sql} |"
            )
    return "\n".join(lines)


def _shape(plan: str) -> list[str]:
    """A plan's nodes without their costs, times and buffers: what two plans differ in."""
    return [
        re.sub(r"\(.*", "", line).rstrip()
        for line in plan.splitlines()
        if "->" in line or not line.startswith(" ")
        if not line.startswith(("Planning", "Execution"))
    ]


def plans_text(rows: Sequence[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        for plan in r.get("plans", ()):
            out.append(f"=== {r['label']}  {r['url']}  ({plan['captured_ms']} ms in the app)")
            out.append(plan["sql"])
            out.append(f"-- parameters: {plan['parameters']}")
            out.append("-- custom plan:")
            out.append(plan["custom"])
            if plan.get("generic") and _shape(plan["generic"]) != _shape(plan["custom"]):
                out.append("-- generic plan:")
                out.append(plan["generic"])
            out.append("")
    return "\n".join(out)


async def run(
    database_url: str,
    *,
    payments: int,
    reuse: bool,
    revision: str,
    explain_over: float,
) -> dict[str, Any]:
    started = time.monotonic()
    seeded: Seeded | None = None
    note = await database_seed(database_url) if reuse else None
    if note is not None and note.get("payments") == payments:
        log(f"reusing {database_url}: {note}")
        migration = await migrate_to(database_url, revision)
    else:
        if reuse:
            log(f"nothing to reuse with {payments:,} payments in {database_url}: seeding")
        seeded = await seed(database_url, payments)
        note = await database_seed(database_url)
        migration = await migrate_to(database_url, revision)
        if migration["from"] != migration["to"]:
            await _analyze(database_url)
    data = await distribution(database_url)
    log(f"data: {data}")
    measured = await measure(database_url, seeded, explain_over=explain_over)
    return {
        "database_url": database_url,
        "revision": migration["to"],
        "migration": migration,
        "seed": note,
        "data": data,
        "indexes": await indexes(database_url),
        **measured,
        "seconds": round(time.monotonic() - started, 1),
    }


async def _analyze(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def main(argv: Sequence[str] | None = None, *, printer: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=harness.database_url(DATABASE),
        help=f"PostgreSQL database to (re)create and seed (default {DATABASE})",
    )
    parser.add_argument("--payments", type=int, default=PAYMENTS)
    parser.add_argument(
        "--reuse", action="store_true", help="keep a database seeded earlier with --payments N"
    )
    parser.add_argument(
        "--revision",
        default="head",
        help="migrate (up or down) to this revision before measuring, e.g. 0005",
    )
    parser.add_argument("--explain-over", type=float, default=EXPLAIN_OVER_MS, metavar="MS")
    parser.add_argument(
        "--before", type=Path, metavar="JSON", help="an earlier run's console.json to compare"
    )
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()
    machine = harness.machine_info()
    output = asyncio.run(
        run(
            args.database_url,
            payments=args.payments,
            reuse=args.reuse,
            revision=args.revision,
            explain_over=args.explain_over,
        )
    )
    output["machine"] = machine
    output["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out_dir = harness.run_dir("console")
    (out_dir / "console.json").write_text(json.dumps(output, indent=2, default=str))
    plans = plans_text(output["urls"])
    (out_dir / "explain.txt").write_text(plans)
    before = json.loads(args.before.read_text())["urls"] if args.before else None
    printer(plans)
    printer(table(output["urls"], before))
    printer(f"\nrevision {output['revision']}; results in {out_dir}")


if __name__ == "__main__":
    main()
