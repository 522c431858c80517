"""``momo-gateway``: one command for every way the service runs."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.config import ProviderSettings, Settings
from app.log_config import configure_logging
from app.operators.cli import add_merchant_admin_commands, add_operator_commands
from app.ports import Listener, PortUnavailable, check_listeners, explain_unavailable
from app.providers.mtn_momo.sandbox_user import add_sandbox_user_command
from app.refunds.cli import add_refunds_command

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from starlette.types import ASGIApp

# A failure told in one line (a database, a port; --debug adds the traceback).
EXIT_FAILURE = 1
# What a shell reports for a command ended by Ctrl-C.
EXIT_INTERRUPTED = 130


def _migrate(args: argparse.Namespace) -> int:
    from app.migrate import downgrade, upgrade

    settings = Settings()
    if args.downgrade:
        target: str = args.downgrade
        lost = 0 if args.yes else asyncio.run(_payments_lost(settings.database_url, target))
        if lost:
            print(
                f"error: downgrading to {target} drops the payments table and the {lost} "
                "payment(s) in it: pass --yes to go ahead",
                file=sys.stderr,
            )
            return 2
        downgrade(settings.database_url, target)
    else:
        upgrade(settings.database_url, args.revision)
    print(f"database at {args.downgrade or args.revision}", file=sys.stderr)
    return 0


async def _payments_lost(database_url: str, target: str) -> int:
    """Payments a downgrade to ``target`` would drop: 0 unless it goes down to base and the
    payments table has rows."""
    from sqlalchemy import inspect, text

    from app.db import create_engine

    def count(connection: Connection) -> int:
        if not inspect(connection).has_table("payments"):
            return 0
        if not _reaches_base(connection, target):
            return 0
        return int(connection.execute(text("SELECT COUNT(*) FROM payments")).scalar_one())

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(count)
    finally:
        await engine.dispose()


def _reaches_base(connection: Connection, target: str) -> bool:
    """Whether downgrading to ``target`` ends at base, below the first revision, which is the
    one that creates the payments table: ``base`` itself, or ``-N`` for N >= the revisions
    applied."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    if target == "base":
        return True
    if not (target.startswith("-") and target[1:].isdigit()):
        return False
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return False
    applied = list(ScriptDirectory.from_config(alembic_config()).iterate_revisions(current, "base"))
    return int(target[1:]) >= len(applied)


