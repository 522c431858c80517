"""Shared fixtures: a migrated database per backend, the app over HTTP, fake providers.

Database-backed tests run twice, on SQLite and on PostgreSQL (``db_url`` is parametrised);
the PostgreSQL run skips when no server answers, unless ``MOMO_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.log_config import JsonFormatter
from app.main import create_app
from app.merchants.service import NewMerchantCredentials, create_merchant
from app.migrate import upgrade_async
from app.models import Base
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.runtime import Runtime
from app.vocabulary import Provider
from tests.fakes import FakeProvider, FakeRefundProvider
from tests.services import need_postgres, need_redis

# Children first, so deletes never trip a foreign key.
TABLES_IN_DELETE_ORDER = [table.name for table in reversed(Base.metadata.sorted_tables)]


async def _admin_execute(base_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    url = make_url(base_url)
    connection = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port or 5432,
        database=url.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _create_postgres_database(base_url: str) -> tuple[str, str]:
    name = f"momo_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await _admin_execute(base_url, f'CREATE DATABASE "{name}"')
    return make_url(base_url).set(database=name).render_as_string(hide_password=False), name


async def _drop_postgres_database(base_url: str, name: str) -> None:
    await _admin_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def migrated_database(kind: str, directory: Path) -> AsyncIterator[str]:
    """A new database of ``kind`` (sqlite or postgresql) at the latest migration."""
    name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'gateway.db'}"
    else:
        url, name = await _create_postgres_database(need_postgres())
    engine = create_engine(url)
    await upgrade_async(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        if name is not None:
            await _drop_postgres_database(need_postgres(), name)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A freshly migrated database, once per backend per test session."""
    async with migrated_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
async def pg_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """PostgreSQL only: for what SQLite cannot show (SKIP LOCKED, several workers)."""
    async with migrated_database("postgresql", tmp_path_factory.mktemp("pg")) as url:
        yield url


async def terminate_other_connections(url: str) -> None:
    """Have PostgreSQL drop every connection to ``url``'s database but the one asking (from an
    engine of its own, so idle connections in other pools stay where they are, now dead)."""
    admin = create_engine(url)
    try:
        async with admin.connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await admin.dispose()


