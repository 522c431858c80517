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
