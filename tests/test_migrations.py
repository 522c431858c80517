"""Migrations build the schema from empty, agree with the models, and go back down."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db import create_engine
from app.migrate import downgrade_async, upgrade_async
from app.models import Base
from tests.conftest import _create_postgres_database, _drop_postgres_database
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
