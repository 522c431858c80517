"""Database plumbing: the declarative base, engine and session factories.

PostgreSQL (asyncpg) is the production target; SQLite (aiosqlite) is the embedded default. Code
that depends on the difference (row locks, SKIP LOCKED) asks ``engine.dialect.name``.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ClauseElement,
    DateTime,
    Dialect,
    Insert,
    Integer,
    MetaData,
    Table,
    Update,
    bindparam,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A 64-bit auto-increment key; SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL, JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """``pay_0193b2c4f1a27c5e9d1f3a8b6c4d2e10``: a time-ordered prefix, then randomness, so ids
    sort roughly by creation and leak nothing."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BoundWrite:
    """A statement built once (so SQLAlchemy compiles it once) and the values for one run."""

    statement: Insert | Update
    params: Mapping[str, Any]


async def execute_write(connection: AsyncConnection, write: BoundWrite) -> None:
    await connection.execute(write.statement, write.params)


def insert_with_named_params(table: Table, columns: Sequence[str], prefix: str) -> Insert:
    """``INSERT INTO table (a, b) VALUES (:prefix_a, :prefix_b)``: the parameter names are
    distinct per table, so several such INSERTs can be combined into one statement."""
    return table.insert().values(
        {name: bindparam(f"{prefix}_{name}", type_=table.c[name].type) for name in columns}
    )


async def execute_on_driver(
    engine: AsyncEngine, statement: ClauseElement, params: Mapping[str, Any]
) -> int:
    """PostgreSQL only: run one statement straight on a pooled asyncpg connection, outside any
    transaction (it commits by itself), and return how many rows it changed.

    For the few statements every payment runs: SQLAlchemy's execution layer (execution context,
    parameter construction, result wrapping) cost more CPU than the statement's round trip.
    The statement is still built with SQLAlchemy and compiled once; its parameters go through
    their column types' bind processing as SQLAlchemy would do it. Errors come out as
    SQLAlchemy's: IntegrityError for a constraint, DBAPIError with ``connection_invalidated``
    when the connection died (the pool then discards it, see ``retry_once_on_disconnect``).
    """
    sql, binds = _compiled_for_driver(statement, frozenset(params), engine.dialect)
    args = [
        value if process is None else process(value)
        for value, process in ((params[name], process) for name, process in binds)
    ]
    async with engine.connect() as connection:
        pooled = await connection.get_raw_connection()
        driver = pooled.driver_connection
        try:
            status: str = await driver.execute(sql, *args)  # type: ignore[union-attr]
        except Exception as exc:
            closed = bool(driver.is_closed())  # type: ignore[union-attr]
            if closed:
                pooled.invalidate(exc)
            if _is_integrity_error(exc):
                raise IntegrityError(sql, None, exc, hide_parameters=True) from exc
            raise DBAPIError(
                sql, None, exc, hide_parameters=True, connection_invalidated=closed
            ) from exc
    # "INSERT 0 1", "UPDATE 1": the count is the last word.
    return int(status.rsplit(" ", 1)[-1])


def _is_integrity_error(exc: BaseException) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("23")  # class 23: constraints


@functools.cache
def _compiled_for_driver(
    statement: ClauseElement, keys: frozenset[str], dialect: Dialect
) -> tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]:
    """The statement's SQL for ``dialect`` and, in positional order, each parameter's name
    with its type's bind processor (None when the driver takes the value as it is). Cached per
    statement object and set of parameter names, like SQLAlchemy's own compiled cache."""
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    if not isinstance(compiled, SQLCompiler):
        raise TypeError("not a SQL statement")
    binds = tuple(
        (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name in compiled.positiontup or ()
    )
    return str(compiled), binds


async def retry_once_on_disconnect(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` (a whole transaction) again once if its connection turned out to be dead.

    The pool does not ping connections before use (a round trip per checkout would double the
    database traffic of a payment); a connection broken since its last use fails on first use
    and is discarded, and this retry takes a fresh one. Only for writes that must not be lost,
    such as recording what a provider just accepted.
    """
    try:
        return await work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        return await work()


DEFAULT_POOL_SIZE = 20


def create_engine(
    database_url: str, *, echo: bool = False, pool_size: int = DEFAULT_POOL_SIZE
) -> AsyncEngine:
    """The engine for ``database_url``. ``hide_parameters``: statement parameters (API key
    hashes, webhook secrets, phone numbers) stay out of the errors it raises and of its echo,
    and so out of every traceback and log line that shows them."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(
            database_url,
            echo=echo,
            hide_parameters=True,
            connect_args={"timeout": 30},
            pool_pre_ping=False,
        )
        _tune_sqlite(engine)
        return engine
    # No pre-ping (see retry_once_on_disconnect); connections are recycled before a server or
    # proxy idle timeout is likely to cut them. No overflow: an overflow connection is closed
    # when returned, and opening one costs PostgreSQL a new backend process and every prepared
    # statement again; under a burst that churn doubled PostgreSQL's CPU per payment
    # (BENCHMARKS.md). A request waits for a pooled connection instead (each is held for one
    # statement on the hot path).
    return create_async_engine(
        database_url,
        echo=echo,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the single writer; busy_timeout waits for the write lock
        # instead of failing; foreign keys are off by default in SQLite.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, each statement its own transaction: a statement that is atomic by itself
    then costs one round trip instead of three (BEGIN, the statement, COMMIT)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
