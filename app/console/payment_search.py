"""The console's payments list: its filters, its search box, its keyset pages and the rows of
its CSV export.

Written for a payments table of millions of rows (PostgreSQL in production), so that one page
costs the same on the first page as on the thousandth:

* pages are keyset pages on ``(created_at, id)``, newest first: never an OFFSET, never a
  COUNT(*) over the table (the page says "Older →" when one more row exists, nothing more);
* each filter is a plain equality or range on one column, so b-tree indexes on
  ``(created_at, id)``, ``(status, created_at)``, ``(merchant_id, created_at)``,
  ``(provider, created_at)`` and on ``order_id``, ``provider_reference`` and
  ``provider_transaction_id`` can serve them (see ``page_query`` for the statements);
* the keyset condition is a row comparison plus a redundant bound on ``created_at`` alone, so an
  index that starts with a filter column and goes on with ``created_at`` can start its scan at
  the cursor instead of filtering its way down to it;
* the one search no b-tree can serve, the last digits of a phone number
  (``phone_number LIKE '%456'``), is bounded: see ``PHONE_SEARCH_WINDOW``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, exists, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.identifiers import is_identifier
from app.merchants.models import Merchant
from app.money import format_amount
from app.payments.domain import PaymentStatus
from app.payments.models import Payment
from app.phone import mask
from app.providers import registry

PAGE_SIZE: Final = 50
EXPORT_LIMIT: Final = 100_000
EXPORT_CHUNK: Final = 1_000
MIN_PHONE_DIGITS: Final = 3
# The last digits of a phone number match with ``LIKE '%digits'``, which no b-tree index can
# serve: on its own it would read every payment that matches the other filters until a page is
# full, and for digits nobody has, the whole table. So a phone search reads at most this many
# payments (the newest that match the other filters, below the page's cursor) and keeps those
# whose number ends so. That bounds every phone query to one index range scan of this many rows
# (tens of milliseconds on PostgreSQL) whatever the table's size, where requiring more digits
# would only make a full scan rarer, not impossible. At a few thousand payments a day the window
# is the last weeks; the page says so, and a "To" date reaches further back. Each "Older" page
# reads the next window below its cursor, so paging goes on while pages fill.
PHONE_SEARCH_WINDOW: Final = 50_000

STATUSES: Final = tuple(status.value for status in PaymentStatus)
_PHONE_SEPARATORS = re.compile(r"[\s\-().+]")
# What a spreadsheet would run as a formula if a cell started with it (CSV injection).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


# --- the filters -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentFilters:
    """What the list is narrowed to, as the filter form sent it (anything unusable dropped, with
    a word about it in ``problems``)."""

    status: str = ""
    provider: str = ""
    merchant: str = ""
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, query: Mapping[str, str]) -> PaymentFilters:
        problems: list[str] = []
        status = query.get("status", "").strip()
        if status and status not in STATUSES:
            problems.append(f"There is no status {status[:30]!r}; every status is shown.")
            status = ""
        provider = query.get("provider", "").strip()
        if provider and not registry.is_registered(provider):
            problems.append(f"There is no provider {provider[:30]!r}; every provider is shown.")
            provider = ""
        merchant = query.get("merchant", "").strip()
        if merchant and not is_identifier(merchant):
            merchant = ""
        return cls(
            status=status,
            provider=provider,
            merchant=merchant,
            date_from=_date(query.get("from", ""), "From", problems),
            date_to=_date(query.get("to", ""), "To", problems),
            q=query.get("q", "").strip()[:64],
            problems=tuple(problems),
        )

    def as_query(self) -> dict[str, str]:
        """The filters as the form's fields (for links and the audit entry of an export)."""
        values = {
            "status": self.status,
            "provider": self.provider,
            "merchant": self.merchant,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "q": self.q,
        }
        return {name: value for name, value in values.items() if value}


def _date(typed: str, label: str, problems: list[str]) -> date | None:
    typed = typed.strip()
    if not typed:
        return None
    try:
        return date.fromisoformat(typed)
    except ValueError:
        problems.append(f"{label} {typed[:20]!r} is not a date (YYYY-MM-DD); it was left out.")
        return None


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """Midnight of ``day`` in the operator's timezone, in UTC (how times are stored)."""
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


