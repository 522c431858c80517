"""The overview's numbers, aggregated by the database.

Every query over payments or refunds is a range on ``created_at`` (``since <= created_at <
until``) grouped in SQL, so its cost follows the window, never the table: an index leading
with ``created_at`` serves them all. The all-time backlog counts (pending, needs_review) filter
on ``status`` and the failing events on ``delivery_status``, both indexed. Nothing here loads a
window's payments into Python, except SQLite's median (SQLite has no ``percentile_cont``; it
reads one number per settled payment, and SQLite is the small, single-machine deployment).

The independent queries run side by side, each on its own pooled connection, so the page waits
for the slowest one rather than for their sum.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import DateTime, Float, and_, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import autocommit, utcnow
from app.events.models import OutboxEvent
from app.payments.domain import PaymentStatus
from app.payments.models import Payment
from app.refunds.domain import RefundStatus
from app.refunds.models import Refund

__all__ = [
    "OUTCOMES",
    "PERIODS",
    "SETTLED",
    "Backlog",
    "FailingEvent",
    "HourCounts",
    "Overview",
    "PeriodStats",
    "ProviderStats",
    "Tally",
    "chart_hours",
    "load_overview",
]

PERIODS: Final[Mapping[str, timedelta]] = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
# Every payment status, in the order the page shows them and the chart stacks them (from the
# bottom: the outcome most payments have first).
OUTCOMES: Final = (
    PaymentStatus.SUCCESSFUL.value,
    PaymentStatus.FAILED.value,
    PaymentStatus.EXPIRED.value,
    PaymentStatus.PENDING.value,
    PaymentStatus.NEEDS_REVIEW.value,
)
# The outcomes a success rate is taken over: a payment still pending or waiting for a person
# has not had its outcome yet.
SETTLED: Final = (
    PaymentStatus.SUCCESSFUL.value,
    PaymentStatus.FAILED.value,
    PaymentStatus.EXPIRED.value,
)
CHART_HOURS: Final = 24
FAILING_EVENTS_SHOWN: Final = 10

T = TypeVar("T")


# --- what the page shows -------------------------------------------------------------------------
@dataclass
class Tally:
    """How many, and how much money per currency (a provider may settle in another one)."""

    count: int = 0
    amounts: dict[str, int] = field(default_factory=dict)

    def add(self, count: int, currency: str, amount_minor: int) -> None:
        self.count += count
        self.amounts[currency] = self.amounts.get(currency, 0) + amount_minor


@dataclass
class ProviderStats:
    """One provider's payments in the window (or, with ``provider`` None, everyone's)."""

    provider: str | None
    by_status: dict[str, Tally] = field(default_factory=dict)
    total: Tally = field(default_factory=Tally)
    median_settle_seconds: float | None = None

    def add(self, status: str, count: int, currency: str, amount_minor: int) -> None:
        self.by_status.setdefault(status, Tally()).add(count, currency, amount_minor)
        self.total.add(count, currency, amount_minor)

    def count(self, status: str) -> int:
        tally = self.by_status.get(status)
        return tally.count if tally is not None else 0

    @property
    def successful(self) -> int:
        return self.count(PaymentStatus.SUCCESSFUL.value)

    @property
    def settled(self) -> int:
        return sum(self.count(status) for status in SETTLED)

    @property
    def success_rate(self) -> float | None:
        """successful / (successful + failed + expired); None before anything settled."""
        return self.successful / self.settled if self.settled else None


@dataclass(frozen=True)
class PeriodStats:
    period: str
    since: datetime
    until: datetime
    overall: ProviderStats
    providers: list[ProviderStats]
    refunds: dict[str, Tally]


@dataclass(frozen=True)
class FailingEvent:
    id: str
    type: str
    payment_id: str
    delivery_status: str
    attempt_count: int
    created_at: datetime


@dataclass(frozen=True)
class Backlog:
    """What waits, whenever it started: counted over all time, not the window."""

    pending_payments: int
    needs_review_payments: int
    pending_refunds: int
    needs_review_refunds: int
    # "failed": out of attempts, the storefront never took it; "retrying": pending, with at
    # least one attempt refused already. A disabled merchant's waiting events are neither.
    events_failed: int
    events_retrying: int
    latest_failing_events: list[FailingEvent]

    @property
    def events_failing(self) -> int:
        return self.events_failed + self.events_retrying


@dataclass(frozen=True)
class HourCounts:
    """Payments created in the hour starting at ``start`` (UTC), by status."""

    start: datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class Overview:
    stats: PeriodStats
    backlog: Backlog
    hours: list[HourCounts]


# --- loading ------------------------------------------------------------------------------------
async def load_overview(
    engine: AsyncEngine, period: str, *, now: datetime | None = None
) -> Overview:
    """Everything the overview shows for ``period`` ("24h" or "7d"), as of ``now``."""
    until = now or utcnow()
    since = until - PERIODS[period]
    chart_start = chart_hours(until)[0]
    reads = _Reads(autocommit(engine))
    by_status, medians, refunds, backlog, hourly = await asyncio.gather(
        reads.run(_payments_by_provider_and_status, since, until),
        reads.run(_median_settle_seconds, since, until),
        reads.run(_refunds_by_status, since, until),
        reads.run(_backlog),
        reads.run(_hourly_counts, chart_start, until),
    )
    overall, providers = _provider_stats(by_status, medians)
    return Overview(
        stats=PeriodStats(period, since, until, overall, providers, refunds),
        backlog=backlog,
        hours=_fill_hours(chart_hours(until), hourly),
    )


class _Reads:
    """Runs each read on a connection of its own (autocommit: no BEGIN/ROLLBACK round trips)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def run(self, read: Callable[..., Awaitable[T]], *args: Any) -> T:
        async with self.engine.connect() as connection:
            return await read(connection, *args)