def served_app() -> ASGIApp:
    """The API as ``serve`` runs it: a database that is down or not migrated at start-up is
    one log line, not a traceback."""
    from app.cli_errors import OneLineStartupFailure
    from app.main import create_app

    settings = Settings()
    return OneLineStartupFailure(create_app(settings), settings.database_url)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    # Before uvicorn, which would run the app's start-up first and then fail to bind.
    problem = check_listeners(args.host, [Listener(args.port, "API", "--port")])
    if problem is not None:
        return _fail(problem)
    uvicorn.run(
        # --debug keeps the whole traceback of a failed start-up.
        "app.main:create_app" if args.debug else "app.cli:served_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Never believe X-Forwarded-* at this layer: the callback IP allowlist decides itself,
        # from TRUSTED_PROXIES only (uvicorn would otherwise trust 127.0.0.1).
        proxy_headers=False,
        forwarded_allow_ips="",
        access_log=False,
        log_config=None,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from arq.connections import RedisSettings
    from arq.constants import default_queue_name
    from arq.worker import Worker, async_check_health

    from app.workers.settings import worker_settings

    settings = Settings()
    if not settings.redis_url:
        print(
            "error: the worker needs REDIS_URL (without Redis, `serve` runs the jobs itself)",
            file=sys.stderr,
        )
        return 2
    if args.check:
        redis_settings = RedisSettings.from_dsn(settings.redis_url)
        return asyncio.run(async_check_health(redis_settings, None, default_queue_name))
    configure_logging(settings.log_level, settings.log_format)
    Worker(**worker_settings(settings)).run()
    return 0


def _simulator(args: argparse.Namespace) -> int:
    from app.simulator.config import SimulatorConfig
    from app.simulator.server import run_simulator

    config = SimulatorConfig(
        airtel_callback_url=args.airtel_callback_url,
        airtel_callback_secret=args.airtel_callback_secret,
        approval_delay_seconds=args.approval_delay,
    )
    try:
        run_simulator(args.host, args.port, config)
    except PortUnavailable as exc:
        return _fail(explain_unavailable(exc, [Listener(args.port, "simulator", "--port")]))
    return 0


def _dev(args: argparse.Namespace) -> int:
    from app.dev import DevPorts
    from app.dev import main as run_dev
    from app.merchants.service import InvalidCallbackUrl, validate_callback_url

    settings = Settings()
    configure_logging(settings.log_level, "console")
    if args.callback_url is not None:
        try:
            validate_callback_url(args.callback_url)
        except InvalidCallbackUrl as exc:
            print(f"error: --callback-url: {exc}", file=sys.stderr)
            return 2
    ports = DevPorts(
        api=args.port,
        simulator=args.simulator_port,
        storefront=args.storefront_port,
        saleor=args.saleor_port,
    )
    listeners = [
        Listener(ports.api, "API", "--port"),
        Listener(ports.simulator, "simulator", "--simulator-port"),
        Listener(ports.storefront, "demo storefront", "--storefront-port"),
        Listener(ports.saleor, "fake Saleor", "--saleor-port"),
    ]
    # All three before anything starts: the ports are bound only after the database is
    # migrated and the demo merchant made.
    problem = check_listeners(args.host, listeners)
    if problem is not None:
        return _fail(problem)
    try:
        return run_dev(ports, host=args.host, callback_url=args.callback_url)
    except PortUnavailable as exc:  # taken since the check
        return _fail(explain_unavailable(exc, listeners))


def _fail(line: str) -> int:
    print(f"error: {line}", file=sys.stderr)
    return EXIT_FAILURE


def _merchants_create(args: argparse.Namespace) -> int:
    from app.db import create_engine, create_sessionmaker
    from app.merchants.service import InvalidCallbackUrl, create_merchant

    async def run() -> int:
        engine = create_engine(Settings().database_url)
        try:
            created = await create_merchant(
                create_sessionmaker(engine), name=args.name, callback_url=args.callback_url
            )
        except (InvalidCallbackUrl, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            await engine.dispose()
        print(
            json.dumps(
                {
                    "id": created.id,
                    "api_key": created.api_key,
                    "webhook_secret": created.webhook_secret,
                },
                indent=2,
            )
        )
        print(
            "Keep the API key now: it is stored hashed and cannot be shown again.", file=sys.stderr
        )
        return 0

    return asyncio.run(run())


def _merchants_update(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from app.db import create_engine, create_sessionmaker
    from app.merchants.admin import update_callback_url
    from app.merchants.service import (
        InvalidCallbackUrl,
        InvalidSmsTemplate,
        UnknownMerchant,
        update_sms_receipts,
    )

    sms_change = args.sms_receipts is not None or args.sms_template is not None
    if not sms_change and args.callback_url is None:
        parser.error("nothing to change: give --callback-url, --sms-receipts or --sms-template")

    async def run() -> int:
        engine = create_engine(Settings().database_url)
        sessions = create_sessionmaker(engine)
        printed: dict[str, object] = {"id": args.merchant_id}
        try:
            if args.callback_url is not None:
                summary = await update_callback_url(
                    sessions, args.merchant_id, args.callback_url, source="cli"
                )
                printed["callback_url"] = summary.callback_url
            if sms_change:
                updated = await update_sms_receipts(
                    sessions,
                    args.merchant_id,
                    enabled=None if args.sms_receipts is None else args.sms_receipts == "on",
                    template=args.sms_template,
                )
                printed.update(
                    sms_receipts=updated.enabled,
                    sms_template=updated.template,
                    example=updated.example,
                )
        except UnknownMerchant:
            print(f"error: no merchant {args.merchant_id}", file=sys.stderr)
            return 2
        except (InvalidSmsTemplate, InvalidCallbackUrl) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            await engine.dispose()
        print(json.dumps(printed, indent=2))
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="momo-gateway", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of a failure, not just its line"
    )
    # uses_database: a bare OSError from the command is the database's (asyncpg raises those
    # when it cannot connect). The worker's Redis client wraps its socket errors in its own.
    parser.set_defaults(uses_database=False)
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--revision", default="head")
    migrate.add_argument("--downgrade", metavar="REVISION", help="go down to REVISION (e.g. base)")
    migrate.add_argument(
        "--yes", action="store_true", help="go down to base even if payments would be lost"
    )
    migrate.set_defaults(func=_migrate, uses_database=True)

    serve = commands.add_parser("serve", help="run the API (uvicorn)")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a service listens on all
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_serve, uses_database=True)

    worker = commands.add_parser("worker", help="run the arq worker (needs REDIS_URL)")
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if a worker is alive, 1 if not"
    )
    worker.set_defaults(func=_worker, uses_database=True)

    simulator = commands.add_parser("simulator", help="run the MTN + Airtel simulator alone")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8090)
    simulator.add_argument("--airtel-callback-url", help="where Airtel callbacks are POSTed")
    simulator.add_argument("--airtel-callback-secret", help="sign Airtel callbacks (hash)")
    simulator.add_argument(
        "--approval-delay", type=float, default=1.5, help="seconds before a payer approves"
    )
    simulator.set_defaults(func=_simulator)

    dev = commands.add_parser(
        "dev", help="gateway + simulator + demo storefront on SQLite, no credentials needed"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--simulator-port", type=int, default=8090)
    dev.add_argument("--storefront-port", type=int, default=8091)
    dev.add_argument("--saleor-port", type=int, default=8092, help="the fake Saleor's port")
    dev.add_argument("--callback-url", help="send events to your storefront instead of the demo")
    dev.set_defaults(func=_dev, uses_database=True)

    merchants = commands.add_parser("merchants", help="manage merchants (storefronts)")
    merchant_commands = merchants.add_subparsers(dest="merchant_command", required=True)
    create = merchant_commands.add_parser("create", help="create a merchant, print its keys once")
    create.add_argument("--name", required=True)
    create.add_argument("--callback-url", required=True, help="where events are POSTed")
    create.set_defaults(func=_merchants_create, uses_database=True)
    update = merchant_commands.add_parser(
        "update", help="change a merchant's callback URL or SMS receipts"
    )
    update.add_argument("merchant_id", metavar="ID")
    update.add_argument("--callback-url", metavar="URL", help="where its events go from now on")
    update.add_argument(
        "--sms-receipts", choices=["on", "off"], help="text the payer after each payment"
    )
    update.add_argument(
        "--sms-template",
        metavar="TEXT",
        help="the receipt's text; placeholders {amount}, {merchant}, {order}, {ref}",
    )
    update.set_defaults(func=functools.partial(_merchants_update, update), uses_database=True)

    add_merchant_admin_commands(merchant_commands)
    add_operator_commands(commands)
    add_refunds_command(commands)
    add_sandbox_user_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from app.cli_errors import hide_aiosqlite_closed_loop_reports

    args = build_parser().parse_args(argv)
    hide_aiosqlite_closed_loop_reports()
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ValidationError as exc:
        if not exc.title.endswith("Settings"):
            raise
        if args.debug:
            traceback.print_exception(exc)
        print(f"error: {describe_invalid_settings(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:
        line = _database_failure(exc, os_errors_are_database=args.uses_database)
        if line is None:
            raise
        if args.debug:
            traceback.print_exception(exc)
        print(f"error: {line}", file=sys.stderr)
        return EXIT_FAILURE
    return result


def describe_invalid_settings(exc: ValidationError) -> str:
    """``SALEOR_APP_TOKEN_KEY: must be at least 32 characters; …``: each setting by its
    environment name and what is wrong with it (the values are never in these errors)."""
    prefix = _env_prefixes().get(exc.title, "")
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        name = (prefix + "_".join(str(part) for part in error["loc"])).upper()
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}" if name else message)
    return "invalid settings: " + "; ".join(problems)


def _env_prefixes() -> dict[str, str]:
    """Each provider block's environment prefix, by its class name (``MTN_MOMO_`` …)."""
    return {
        block.__name__: str(block.model_config.get("env_prefix") or "")
        for block in ProviderSettings.__subclasses__()
    }


def _database_failure(exc: Exception, *, os_errors_are_database: bool) -> str | None:
    from pydantic import ValidationError

    from app.cli_errors import describe_database_failure

    try:
        database_url = Settings().database_url
    except ValidationError:
        return None  # invalid settings fail before any database is asked
    return describe_database_failure(
        exc, database_url, os_errors_are_database=os_errors_are_database
    )


if __name__ == "__main__":
    raise SystemExit(main())
