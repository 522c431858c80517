"""Start-up survives a connection the database cut at that moment, and still fails fast on a
database that is down."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

import app.runtime as runtime_module
from app.runtime import build_runtime
from app.server_secrets import get_or_create_secret
from tests.conftest import make_settings


class ServerClosedTheConnection(Exception):
    pass


def dropped_connection() -> DBAPIError:
    # What SQLAlchemy raises when a pooled connection was terminated mid-statement.
    return DBAPIError("SELECT", {}, ServerClosedTheConnection(), connection_invalidated=True)


async def test_a_connection_cut_during_start_up_is_tried_again(clean_db, monkeypatch):
    calls = []

    async def cut_once(sessions, name):
        calls.append(name)
        if len(calls) == 1:
            raise dropped_connection()
        return await get_or_create_secret(sessions, name)

    monkeypatch.setattr(runtime_module, "get_or_create_secret", cut_once)
    settings = make_settings(clean_db, callback_token_secret=None)
    runtime = await build_runtime(settings)
    try:
        assert len(calls) == 2
        assert runtime.payments is not None
    finally:
        await runtime.aclose()


async def test_a_database_that_stays_away_still_fails_the_start(clean_db, monkeypatch):
    calls = []

    async def always_cut(sessions, name):
        calls.append(name)
        raise dropped_connection()

    monkeypatch.setattr(runtime_module, "get_or_create_secret", always_cut)
    with pytest.raises(DBAPIError):
        await build_runtime(make_settings(clean_db, callback_token_secret=None))
    assert len(calls) == 4


async def test_a_bad_query_is_not_tried_again(clean_db, monkeypatch):
    calls = []

    async def broken(sessions, name):
        calls.append(name)
        raise DBAPIError("SELECT nonsense", {}, ServerClosedTheConnection())

    monkeypatch.setattr(runtime_module, "get_or_create_secret", broken)
    with pytest.raises(DBAPIError):
        await build_runtime(make_settings(clean_db, callback_token_secret=None))
    assert len(calls) == 1