def _in_window(column: Any, since: datetime, until: datetime) -> Any:
    return and_(column >= since, column < until)


async def _payments_by_provider_and_status(
    connection: AsyncConnection, since: datetime, until: datetime
) -> Sequence[Any]:
    # SELECT provider, status, currency, count(*), sum(amount_minor) FROM payments
    # WHERE created_at >= :since AND created_at < :until GROUP BY provider, status, currency
    query = (
        select(
            Payment.provider,
            Payment.status,
            Payment.currency,
            func.count(),
            func.coalesce(func.sum(Payment.amount_minor), 0),
        )
        .where(_in_window(Payment.created_at, since, until))
        .group_by(Payment.provider, Payment.status, Payment.currency)
    )
    return (await connection.execute(query)).all()


def _settled_in_window(since: datetime, until: datetime) -> Any:
    return and_(
        _in_window(Payment.created_at, since, until),
        Payment.status.in_(SETTLED),
        Payment.completed_at.is_not(None),
    )


async def _median_settle_seconds(
    connection: AsyncConnection, since: datetime, until: datetime
) -> dict[str | None, float]:
    """Median seconds from created_at to completed_at of the window's settled payments, per
    provider and (key None) overall."""
    if connection.dialect.name == "postgresql":
        return await _median_in_postgres(connection, since, until)
    return await _median_in_python(connection, since, until)


async def _median_in_postgres(
    connection: AsyncConnection, since: datetime, until: datetime
) -> dict[str | None, float]:
    # SELECT provider, percentile_cont(0.5) WITHIN GROUP (ORDER BY
    #   date_part('epoch', completed_at - created_at)) FROM payments
    # WHERE <window> AND status IN (settled) AND completed_at IS NOT NULL GROUP BY ROLLUP(provider)
    # ROLLUP's extra row (provider NULL; the column is NOT NULL) is the overall median.
    # date_part, not extract: a double sorts faster than extract's numeric (PostgreSQL 14+).
    seconds = func.date_part("epoch", Payment.completed_at - Payment.created_at, type_=Float())
    query = (
        select(Payment.provider, func.percentile_cont(0.5).within_group(seconds))
        .where(_settled_in_window(since, until))
        .group_by(func.rollup(Payment.provider))
    )
    rows = (await connection.execute(query)).all()
    return {provider: float(median) for provider, median in rows if median is not None}


