"""Migrations build the schema from empty, agree with the models, and go back down."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from app.db import create_engine
from app.migrate import downgrade_async, upgrade_async
from app.models import Base
from tests.conftest import (
    _create_postgres_database,
    _drop_postgres_database,
    terminate_other_connections,
)
from tests.services import need_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    base = need_postgres()
    url, name = await _create_postgres_database(base)
    yield url
    await _drop_postgres_database(base, name)


async def test_upgrade_matches_models_and_downgrade_empties(empty_db):
    engine = create_engine(empty_db)
    try:
        await upgrade_async(engine)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await connection.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
        assert set(Base.metadata.tables) <= tables
        assert diff == []

        await downgrade_async(engine)
        async with engine.connect() as connection:
            left = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
    finally:
        await engine.dispose()


def test_cli_migrate_builds_the_schema_from_empty(tmp_path, monkeypatch):
    from app.cli import main

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "cli.db") as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"payments", "merchants", "events"} <= names
    assert main(["migrate", "--downgrade", "base"]) == 0
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "payments" not in names


async def test_a_dead_pooled_connection_costs_one_retry_not_a_lost_write(clean_pg):
    """The pool does not ping before use; a write that must not be lost survives a connection
    the server dropped since its last use."""
    from sqlalchemy import text

    from app.db import create_engine, create_sessionmaker, retry_once_on_disconnect

    engine = create_engine(clean_pg)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:  # leaves one idle connection in the pool
            await session.execute(text("SELECT 1"))
        await terminate_other_connections(clean_pg)
        attempts = 0

        async def write() -> int:
            nonlocal attempts
            attempts += 1
            async with sessions.begin() as session:
                return int((await session.execute(text("SELECT 42"))).scalar_one())

        assert await retry_once_on_disconnect(write) == 42
        assert attempts == 2  # the first try met the dead connection
    finally:
        await engine.dispose()


async def test_a_database_with_payments_goes_up_and_down_a_revision(empty_db):
    """SQLite rebuilds a table to alter it in batch mode and refuses to drop one that payments
    reference: a revision that changes merchants must work on a database that has payments."""
    engine = create_engine(empty_db)
    try:
        await upgrade_async(engine, "0001")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO merchants (id, name, api_key_hash, api_key_prefix, callback_url,"
                    " webhook_secret, created_at) VALUES ('mer_1', 'Shop', 'h', 'mgw_', "
                    "'https://shop.example/e', 'whsec_x', CURRENT_TIMESTAMP)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO payments (id, merchant_id, order_id, provider, status,"
                    " amount_minor, currency, phone_number, description, metadata,"
                    " provider_reference, created_at, updated_at, check_count) VALUES ('pay_1',"
                    " 'mer_1', 'ORD-1', 'mtn_momo', 'successful', 1000, 'UGX', '256772123456',"
                    " 'Order ORD-1', '{}', 'ref-1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
                )
            )
            # Events are referenced by their delivery attempts: a revision that rebuilds events
            # (0003) must keep both.
            await connection.execute(
                text(
                    "INSERT INTO events (id, merchant_id, payment_id, type, payload,"
                    " delivery_status, attempt_count, created_at) VALUES ('evt_1', 'mer_1',"
                    " 'pay_1', 'payment.succeeded', '{}', 'delivered', 1, CURRENT_TIMESTAMP)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO event_delivery_attempts (event_id, attempted_at, status_code,"
                    " latency_ms) VALUES ('evt_1', CURRENT_TIMESTAMP, 200, 5)"
                )
            )

        async def rows() -> tuple[int, int, int, int]:
            async with engine.connect() as connection:
                counts = [
                    await connection.scalar(text(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608
                    for table in ("merchants", "payments", "events", "event_delivery_attempts")
                ]
            merchants, payments, events, attempts = (int(count or 0) for count in counts)
            return merchants, payments, events, attempts

        await upgrade_async(engine)
        assert await rows() == (1, 1, 1, 1)
        async with engine.connect() as connection:
            receipts_on = await connection.scalar(text("SELECT sms_receipts FROM merchants"))
            refunded = await connection.scalar(text("SELECT amount_refunded_minor FROM payments"))
        assert not receipts_on  # existing merchants start with SMS receipts off
        assert refunded == 0  # existing payments have refunded nothing
        await downgrade_async(engine, "0001")
        assert await rows() == (1, 1, 1, 1)
        await upgrade_async(engine)
        assert await rows() == (1, 1, 1, 1)
        if engine.dialect.name == "sqlite":
            # Migrations turn SQLite's foreign keys off while they copy tables; the pooled
            # connections must enforce them again afterwards.
            for _ in range(3):
                async with engine.connect() as connection:
                    enforced = await connection.scalar(text("PRAGMA foreign_keys"))
                assert enforced == 1
    finally:
        await engine.dispose()
