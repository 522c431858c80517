"""The gateway under uvicorn on PostgreSQL, shared by the fuzz modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import make_settings
from tests.fuzz.live import LiveGateway, gateway_on_a_thread


@pytest.fixture(scope="module")
def live_gateway(pg_url: str) -> Iterator[LiveGateway]:
    """The gateway on PostgreSQL under uvicorn (own thread), with in-memory providers."""
    with gateway_on_a_thread(make_settings(pg_url)) as gateway:
        yield gateway