async def _median_in_python(
    connection: AsyncConnection, since: datetime, until: datetime
) -> dict[str | None, float]:
    # One number per settled payment: SQLite stores times as ISO text, which julianday reads.
    seconds = (func.julianday(Payment.completed_at) - func.julianday(Payment.created_at)) * 86400.0
    query = select(Payment.provider, seconds).where(_settled_in_window(since, until))
    durations: dict[str | None, list[float]] = defaultdict(list)
    for provider, value in await connection.execute(query):
        durations[provider].append(float(value))
        durations[None].append(float(value))
    return {provider: statistics.median(values) for provider, values in durations.items()}


async def _refunds_by_status(
    connection: AsyncConnection, since: datetime, until: datetime
) -> dict[str, Tally]:
    # SELECT status, currency, count(*), sum(amount_minor) FROM refunds
    # WHERE created_at >= :since AND created_at < :until GROUP BY status, currency
    query = (
        select(
            Refund.status,
            Refund.currency,
            func.count(),
            func.coalesce(func.sum(Refund.amount_minor), 0),
        )
        .where(_in_window(Refund.created_at, since, until))
        .group_by(Refund.status, Refund.currency)
    )
    tallies: dict[str, Tally] = {}
    for status, currency, count, amount in await connection.execute(query):
        tallies.setdefault(status, Tally()).add(int(count), currency, int(amount))
    return tallies


async def _backlog(connection: AsyncConnection) -> Backlog:
    """The all-time counts: three small indexed queries, one after the other."""
    waiting = await _backlog_counts(connection)
    events = await _failing_event_counts(connection)
    return Backlog(
        pending_payments=waiting.get(("payment", PaymentStatus.PENDING.value), 0),
        needs_review_payments=waiting.get(("payment", PaymentStatus.NEEDS_REVIEW.value), 0),
        pending_refunds=waiting.get(("refund", RefundStatus.PENDING.value), 0),
        needs_review_refunds=waiting.get(("refund", RefundStatus.NEEDS_REVIEW.value), 0),
        events_failed=events.get("failed", 0),
        events_retrying=events.get("pending", 0),
        latest_failing_events=await _latest_failing_events(connection),
    )


async def _backlog_counts(connection: AsyncConnection) -> dict[tuple[str, str], int]:
    # SELECT status, count(*) FROM payments WHERE status IN ('pending', 'needs_review')
    # GROUP BY status; the same on refunds. Both served by their (status, next_check_at) index.
    waiting_payments = (PaymentStatus.PENDING.value, PaymentStatus.NEEDS_REVIEW.value)
    waiting_refunds = (RefundStatus.PENDING.value, RefundStatus.NEEDS_REVIEW.value)
    counts: dict[tuple[str, str], int] = {}
    payments = (
        select(Payment.status, func.count())
        .where(Payment.status.in_(waiting_payments))
        .group_by(Payment.status)
    )
    for status, count in await connection.execute(payments):
        counts[("payment", status)] = int(count)
    refunds = (
        select(Refund.status, func.count())
        .where(Refund.status.in_(waiting_refunds))
        .group_by(Refund.status)
    )
    for status, count in await connection.execute(refunds):
        counts[("refund", status)] = int(count)
    return counts


def _failing() -> Any:
    """An event the storefront is refusing: out of attempts, or still retrying after at least
    one refused attempt."""
    return or_(
        OutboxEvent.delivery_status == "failed",
        and_(OutboxEvent.delivery_status == "pending", OutboxEvent.attempt_count > 0),
    )


