"""Failures an operator meets first: a database that is down, not migrated or not there, a port
that is taken, a downgrade that would drop payments.

Each is one clear line and a non-zero exit, never a traceback, and nothing of what the failed
statement carried (webhook secrets, API key hashes, phone numbers) nor the database password
shows, in the CLI's output or in the API's logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import create_engine, create_sessionmaker, new_id
from app.merchants.service import create_merchant
from app.payments.models import Payment
from app.ports import PortUnavailable
from app.providers import registry
from app.simulator.app import create_simulator_app
from app.simulator.server import serve_in_background
from app.vocabulary import Provider
from tests.conftest import (
    _create_postgres_database,
    _drop_postgres_database,
    make_settings,
    migrated_database,
    running_app,
)
from tests.e2e.stack import free_port
from tests.fakes import FakeProvider
from tests.services import need_postgres

PASSWORD = "s3cretpw-do-not-print"
CLOSED_PORT_URL = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:1/nope"
CLOSED_PORT_LOCATION = "127.0.0.1:1/nope"
# A subprocess that has not answered by then is hung, which is a failure of its own.
DEADLINE_SECONDS = 60
NEVER_SHOWN = ("whsec_", "mgw_", "[parameters:")
MERCHANT = ["merchants", "create", "--name", "Shop", "--callback-url", "https://shop.example/h"]


def cli_env(**overrides: str) -> dict[str, str]:
    """This environment without any of the service's settings, plus ``overrides``."""
    settings_names = {name.upper() for name in Settings.model_fields}
    env = {name: value for name, value in os.environ.items() if name.upper() not in settings_names}
    env.update(overrides)
    return env


def run_cli(*args: str, cwd: Path, **env: str) -> tuple[int, str]:
    """``momo-gateway ARGS`` in ``cwd`` (where no .env is), as an operator would run it: its
    exit status and everything it printed."""
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


async def run_cli_async(*args: str, cwd: Path, **env: str) -> tuple[int, str]:
    return await asyncio.to_thread(run_cli, *args, cwd=cwd, **env)


def with_password(url: str) -> str:
    """``url`` with a password in it (the test server's own, if it needs one)."""
    parsed = make_url(url)
    return parsed.set(password=parsed.password or PASSWORD).render_as_string(hide_password=False)


def location(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host}:{parsed.port or 5432}/{parsed.database}"


def assert_one_clear_line(output: str, *expected: str, password: str = PASSWORD) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    for part in expected:
        assert part in output, output
    for leak in (*NEVER_SHOWN, password, "Traceback", "INSERT INTO"):
        assert leak not in output, output


@pytest.fixture
async def empty_postgres() -> AsyncIterator[str]:
    """A PostgreSQL database without a single table, and a URL to it with a password."""
    base = need_postgres()
    url, name = await _create_postgres_database(base)
    try:
        yield with_password(url)
    finally:
        await _drop_postgres_database(base, name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def blank_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'blank.db'}"
        return
    base = need_postgres()
    url, name = await _create_postgres_database(base)
    try:
        yield with_password(url)
    finally:
        await _drop_postgres_database(base, name)


# --- the CLI and the database ---------------------------------------------------------------


async def test_merchants_create_without_a_schema_says_to_migrate(blank_database, tmp_path):
    code, output = await run_cli_async(*MERCHANT, cwd=tmp_path, DATABASE_URL=blank_database)

    assert code == 1
    assert_one_clear_line(
        output,
        "has no schema yet: run momo-gateway migrate",
        password=make_url(blank_database).password or PASSWORD,
    )
    if blank_database.startswith("postgresql"):
        assert location(blank_database) in output


@pytest.mark.parametrize(
    "command",
    [MERCHANT, ["migrate"], ["migrate", "--downgrade", "base"]],
    ids=["merchants-create", "migrate", "migrate-downgrade"],
)
def test_a_database_that_does_not_answer_is_one_line(command, tmp_path):
    code, output = run_cli(*command, cwd=tmp_path, DATABASE_URL=CLOSED_PORT_URL)

    assert code == 1
    assert_one_clear_line(
        output, f"cannot reach the database at {CLOSED_PORT_LOCATION}: connection refused"
    )


def test_dev_with_a_database_that_does_not_answer_is_one_line(tmp_path):
    ports = [str(free_port()) for _ in range(3)]
    code, output = run_cli(
        "dev",
        *("--port", ports[0], "--simulator-port", ports[1], "--storefront-port", ports[2]),
        cwd=tmp_path,
        DATABASE_URL=CLOSED_PORT_URL,
    )

    assert code == 1
    assert_one_clear_line(output, f"cannot reach the database at {CLOSED_PORT_LOCATION}")