# --- the search box ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """What the search box asks for.

    ``exact``: an id, order id, provider reference or provider transaction id (indexed
    equalities); ``digits``: 3 or more digits, which may be a whole id (an order "1001", an MTN
    transaction id) and otherwise are the end of a phone number; ``phone``: decided to be the
    end of a phone number; ``nothing``: text no payment can match; ``none``: no search.
    """

    kind: Literal["none", "exact", "digits", "phone", "nothing"]
    text: str = ""
    digits: str = ""

    @classmethod
    def of(cls, q: str) -> Search:
        if not q:
            return cls("none")
        digits = _PHONE_SEPARATORS.sub("", q)
        if digits.isascii() and digits.isdigit() and len(digits) >= MIN_PHONE_DIGITS:
            # A whole number typed as the shopper knows it (0772…, +256 772…) ends with the
            # 9 digits after the country code or the leading 0: those are what must match.
            return cls("digits", text=q if is_identifier(q) else digits, digits=digits[-9:])
        if is_identifier(q):
            return cls("exact", text=q)
        return cls("nothing", text=q)


def _exact_match(text: str) -> ColumnElement[bool]:
    """One indexed equality per column that can hold what was typed (a BitmapOr on
    PostgreSQL): the primary key, order_id, provider_reference, provider_transaction_id."""
    return or_(
        Payment.id == text,
        Payment.order_id == text,
        Payment.provider_reference == text,
        Payment.provider_transaction_id == text,
    )


async def decided_search(session: AsyncSession, filters: PaymentFilters, zone: ZoneInfo) -> Search:
    """The search box's meaning: 3+ digits are a whole id when a payment the other filters
    allow has that id (indexed lookups), else the end of a phone number."""
    search = Search.of(filters.q)
    if search.kind != "digits":
        return search
    as_id = Search("exact", text=search.text)
    found = await session.scalar(select(exists().where(*filter_conditions(filters, zone, as_id))))
    return Search("exact" if found else "phone", text=search.text, digits=search.digits)


# --- the statements ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """The row a page starts after (older pages) or before (newer pages)."""

    created_at: datetime
    id: str
    newer: bool = False


def filter_conditions(
    filters: PaymentFilters, zone: ZoneInfo, search: Search
) -> list[ColumnElement[bool]]:
    """The WHERE of the list: each an equality or a range on one indexed column. The phone
    suffix is not among them (``page_query`` bounds it)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.status:
        conditions.append(Payment.status == filters.status)
    if filters.provider:
        conditions.append(Payment.provider == filters.provider)
    if filters.merchant:
        conditions.append(Payment.merchant_id == filters.merchant)
    if filters.date_from is not None:
        conditions.append(Payment.created_at >= start_of_day(filters.date_from, zone))
    if filters.date_to is not None:  # the whole "to" day, in the operator's timezone
        conditions.append(
            Payment.created_at < start_of_day(filters.date_to + timedelta(days=1), zone)
        )
    if search.kind == "exact":
        conditions.append(_exact_match(search.text))
    elif search.kind == "nothing":
        conditions.append(Payment.id.is_(None))  # the primary key is never NULL: no rows
    return conditions


def _keyset(cursor: Cursor | None) -> list[ColumnElement[bool]]:
    """Rows after the cursor in the page's direction. The row comparison alone is exact; the
    redundant ``created_at`` bound lets an index on (filter column, created_at) start there."""
    if cursor is None:
        return []
    key = tuple_(Payment.created_at, Payment.id)
    if cursor.newer:
        return [Payment.created_at >= cursor.created_at, key > (cursor.created_at, cursor.id)]
    return [Payment.created_at <= cursor.created_at, key < (cursor.created_at, cursor.id)]


def page_query(
    filters: PaymentFilters,
    zone: ZoneInfo,
    search: Search,
    cursor: Cursor | None,
    *,
    limit: int,
) -> Select[Payment]:
    """One page (``limit`` is one more than shown: is there another page?).

    Without a phone search::

        SELECT … FROM payments
        WHERE [status = :s] [AND provider = :p] [AND merchant_id = :m]
          [AND created_at >= :from] [AND created_at < :to]
          [AND (id = :q OR order_id = :q OR provider_reference = :q
                OR provider_transaction_id = :q)]
          [AND created_at <= :c AND (created_at, id) < (:c, :cid)]
        ORDER BY created_at DESC, id DESC LIMIT 51

    With one, the same rows capped at PHONE_SEARCH_WINDOW, then the suffix::

        SELECT payments.* FROM payments
        JOIN (SELECT id, created_at, phone_number FROM payments WHERE <as above>
              ORDER BY created_at DESC, id DESC LIMIT 50000) AS recent ON payments.id = recent.id
        WHERE recent.phone_number LIKE '%456'
        ORDER BY recent.created_at DESC, recent.id DESC LIMIT 51

    A newer page (← Newer) flips every ``<`` and DESC; the caller puts its rows back in order.
    """
    conditions = filter_conditions(filters, zone, search) + _keyset(cursor)
    newer = cursor is not None and cursor.newer
    if search.kind != "phone":
        return (
            select(Payment).where(*conditions).order_by(*_order(Payment, newer=newer)).limit(limit)
        )
    # The window carries only what the suffix and the order need; the few rows that match are
    # then read whole by primary key.
    window = (
        select(Payment.id, Payment.created_at, Payment.phone_number)
        .where(*conditions)
        .order_by(*_order(Payment, newer=newer))
        .limit(PHONE_SEARCH_WINDOW)
        .subquery("recent")
    )
    return (
        select(Payment)
        .join(window, Payment.id == window.c.id)
        .where(window.c.phone_number.like(f"%{search.digits}"))  # digits only: nothing to escape
        .order_by(*_order(window.c, newer=newer))
        .limit(limit)
    )


def _order(table: Any, *, newer: bool) -> tuple[Any, Any]:
    if newer:
        return table.created_at.asc(), table.id.asc()
    return table.created_at.desc(), table.id.desc()


