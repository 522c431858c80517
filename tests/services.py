"""Where the suite finds real PostgreSQL and Redis.

Tests that need them (or a browser, Debian's ``chromium``) skip with a reason when they are not
there, except when ``MOMO_REQUIRE_SERVICES=1`` (set by ``.ci/run``, which installs chromium):
there a missing service fails the run instead of quietly skipping it.
"""

from __future__ import annotations

import os
import shutil
import socket
from urllib.parse import urlsplit

import pytest

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def services_required() -> bool:
    return os.environ.get("MOMO_REQUIRE_SERVICES") == "1"


def need(service: str, url: str, default_port: int) -> str:
    """Return ``url`` if the service answers; otherwise skip (or fail when required)."""
    if _reachable(url, default_port):
        return url
    message = f"{service} not reachable at {url}"
    if services_required():
        pytest.fail(message + " (MOMO_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def need_postgres() -> str:
    return need("PostgreSQL", TEST_DATABASE_URL, 5432)


def need_redis() -> str:
    return need("Redis", TEST_REDIS_URL, 6379)


def need_program(name: str, missing: str) -> str:
    """The path of the program ``name``. Skips without it (saying ``missing``), or fails with
    ``MOMO_REQUIRE_SERVICES=1`` as in CI."""
    path = shutil.which(name)
    if path is not None:
        return path
    if services_required():
        pytest.fail(missing + " (MOMO_REQUIRE_SERVICES=1)")
    pytest.skip(missing)


def need_chromium() -> str:
    """The path of Debian's ``chromium`` (never a browser downloaded at run time)."""
    return need_program(
        "chromium", "chromium is not installed: pages are not rendered in a real browser"
    )
