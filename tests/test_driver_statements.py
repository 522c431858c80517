"""``execute_on_driver``: the hot path's statements run straight on asyncpg, and still behave
as SQLAlchemy's execution would (types, constraint errors, dead connections). PostgreSQL only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.db import create_engine, execute_on_driver, retry_once_on_disconnect
from app.idempotency import _INSERT_CLAIM as INSERT_CLAIM
from app.idempotency import IdempotencyRecord
from tests.conftest import terminate_other_connections

RECORDS = IdempotencyRecord.__table__


def claim(key: str, at: datetime) -> dict[str, object]:
    return {
        "claim_merchant_id": "mer_1",
        "claim_key": key,
        "claim_request_hash": "h" * 64,
        "claim_locked_at": at,
        "claim_created_at": at,
    }


async def test_a_row_is_written_with_its_types_and_counted(clean_pg):
    engine = create_engine(clean_pg)
    try:
        at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
        assert await execute_on_driver(engine, INSERT_CLAIM, claim("k-1", at)) == 1
        async with engine.connect() as connection:
            row = (await connection.execute(select(RECORDS))).one()
        assert (row.merchant_id, row.key, row.created_at) == ("mer_1", "k-1", at)
    finally:
        await engine.dispose()


async def test_column_types_process_the_values_as_sqlalchemy_does(clean_pg):
    engine = create_engine(clean_pg)
    try:
        naive = datetime(2026, 12, 4, 12, 0)
        # UTCDateTime refuses a naive datetime before anything is sent.
        with pytest.raises(ValueError, match="naive"):
            await execute_on_driver(engine, INSERT_CLAIM, claim("k-naive", naive))
        async with engine.connect() as connection:
            assert (
                await connection.execute(text("SELECT count(*) FROM idempotency_records"))
            ).scalar() == 0
    finally:
        await engine.dispose()


async def test_a_constraint_is_an_integrity_error_without_the_values(clean_pg):
    engine = create_engine(clean_pg)
    try:
        at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
        await execute_on_driver(engine, INSERT_CLAIM, claim("k-taken", at))
        with pytest.raises(IntegrityError) as raised:
            await execute_on_driver(engine, INSERT_CLAIM, claim("k-taken", at))
        assert "mer_1" not in str(raised.value).split("[SQL:")[1]  # parameters hidden
        # The connection is still good: the pool did not lose it.
        assert await execute_on_driver(engine, INSERT_CLAIM, claim("k-next", at)) == 1
    finally:
        await engine.dispose()


async def test_a_dead_pooled_connection_is_discarded_and_the_retry_writes(clean_pg):
    engine = create_engine(clean_pg)
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    try:
        await execute_on_driver(engine, INSERT_CLAIM, claim("k-warm", at))  # one idle connection
        await terminate_other_connections(clean_pg)
        failures: list[DBAPIError] = []

        async def write() -> int:
            try:
                return await execute_on_driver(engine, INSERT_CLAIM, claim("k-after", at))
            except DBAPIError as exc:
                failures.append(exc)
                raise

        assert await retry_once_on_disconnect(write) == 1
        assert len(failures) == 1
        assert failures[0].connection_invalidated
        async with engine.connect() as connection:
            keys = (await connection.execute(select(RECORDS.c.key))).scalars().all()
        assert sorted(keys) == ["k-after", "k-warm"]
    finally:
        await engine.dispose()
