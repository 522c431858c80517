"""``momo-gateway``: one command for every way the service runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from app.config import Settings
from app.log_config import configure_logging
from app.sandbox_user import add_sandbox_user_command


def _migrate(args: argparse.Namespace) -> int:
    from app.migrate import downgrade, upgrade

    settings = Settings()
    if args.downgrade:
        downgrade(settings.database_url, args.downgrade)
    else:
        upgrade(settings.database_url, args.revision)
    print(f"database at {args.downgrade or args.revision}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "app.main:create_app",
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
    run_simulator(args.host, args.port, config)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from app.dev import DevPorts
    from app.dev import main as run_dev

    settings = Settings()
    configure_logging(settings.log_level, "console")
    ports = DevPorts(api=args.port, simulator=args.simulator_port, storefront=args.storefront_port)
    return run_dev(ports, host=args.host, callback_url=args.callback_url)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="momo-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--revision", default="head")
    migrate.add_argument("--downgrade", metavar="REVISION", help="go down to REVISION (e.g. base)")
    migrate.set_defaults(func=_migrate)

    serve = commands.add_parser("serve", help="run the API (uvicorn)")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a service listens on all
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run the arq worker (needs REDIS_URL)")
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if a worker is alive, 1 if not"
    )
    worker.set_defaults(func=_worker)

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
    dev.add_argument("--callback-url", help="send events to your storefront instead of the demo")
    dev.set_defaults(func=_dev)

    merchants = commands.add_parser("merchants", help="manage merchants (storefronts)")
    merchant_commands = merchants.add_subparsers(dest="merchant_command", required=True)
    create = merchant_commands.add_parser("create", help="create a merchant, print its keys once")
    create.add_argument("--name", required=True)
    create.add_argument("--callback-url", required=True, help="where events are POSTed")
    create.set_defaults(func=_merchants_create)

    add_sandbox_user_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
