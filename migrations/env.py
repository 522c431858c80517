"""Alembic environment: async engine, URL from the service's settings."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from app.config import Settings
from app.db import create_engine
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    return str(config.attributes.get("database_url") or Settings().database_url)


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by copying it (batch mode), and dropping the old copy of a table
        # other tables reference fails while foreign keys are enforced: SQLite's own procedure
        # turns them off for the change and checks them once at the end. The pragma only takes
        # effect before the transaction's first write, which is why it comes first.
        # ``app.migrate`` turns them back on once the migration has committed.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")


async def run_migrations_online() -> None:
    engine = create_engine(_database_url())
    async with engine.connect() as async_connection:
        await async_connection.run_sync(_run)
        # On SQLite the pragma in _run began the connection's transaction, so Alembic left the
        # commit to us (elsewhere it has committed already and this does nothing).
        await async_connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif config.attributes.get("connection") is not None:
    # Called from inside a running event loop (tests, `momo-gateway dev`) with a connection.
    _run(config.attributes["connection"])
else:
    asyncio.run(run_migrations_online())
