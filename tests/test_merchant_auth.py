"""API keys: found once, then remembered briefly; unknown keys are never remembered."""

from __future__ import annotations

from sqlalchemy import text

from app.merchants.auth import ApiKeyCache
from app.merchants.service import create_merchant


async def test_a_known_key_is_served_from_memory_until_it_expires(runtime):
    created = await create_merchant(
        runtime.sessions, name="Shop", callback_url="https://s.example/"
    )
    cache = ApiKeyCache(runtime.sessions, ttl=3600)

    first = await cache.merchant_for(created.api_key)
    assert first is not None
    assert first.id == created.id
    async with runtime.engine.begin() as connection:
        await connection.execute(text("DELETE FROM merchants"))
    assert await cache.merchant_for(created.api_key) == first  # no query: remembered

    expired = ApiKeyCache(runtime.sessions, ttl=0)
    assert await expired.merchant_for(created.api_key) is None  # looked up: gone


async def test_unknown_keys_are_looked_up_every_time(runtime):
    cache = ApiKeyCache(runtime.sessions, ttl=3600)
    assert await cache.merchant_for("mgw_not_yet") is None
    created = await create_merchant(
        runtime.sessions, name="Shop", callback_url="https://s.example/"
    )
    assert await cache.merchant_for(created.api_key) is not None


async def test_requests_in_flight_for_an_expired_key_share_one_lookup(runtime, monkeypatch):
    import asyncio

    from app.merchants import auth
    from tests.e2e.stack import eventually

    created = await create_merchant(runtime.sessions, name="Shop", callback_url="https://s/")
    cache = ApiKeyCache(runtime.sessions, ttl=0)  # every entry has expired by the next request
    lookups = 0
    gate = asyncio.Event()
    real_match = auth.match_api_key

    async def held_match(session, api_key):
        nonlocal lookups
        lookups += 1
        await gate.wait()
        return await real_match(session, api_key)

    monkeypatch.setattr(auth, "match_api_key", held_match)
    waiting = [asyncio.create_task(cache.merchant_for(created.api_key)) for _ in range(50)]

    async def one_lookup_started() -> bool:
        return lookups == 1

    await eventually(one_lookup_started, what="the first lookup")
    waiting[0].cancel()  # a request that goes away does not cancel the others' lookup
    gate.set()
    answers = await asyncio.gather(*waiting[1:])

    assert {merchant.id for merchant in answers} == {created.id}
    assert lookups == 1
    await cache.merchant_for(created.api_key)  # later, expired again: looked up again
    assert lookups == 2