async def empty_tables(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # TRUNCATE, not DELETE: the operator audit log refuses DELETE (it is append-only).
            tables = ", ".join(TABLES_IN_DELETE_ORDER)
            await connection.execute(text(f"TRUNCATE {tables}"))
        else:
            for table in TABLES_IN_DELETE_ORDER:
                await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    await engine.dispose()


@pytest.fixture
async def clean_pg(pg_url: str) -> str:
    await empty_tables(pg_url)
    return pg_url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A real Redis database of its own, flushed before and after."""
    url = need_redis()
    client = Redis.from_url(url)
    await client.flushdb()
    yield url
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def clean_db(db_url: str) -> str:
    """Each test starts with empty tables (the schema stays)."""
    await empty_tables(db_url)
    return db_url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "mtn_momo_api_user": "3f2b6c1e-8a4d-4b1e-9d6f-0c7a5e2b1d90",
        "mtn_momo_api_key": "mtn-api-key",
        "mtn_momo_subscription_key": "mtn-subscription-key",
        "mtn_momo_target_env": "sandbox",
        "mtn_momo_callback_url": "https://gateway.example/api/webhooks/mtn-momo/",
        "airtel_money_client_id": "airtel-client",
        "airtel_money_client_secret": "airtel-secret",
        "callback_token_secret": "callback-token-secret",
        "reconcile_min_age_seconds": 0,
        "worker_metrics_port": 0,
        # Generous, so a loaded machine never turns "processed" into "received" by accident;
        # the deadline itself has its own test.
        "callback_verify_deadline_seconds": 30,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def fake_providers() -> dict[Provider, FakeProvider]:
    return {
        Provider.MTN_MOMO: FakeProvider(Provider.MTN_MOMO),
        Provider.AIRTEL_MONEY: FakeProvider(Provider.AIRTEL_MONEY),
    }


@pytest.fixture
def settings(clean_db: str) -> Settings:
    return make_settings(clean_db)


@asynccontextmanager
async def running_app(
    settings: Settings,
    providers: Mapping[Provider, Any] | None = None,
    refund_providers: Mapping[Provider, Any] | None = None,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and an HTTP client speaking to it in-process."""
    application = create_app(
        settings, providers=providers, refund_providers=refund_providers, background_jobs=False
    )
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield application, http


@pytest.fixture
def fake_refunds() -> dict[Provider, FakeRefundProvider]:
    return {
        Provider.MTN_MOMO: FakeRefundProvider(Provider.MTN_MOMO),
        Provider.AIRTEL_MONEY: FakeRefundProvider(Provider.AIRTEL_MONEY),
    }


@pytest.fixture
async def app(
    settings: Settings,
    fake_providers: dict[Provider, FakeProvider],
    fake_refunds: dict[Provider, FakeRefundProvider],
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings, providers=fake_providers, refund_providers=fake_refunds, background_jobs=False
    )
    async with LifespanManager(application):
        yield application


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield http


@pytest.fixture
async def merchant(runtime: Runtime) -> NewMerchantCredentials:
    return await create_merchant(
        runtime.sessions, name="Kampala Electronics", callback_url="https://shop.example/hooks"
    )


@pytest.fixture
async def other_merchant(runtime: Runtime) -> NewMerchantCredentials:
    return await create_merchant(
        runtime.sessions, name="Jinja Gadgets", callback_url="https://other.example/hooks"
    )


@pytest.fixture
def auth(merchant: NewMerchantCredentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {merchant.api_key}"}


# What a successful payment is made with (the API's own example, and an Airtel number).
PAYMENT_BODY = {
    "order_id": "ORD-1001",
    "amount": "50000",
    "currency": "UGX",
    "phone_number": "0772 123 456",
    "provider": "mtn_momo",
    "description": "Order ORD-1001",
}
AIRTEL_PHONE = "0752 123 456"


class Payments:
    """Makes successful payments through the API (the fake provider confirms them)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        providers: dict[Provider, FakeProvider],
    ) -> None:
        self._client = client
        self._auth = auth
        self._providers = providers
        self._count = 0

    async def successful(
        self,
        provider: Provider = Provider.MTN_MOMO,
        amount: str = "50000",
        transaction_id: str | None = "txn-1",
    ) -> dict[str, Any]:
        self._count += 1
        phone = PAYMENT_BODY["phone_number"] if provider == Provider.MTN_MOMO else AIRTEL_PHONE
        created = await self._client.post(
            "/v1/payments",
            json={
                **PAYMENT_BODY,
                "order_id": f"ORD-R{self._count}",
                "amount": amount,
                "provider": provider.value,
                "phone_number": phone,
            },
            headers=self._auth,
        )
        assert created.status_code == 201, created.text
        payment = created.json()
        self._providers[provider].status = StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL,
            amount_minor=int(amount),
            currency="UGX",
            provider_transaction_id=transaction_id,
        )
        refreshed = await self._client.post(
            f"/v1/payments/{payment['id']}/refresh", headers=self._auth
        )
        assert refreshed.json()["status"] == "successful", refreshed.text
        self._providers[provider].status = None
        result: dict[str, Any] = refreshed.json()
        return result


@pytest.fixture
def payments(
    client: httpx.AsyncClient, auth: dict[str, str], fake_providers: dict[Provider, FakeProvider]
) -> Payments:
    return Payments(client, auth, fake_providers)


async def count_rows(runtime: Runtime, table: str, where: str = "", **params: Any) -> int:
    async with runtime.engine.connect() as connection:
        sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")  # noqa: S608
        return int((await connection.execute(text(sql), params)).scalar_one())


__all__ = ["count_rows", "create_sessionmaker", "make_settings"]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log line of the test, formatted as production formats it (at emit time, so the
    request id in context is the one of the request that logged)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)