def test_a_sqlite_file_that_cannot_be_opened_is_one_line(tmp_path):
    path = tmp_path / "no-such-directory" / "gateway.db"
    code, output = run_cli(*MERCHANT, cwd=tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{path}")

    assert code == 1
    assert_one_clear_line(output, f"cannot reach the database at {path}: unable to open")


async def test_debug_adds_the_traceback_but_no_parameter_and_no_password(empty_postgres, tmp_path):
    code, output = await run_cli_async(
        "--debug", *MERCHANT, cwd=tmp_path, DATABASE_URL=empty_postgres
    )

    assert code == 1
    assert "Traceback" in output
    assert output.strip().splitlines()[-1].endswith("run momo-gateway migrate")
    for leak in (*NEVER_SHOWN, make_url(empty_postgres).password):
        assert leak not in output


async def test_worker_with_a_database_that_does_not_answer_is_one_line(redis_url, tmp_path):
    code, output = await run_cli_async(
        "worker", cwd=tmp_path, DATABASE_URL=CLOSED_PORT_URL, REDIS_URL=redis_url
    )

    assert code == 1
    # arq's start-up lines come first; the failure is the last line, and the only error.
    last = output.strip().splitlines()[-1]
    assert last == f"error: cannot reach the database at {CLOSED_PORT_LOCATION}: connection refused"
    assert PASSWORD not in output
    assert "Traceback" not in output


def assert_serve_logs_one_line(url: str, expected: str, cwd: Path) -> None:
    code, output = run_cli(
        "serve", "--host", "127.0.0.1", "--port", str(free_port()), cwd=cwd, DATABASE_URL=url
    )

    assert code != 0
    failures = [line for line in output.splitlines() if expected in line]
    assert len(failures) == 1, output
    assert len(output.strip().splitlines()) <= 6, output
    for leak in (*NEVER_SHOWN, make_url(url).password or PASSWORD, "Traceback", "INSERT INTO"):
        assert leak not in output


def test_serve_logs_a_database_that_does_not_answer_as_one_line(tmp_path):
    assert_serve_logs_one_line(
        CLOSED_PORT_URL, f"cannot reach the database at {CLOSED_PORT_LOCATION}", tmp_path
    )


async def test_serve_logs_a_database_without_schema_as_one_line(empty_postgres, tmp_path):
    expected = f"the database at {location(empty_postgres)} has no schema yet"
    await asyncio.to_thread(assert_serve_logs_one_line, empty_postgres, expected, tmp_path)


# --- the API and the database ---------------------------------------------------------------


async def test_a_database_error_in_a_request_is_a_problem_and_logs_no_parameter(tmp_path, caplog):
    order_id = "ORD-NEVER-LOGGED-7731"
    async with migrated_database("postgresql", tmp_path) as url:
        providers = {provider: FakeProvider(provider) for provider in registry.names()}
        async with running_app(make_settings(url), providers) as (app, http):
            runtime = app.state.runtime
            merchant = await create_merchant(
                runtime.sessions, name="Shop", callback_url="https://shop.example/h"
            )
            # The schema breaks under the running service: every payment write now fails.
            async with runtime.engine.begin() as connection:
                await connection.execute(text("ALTER TABLE payments RENAME TO payments_away"))
            caplog.set_level(logging.DEBUG)

            response = await http.post(
                "/v1/payments",
                headers={
                    "Authorization": f"Bearer {merchant.api_key}",
                    "Idempotency-Key": "idem-never-logged-5521",
                },
                json={
                    "order_id": order_id,
                    "amount": "50000",
                    "phone_number": "0772 123 456",
                    "description": f"Order {order_id}",
                },
            )

    assert response.status_code >= 500
    assert response.headers["content-type"].startswith("application/problem+json")
    for sql in ("SELECT", "INSERT", "payments", "[SQL"):
        assert sql not in response.text
    logged = caplog.text
    assert "unhandled error" in logged  # the failure was logged, traceback and all
    for value in (
        "[parameters:",
        order_id,
        "idem-never-logged-5521",
        merchant.api_key,
        merchant.id,
        "256772123456",
        "0772123456",
    ):
        assert value not in logged


# --- migrate --downgrade base -----------------------------------------------------------------


async def add_a_payment(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        sessions = create_sessionmaker(engine)
        merchant = await create_merchant(
            sessions, name="Shop", callback_url="https://shop.example/h"
        )
        async with sessions.begin() as session:
            session.add(
                Payment(
                    id=new_id("pay"),
                    merchant_id=merchant.id,
                    order_id="ORD-1",
                    provider=Provider.MTN_MOMO.value,
                    status="successful",
                    amount_minor=50000,
                    currency="UGX",
                    phone_number="256772123456",
                    description="Order ORD-1",
                    provider_reference=str(uuid.uuid4()),
                )
            )
    finally:
        await engine.dispose()


async def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_downgrade_to_base_asks_for_yes_only_when_payments_would_be_lost(
    blank_database, tmp_path
):
    async def migrate(*args: str) -> tuple[int, str]:
        return await run_cli_async("migrate", *args, cwd=tmp_path, DATABASE_URL=blank_database)

    assert (await migrate())[0] == 0
    await add_a_payment(blank_database)

    revisions = len(list((Path(__file__).parent.parent / "migrations" / "versions").glob("*.py")))
    for target in ("base", f"-{revisions}"):  # as many steps down as there are revisions
        code, output = await migrate("--downgrade", target)
        assert code == 2
        assert "1 payment" in output
        assert "--yes" in output
        assert "payments" in await table_names(blank_database)

    code, output = await migrate("--downgrade", "base", "--yes")
    assert code == 0, output
    assert "payments" not in await table_names(blank_database)

    # Nothing to lose: no question asked.
    assert (await migrate())[0] == 0
    code, output = await migrate("--downgrade", "base")
    assert code == 0, output
    assert "payments" not in await table_names(blank_database)


# --- ports that are taken -------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process is listening on."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("command", "flag", "role"),
    [
        ("serve", "--port", "API"),
        ("simulator", "--port", "simulator"),
        ("dev", "--port", "API"),
        ("dev", "--simulator-port", "simulator"),
        ("dev", "--storefront-port", "demo storefront"),
    ],
)
def test_a_taken_port_is_named_with_the_flag_that_moves_it(
    command, flag, role, taken_port, tmp_path
):
    args = [command, "--host", "127.0.0.1", flag, str(taken_port)]
    if command == "dev":
        # The other two free, so the taken one is the only failure.
        for other in ("--port", "--simulator-port", "--storefront-port"):
            if other != flag:
                args += [other, str(free_port())]
    database = tmp_path / "dev.db"

    code, output = run_cli(*args, cwd=tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{database}")

    assert code == 1
    assert_one_clear_line(output)
    assert output.strip() == (
        f"error: port {taken_port} ({role}) is already in use on 127.0.0.1: "
        f"choose another with {flag}"
    )
    assert not database.exists()  # nothing started, nothing migrated


def test_dev_refuses_one_port_for_two_servers(tmp_path):
    port = str(free_port())
    code, output = run_cli(
        *("dev", "--port", port, "--simulator-port", port, "--storefront-port", "0"),
        cwd=tmp_path,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}",
    )

    assert code == 1
    assert_one_clear_line(output, f"--port and --simulator-port both ask for port {port}")


async def test_serve_in_background_names_a_taken_port(taken_port):
    with pytest.raises(PortUnavailable) as raised:
        async with serve_in_background(create_simulator_app(), port=taken_port):
            pass

    assert raised.value.port == taken_port
    assert raised.value.explain("simulator", "--simulator-port") == (
        f"port {taken_port} (simulator) is already in use on 127.0.0.1: "
        "choose another with --simulator-port"
    )


def test_dev_refuses_a_bad_callback_url_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "dev", "--callback-url", "ftp://shop.example/x"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --callback-url: callback URL must be an absolute http:// or https:// URL"
    ]
    assert not (tmp_path / "d.db").exists()


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"], ["migrate"]])
def test_an_invalid_setting_is_named_in_one_line_without_its_value(
    tmp_path: Path, command: list[str]
) -> None:
    # A key that is too short is still a secret: the message names the setting, not the value.
    short_key = "short-saleor-key-do-not-print"
    code, output = run_cli(
        *command,
        cwd=tmp_path,
        SALEOR_APP_TOKEN_KEY=short_key,
        DATABASE_URL=CLOSED_PORT_URL,
    )
    assert code == 1
    assert_one_clear_line(output, "invalid settings: SALEOR_APP_TOKEN_KEY: must be at least 32")
    assert short_key not in output


def test_a_setting_missing_its_companion_names_both_without_any_value(tmp_path: Path) -> None:
    code, output = run_cli(
        "serve",
        "--port",
        "1",
        cwd=tmp_path,
        SALEOR_ALLOWED_API_URLS="https://shop.example/graphql/",
        DATABASE_URL=CLOSED_PORT_URL,
    )
    assert code == 1
    assert_one_clear_line(output, "SALEOR_APP_TOKEN_KEY is required when SALEOR_ALLOWED_API_URLS")
