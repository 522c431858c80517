"""Database failures told in one line, for an operator at a terminal or reading a log.

    the database at db.internal:5432/gateway has no schema yet: run momo-gateway migrate
    cannot reach the database at db.internal:5432/gateway: connection refused
    database error at db.internal:5432/gateway: InsufficientPrivilegeError (SQLSTATE 42501)

The location is host, port and database name only: never the user or the password. PostgreSQL's
own words are quoted only when it refused a connection: about a statement they can carry its
values (``invalid input syntax for type integer: "…"``). SQLite's name tables and columns only.

``describe_database_failure`` for the CLI, ``OneLineStartupFailure`` for ``serve``'s start-up.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import traceback
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError, StatementError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_DEFAULT_PORTS = {"postgresql": 5432}

# Refused while connecting (not about any statement): their messages are safe to show.
_CONNECT_REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # bad user or password
    asyncpg.exceptions.InvalidCatalogNameError,  # no such database
    asyncpg.exceptions.CannotConnectNowError,  # starting up, shutting down
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)

_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
)


def database_location(database_url: str) -> str:
    """``host:port/database`` (the file path for SQLite), without credentials."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return "DATABASE_URL (not a valid URL)"
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.database or ":memory:"
    port = url.port or _DEFAULT_PORTS.get(backend)
    host = url.host or "localhost"
    address = f"{host}:{port}" if port else host
    return f"{address}/{url.database or ''}"


def describe_database_failure(
    exc: BaseException, database_url: str, *, os_errors_are_database: bool = True
) -> str | None:
    """One line saying what went wrong with the database, or None if ``exc`` is not about it.

    ``os_errors_are_database``: a bare OSError (asyncpg's connection refused, a timeout) counts
    as the database's, for code whose only network peer is the database.
    """
    chain = list(_chain(exc))
    from_database = any(isinstance(link, _DATABASE_ERRORS) for link in chain)
    if not from_database and not (os_errors_are_database and isinstance(exc, OSError)):
        return None
    where = database_location(database_url)
    if any(_schema_missing(link) for link in chain):
        return f"the database at {where} has no schema yet: run momo-gateway migrate"
    for link in chain:
        reason = _unreachable_reason(link)
        if reason is not None:
            return f"cannot reach the database at {where}: {reason}"
    return f"database error at {where}: {_short_name(exc, chain)}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver error SQLAlchemy wraps, and their causes, each once."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 16:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        for nxt in (getattr(link, "orig", None), link.__cause__, link.__context__):
            if isinstance(nxt, BaseException):
                pending.append(nxt)


def _schema_missing(link: BaseException) -> bool:
    if isinstance(link, asyncpg.exceptions.UndefinedTableError):
        return True
    if isinstance(link, sqlite3.OperationalError):
        return str(link).startswith("no such table")
    return False


def _unreachable_reason(link: BaseException) -> str | None:
    if isinstance(link, _CONNECT_REFUSALS):
        return _first_line(str(link)) or type(link).__name__
    if isinstance(link, sqlite3.OperationalError) and "unable to open" in str(link):
        return _first_line(str(link))
    if isinstance(link, DBAPIError) and link.connection_invalidated:
        return "the connection was lost"
    if isinstance(link, TimeoutError):
        return "timed out"
    if isinstance(link, OSError):
        # asyncio words a refusal "Connect call failed ('127.0.0.1', 5432)": the errno is clearer.
        if link.errno is not None and link.errno > 0:
            return _lower_first(os.strerror(link.errno))
        return _lower_first(link.strerror or _first_line(str(link)) or type(link).__name__)
    return None


def _short_name(exc: BaseException, chain: list[BaseException]) -> str:
    for link in chain:
        if isinstance(link, asyncpg.PostgresError):
            return f"{type(link).__name__} (SQLSTATE {link.sqlstate})"
    for link in chain:
        if isinstance(link, sqlite3.Error):
            # SQLite names tables, columns and constraints in its messages, never values.
            return f"{type(link).__name__}: {_first_line(str(link))}"
    if isinstance(exc, SQLAlchemyError) and not isinstance(exc, StatementError):
        # Configuration trouble (an unknown driver, a malformed URL): no statement involved.
        return f"{type(exc).__name__}: {_first_line(str(exc))}"
    return type(exc).__name__


def hide_aiosqlite_closed_loop_reports() -> None:
    """Keep the one line of a failed SQLite connection from being followed by a page of thread
    traceback.

    When aiosqlite cannot open a database it stops its worker thread without waiting for it;
    the thread then reports to an event loop that ``asyncio.run`` has already closed, and dies
    with ``RuntimeError: Event loop is closed`` (omnilib/aiosqlite#259). The failure that
    matters was raised in the loop already; only that second report is dropped, once per
    process however often this is called.
    """
    previous = threading.excepthook
    if getattr(previous, "hides_aiosqlite_closed_loop", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not _aiosqlite_closed_loop(args):
            previous(args)

    hook.hides_aiosqlite_closed_loop = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _aiosqlite_closed_loop(args: threading.ExceptHookArgs) -> bool:
    if not isinstance(args.exc_value, RuntimeError) or str(args.exc_value) != (
        "Event loop is closed"
    ):
        return False
    in_aiosqlite = os.path.join("aiosqlite", "core.py")
    return any(
        frame.f_code.co_filename.endswith(in_aiosqlite)
        for frame, _ in traceback.walk_tb(args.exc_traceback)
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


class OneLineStartupFailure:
    """Wraps the API so that a database failure while it starts is logged as one line.

    Starlette reports a failed start-up to the server with the whole traceback, and uvicorn
    logs it as is: for a database that is down or not migrated, that is a page of stack frames
    around one fact. Other start-up failures keep their traceback.
    """

    def __init__(self, app: ASGIApp, database_url: str) -> None:
        self.app = app
        self.database_url = database_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        # The failure report comes just before the exception it reports is raised: hold it
        # until the exception says whether one line will do.
        held: list[Message] = []

        async def hold_startup_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
                return
            await send(message)

        try:
            await self.app(scope, receive, hold_startup_failure)
        except BaseException as exc:
            if held:
                line = describe_database_failure(exc, self.database_url)
                await send({**held[0], "message": line} if line else held[0])
                held.clear()
            raise
        finally:
            if held:
                await send(held[0])
