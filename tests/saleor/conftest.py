"""A fake Saleor over HTTP beside the gateway and the provider simulator, both under uvicorn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from app.simulator.saleor import FakeSaleor, create_fake_saleor_app
from app.simulator.server import serve_in_background
from tests.e2e.stack import Stack, free_port, running_stack

SCHEMAS = Path(__file__).parent / "schemas"
TOKEN_KEY = "test-saleor-token-key-0123456789abcdef"


def check_reply(schema_name: str, reply: dict[str, Any]) -> None:
    """Fail unless ``reply`` is valid for Saleor's own schema of that webhook's answer."""
    schema = json.loads((SCHEMAS / f"{schema_name}.json").read_text())
    jsonschema.validate(reply, schema, format_checker=jsonschema.FormatChecker())


@dataclass
class SaleorStack:
    saleor: FakeSaleor
    stack: Stack
    http: httpx.AsyncClient  # plain client, as Saleor's own

    @property
    def manifest_url(self) -> str:
        return str(self.stack.gateway.base_url.join("/saleor/api/manifest"))

    async def install(self) -> httpx.Response:
        return await self.saleor.install(self.http, self.manifest_url)


def serving(saleor: FakeSaleor) -> AbstractAsyncContextManager[str]:
    """Serve the fake on a free port; its ``api_url`` is known before it starts."""
    port = free_port()
    saleor.api_url = f"http://127.0.0.1:{port}/graphql/"
    return serve_in_background(create_fake_saleor_app(saleor), port=port)


@asynccontextmanager
async def saleor_beside_gateway(database_url: str, **settings: Any) -> AsyncIterator[SaleorStack]:
    """A fake Saleor allowed to install the gateway, which runs with ``settings``."""
    saleor = FakeSaleor()
    async with (
        serving(saleor),
        running_stack(
            database_url,
            saleor_allowed_api_urls=[saleor.api_url],
            saleor_app_token_key=TOKEN_KEY,
            **settings,
        ) as stack,
        httpx.AsyncClient(timeout=30) as http,
    ):
        yield SaleorStack(saleor, stack, http)


@pytest.fixture
async def saleor_stack(clean_db: str) -> AsyncIterator[SaleorStack]:
    """Not installed yet; payments settle and events are delivered in the background."""
    async with saleor_beside_gateway(
        clean_db,
        background_jobs=True,
        reconcile_min_age_seconds=0,
        reconcile_interval_seconds=0.5,
        event_retry_base_seconds=0.2,
    ) as stack:
        yield stack


@pytest.fixture
async def installed_quiet(clean_db: str) -> AsyncIterator[SaleorStack]:
    """Installed, with no background jobs: the test delivers events itself."""
    async with saleor_beside_gateway(
        clean_db, background_jobs=False, event_max_attempts=2
    ) as stack:
        assert (await stack.install()).status_code == 200
        yield stack