async def _failing_event_counts(connection: AsyncConnection) -> dict[str, int]:
    # SELECT delivery_status, count(*) FROM events WHERE delivery_status = 'failed'
    # OR (delivery_status = 'pending' AND attempt_count > 0) GROUP BY delivery_status
    query = (
        select(OutboxEvent.delivery_status, func.count())
        .where(_failing())
        .group_by(OutboxEvent.delivery_status)
    )
    return {status: int(count) for status, count in await connection.execute(query)}


async def _latest_failing_events(connection: AsyncConnection) -> list[FailingEvent]:
    query = (
        select(
            OutboxEvent.id,
            OutboxEvent.type,
            OutboxEvent.payment_id,
            OutboxEvent.delivery_status,
            OutboxEvent.attempt_count,
            OutboxEvent.created_at,
        )
        .where(_failing())
        .order_by(OutboxEvent.created_at.desc())
        .limit(FAILING_EVENTS_SHOWN)
    )
    return [FailingEvent(*row) for row in await connection.execute(query)]


async def _hourly_counts(
    connection: AsyncConnection, since: datetime, until: datetime
) -> dict[tuple[datetime, str], int]:
    # PostgreSQL: SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), status, count(*)
    # SQLite:     SELECT strftime('%Y-%m-%d %H:00:00', created_at), status, count(*)
    # FROM payments WHERE created_at >= :since AND created_at < :until GROUP BY 1, 2
    hour = _hour_of(connection.dialect.name)
    query = (
        select(hour, Payment.status, func.count())
        .where(_in_window(Payment.created_at, since, until))
        .group_by(hour, Payment.status)
    )
    return {
        (_as_utc_hour(start), status): int(count)
        for start, status, count in await connection.execute(query)
    }


def _hour_of(dialect: str) -> Any:
    # Constants as literals, not bound parameters: PostgreSQL only matches the GROUP BY
    # expression to the selected one when they are the same text.
    if dialect == "postgresql":
        # In UTC, whatever the session's TimeZone, so the hours match chart_hours' below.
        in_utc = Payment.created_at.op("AT TIME ZONE")(literal_column("'UTC'"))
        return func.date_trunc(literal_column("'hour'"), in_utc, type_=DateTime())
    return func.strftime(literal_column("'%Y-%m-%d %H:00:00'"), Payment.created_at)


def _as_utc_hour(value: datetime | str) -> datetime:
    start = datetime.fromisoformat(value) if isinstance(value, str) else value
    return start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


def chart_hours(now: datetime) -> list[datetime]:
    """The chart's hours: the current one (so far) and the 23 before it, oldest first, each
    the start of a UTC hour (the operator's hour too, in every zone a whole number of hours
    from UTC, Kampala's among them)."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=back) for back in range(CHART_HOURS - 1, -1, -1)]


def _fill_hours(
    hours: Iterable[datetime], counted: Mapping[tuple[datetime, str], int]
) -> list[HourCounts]:
    # Hours without a payment have no row; the chart still shows them, empty.
    return [
        HourCounts(start, {status: counted.get((start, status), 0) for status in OUTCOMES})
        for start in hours
    ]


def _provider_stats(
    rows: Iterable[Any], medians: Mapping[str | None, float]
) -> tuple[ProviderStats, list[ProviderStats]]:
    overall = ProviderStats(None, median_settle_seconds=medians.get(None))
    providers: dict[str, ProviderStats] = {}
    for provider, status, currency, count, amount in rows:
        stats = providers.get(provider)
        if stats is None:
            stats = providers[provider] = ProviderStats(
                provider, median_settle_seconds=medians.get(provider)
            )
        stats.add(status, int(count), currency, int(amount))
        overall.add(status, int(count), currency, int(amount))
    return overall, [providers[name] for name in sorted(providers)]