async def cursor_of(session: AsyncSession, payment_id: str | None, *, newer: bool) -> Cursor | None:
    """The cursor a link names (a payment id: one primary-key read); a mangled or unknown one
    shows the newest page rather than an error."""
    if not is_identifier(payment_id):
        return None
    found = (
        await session.execute(
            select(Payment.created_at, Payment.id).where(Payment.id == payment_id)
        )
    ).first()
    return Cursor(found.created_at, found.id, newer) if found is not None else None


# --- one page ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentsPage:
    rows: Sequence[Payment]
    search: Search
    older: str | None  # the ``before`` of the next older page, if there is one
    newer: str | None  # the ``after`` of the next newer page, if there is one
    paged: bool  # not the newest page: offer a way back to it
    phone_window: int = PHONE_SEARCH_WINDOW  # how many payments a phone search reads


async def find_page(
    sessions: async_sessionmaker[AsyncSession],
    filters: PaymentFilters,
    zone: ZoneInfo,
    *,
    before: str | None = None,
    after: str | None = None,
) -> PaymentsPage:
    """The page of payments below ``before`` (older) or above ``after`` (newer), newest first."""
    async with sessions() as session:
        search = await decided_search(session, filters, zone)
        cursor = await cursor_of(session, after, newer=True) if after else None
        if cursor is None:
            cursor = await cursor_of(session, before, newer=False)
        found = (
            await session.scalars(page_query(filters, zone, search, cursor, limit=PAGE_SIZE + 1))
        ).all()
    rows, more = list(found[:PAGE_SIZE]), len(found) > PAGE_SIZE
    if cursor is not None and cursor.newer:
        rows.reverse()
        older = rows[-1].id if rows else None
        newer = rows[0].id if more else None
        return PaymentsPage(rows, search, older, newer, more, PHONE_SEARCH_WINDOW)
    newer = rows[0].id if cursor is not None and rows else None
    older = rows[-1].id if more else None
    return PaymentsPage(rows, search, older, newer, cursor is not None, PHONE_SEARCH_WINDOW)


async def merchant_names(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    """Every merchant's name by id, by name (a gateway has tens of merchants, not millions)."""
    async with sessions() as session:
        rows = await session.execute(select(Merchant.id, Merchant.name).order_by(Merchant.name))
        return {merchant_id: name for merchant_id, name in rows}


# --- the CSV export ----------------------------------------------------------------------------
CSV_HEADER: Final = (
    "id",
    "created_at",
    "merchant_id",
    "merchant_name",
    "order_id",
    "amount",
    "currency",
    "amount_refunded",
    "provider",
    "phone_number",
    "status",
    "failure_code",
    "provider_reference",
    "provider_transaction_id",
    "completed_at",
)


async def export_rows(
    sessions: async_sessionmaker[AsyncSession], filters: PaymentFilters, zone: ZoneInfo
) -> AsyncIterator[Sequence[Payment]]:
    """What the list shows on all its pages, newest first, in chunks of keyset pages (a short
    transaction each, so a slow download holds no snapshot open), at most EXPORT_LIMIT rows."""
    async with sessions() as session:
        search = await decided_search(session, filters, zone)
    cursor: Cursor | None = None
    sent = 0
    while sent < EXPORT_LIMIT:
        size = min(EXPORT_CHUNK, EXPORT_LIMIT - sent)
        async with sessions() as session:
            chunk = (
                await session.scalars(page_query(filters, zone, search, cursor, limit=size))
            ).all()
        if chunk:
            yield chunk
        sent += len(chunk)
        if len(chunk) < size:
            return
        cursor = Cursor(chunk[-1].created_at, chunk[-1].id)


async def csv_text(
    sessions: async_sessionmaker[AsyncSession], filters: PaymentFilters, zone: ZoneInfo
) -> AsyncIterator[str]:
    """The export as CSV text: a header row, then one row per payment; phone numbers masked,
    amounts as plain numbers beside their currency, times in ISO 8601 UTC."""
    names = await merchant_names(sessions)
    yield _csv_line(CSV_HEADER)
    async for chunk in export_rows(sessions, filters, zone):
        yield "".join(_csv_line(csv_row(payment, names)) for payment in chunk)


def csv_row(payment: Payment, names: Mapping[str, str]) -> tuple[str, ...]:
    return (
        payment.id,
        iso_utc(payment.created_at),
        payment.merchant_id,
        _cell(names.get(payment.merchant_id, "")),
        _cell(payment.order_id),
        format_amount(payment.amount_minor, payment.currency),
        payment.currency,
        format_amount(payment.amount_refunded_minor or 0, payment.currency),
        payment.provider,
        mask(payment.phone_number) if payment.phone_number else "",
        payment.status,
        payment.failure_code or "",
        _cell(payment.provider_reference),
        _cell(payment.provider_transaction_id or ""),
        iso_utc(payment.completed_at),
    )


def iso_utc(at: datetime | None) -> str:
    """``2026-12-04T09:15:02Z``; empty for no time."""
    if at is None:
        return ""
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cell(text: str) -> str:
    # Text from merchants and providers must not run as a formula where the file is opened.
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_line(values: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()
