"""Running Alembic from the service itself (``momo-gateway migrate``, ``dev``, tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine


def _script_directory() -> Path:
    """The Alembic scripts: ``app/migrations`` in an installed wheel, which ships only the app
    package; else ``migrations/`` beside app/, as a checkout (editable install, tests, alembic.ini)
    and the Docker image's source tree lay them out."""
    package = Path(__file__).resolve().parent
    installed = package / "migrations"
    return installed if (installed / "env.py").is_file() else package.parent / "migrations"


MIGRATIONS_DIR = _script_directory()


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logging"] = False
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking; for the CLI."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """From inside a running event loop."""
    await _run_on(engine, command.upgrade, revision)


async def downgrade_async(engine: AsyncEngine, revision: str = "base") -> None:
    await _run_on(engine, command.downgrade, revision)


async def _run_on(
    engine: AsyncEngine, alembic_command: Callable[[Config, str], None], revision: str
) -> None:
    def run(connection: object) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        alembic_command(config, revision)

    async with engine.connect() as connection:
        async with connection.begin():
            await connection.run_sync(run)
        if connection.dialect.name == "sqlite":
            # The migration turned foreign keys off on this pooled connection (migrations/env.py).
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            await connection.commit()
