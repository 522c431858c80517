"""Token lifetimes, single-flight refresh and invalidation, in memory and in Redis."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from redis.asyncio import Redis

from app.providers.errors import ProviderUnavailable
from app.providers.tokens import (
    LOCAL_MEMO_SECONDS,
    AccessToken,
    InMemoryTokenCache,
    RedisTokenCache,
    cache_ttl,
    credentials_fingerprint,
    parse_expires_in,
)
from tests.providers.conftest import FakeClock


class CountingFetcher:
    """Hands out token-1, token-2 … after a short delay, as a token endpoint would."""

    def __init__(self, lifetime: object = "180", *, delay: float = 0.02) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.delay = delay
        self._numbers = itertools.count(1)

    async def __call__(self) -> AccessToken:
        self.calls += 1
        number = next(self._numbers)
        await asyncio.sleep(self.delay)
        return AccessToken.from_response(f"token-{number}", self.lifetime)


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [(3600, 3600.0), ("180", 180.0), (" 180 ", 180.0), (180.0, 180.0), ("180.5", 180.5)],
)
def test_expires_in_is_read_from_numbers_and_strings(expires_in: object, seconds: float) -> None:
    assert parse_expires_in(expires_in) == seconds


@pytest.mark.parametrize("expires_in", [None, "", "soon", 0, -5, True, "nan", "inf", [180]])
def test_unusable_expires_in_falls_back_to_a_short_lifetime(expires_in: object) -> None:
    assert parse_expires_in(expires_in) == 60.0


@pytest.mark.parametrize(
    ("lifetime", "ttl"),
    [
        (3600.0, 3540.0),  # MTN: the 60 s margin
        (180.0, 162.0),  # Airtel: 10% of the life is less than 60 s
        (30.0, 27.0),
        (5.0, 5.0),  # never below a few seconds ...
        (2.0, 2.0),  # ... nor beyond what the provider granted
    ],
)
def test_tokens_are_kept_for_their_life_minus_a_safety_margin(lifetime: float, ttl: float) -> None:
    assert cache_ttl(lifetime) == pytest.approx(ttl)


def test_credentials_fingerprint_separates_credential_sets_and_hides_them() -> None:
    one = credentials_fingerprint("https://mtn.test", "user", "secret-key")
    assert one == credentials_fingerprint("https://mtn.test", "user", "secret-key")
    assert one != credentials_fingerprint("https://mtn.test", "user", "other-key")
    assert one != credentials_fingerprint("https://mtn.test", "use", "rsecret-key")
    assert "secret" not in one
    assert "user" not in one


def test_a_token_never_shows_in_its_repr() -> None:
    assert "token-value" not in repr(AccessToken.from_response("token-value", 60))


# --- in memory -----------------------------------------------------------------------------------


async def test_a_cold_burst_makes_one_fetch(clock: FakeClock) -> None:
    cache = InMemoryTokenCache(clock=clock)
    fetch = CountingFetcher()
    tokens = await asyncio.gather(*(cache.get("k", fetch) for _ in range(100)))
    assert fetch.calls == 1
    assert set(tokens) == {"token-1"}


async def test_a_failed_fetch_fails_the_whole_burst_once(clock: FakeClock) -> None:
    cache = InMemoryTokenCache(clock=clock)
    calls = 0

    async def down() -> AccessToken:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ProviderUnavailable("token endpoint down")

    results = await asyncio.gather(
        *(cache.get("k", down) for _ in range(50)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(result, ProviderUnavailable) for result in results)


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(clock: FakeClock) -> None:
    cache = InMemoryTokenCache(clock=clock)
    fetch = CountingFetcher(delay=0.05)
    impatient = asyncio.ensure_future(cache.get("k", fetch))
    patient = asyncio.ensure_future(cache.get("k", fetch))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == "token-1"
    assert fetch.calls == 1


async def test_the_ttl_honours_expires_in_and_expired_tokens_are_refetched(
    clock: FakeClock,
) -> None:
    cache = InMemoryTokenCache(clock=clock)
    fetch = CountingFetcher(lifetime="180")
    assert await cache.get("k", fetch) == "token-1"
    clock.advance(161)
    assert await cache.get("k", fetch) == "token-1"
    clock.advance(2)  # 163 s: past 180 - 18
    assert await cache.get("k", fetch) == "token-2"
    assert fetch.calls == 2


async def test_keys_do_not_share_tokens(clock: FakeClock) -> None:
    cache = InMemoryTokenCache(clock=clock)
    fetch = CountingFetcher()
    assert await cache.get("a", fetch) == "token-1"
    assert await cache.get("b", fetch) == "token-2"


async def test_invalidate_drops_only_the_stale_token(clock: FakeClock) -> None:
    cache = InMemoryTokenCache(clock=clock)
    fetch = CountingFetcher()
    stale = await cache.get("k", fetch)
    await cache.invalidate("k", stale=stale)
    fresh = await cache.get("k", fetch)
    await cache.invalidate("k", stale=stale)  # a late 401 for the old token
    assert await cache.get("k", fetch) == fresh == "token-2"
    await cache.invalidate("k")
    assert await cache.get("k", fetch) == "token-3"


# --- Redis ---------------------------------------------------------------------------------------


def redis_cache(redis: Redis, prefix: str, **options: Any) -> RedisTokenCache:
    return RedisTokenCache(redis, prefix=prefix, poll_interval=0.005, **options)


@pytest.mark.redis
async def test_redis_cold_burst_makes_one_fetch(redis: Redis, redis_prefix: str) -> None:
    cache = redis_cache(redis, redis_prefix)
    fetch = CountingFetcher()
    tokens = await asyncio.gather(*(cache.get("k", fetch) for _ in range(100)))
    assert fetch.calls == 1
    assert set(tokens) == {"token-1"}


@pytest.mark.redis
async def test_two_processes_sharing_redis_make_one_fetch(redis: Redis, redis_prefix: str) -> None:
    # Separate cache objects have separate in-process single-flight: only Redis joins them.
    first, second = redis_cache(redis, redis_prefix), redis_cache(redis, redis_prefix)
    fetch_first, fetch_second = CountingFetcher(), CountingFetcher()
    tokens = await asyncio.gather(
        *(first.get("k", fetch_first) for _ in range(50)),
        *(second.get("k", fetch_second) for _ in range(50)),
    )
    assert fetch_first.calls + fetch_second.calls == 1
    assert len(set(tokens)) == 1


@pytest.mark.redis
async def test_redis_ttl_honours_expires_in(redis: Redis, redis_prefix: str) -> None:
    cache = redis_cache(redis, redis_prefix)
    await cache.get("k", CountingFetcher(lifetime="180"))
    ttl_ms = await redis.pttl(f"{redis_prefix}k")
    assert 161_000 < ttl_ms <= 162_000
    assert await redis.get(f"{redis_prefix}k:lock") is None  # released after the refresh


@pytest.mark.redis
async def test_redis_expired_token_is_refetched_once_the_local_memo_lapses(
    redis: Redis, redis_prefix: str, clock: FakeClock
) -> None:
    cache = redis_cache(redis, redis_prefix, clock=clock)
    fetch = CountingFetcher()
    assert await cache.get("k", fetch) == "token-1"
    await redis.delete(f"{redis_prefix}k")  # expired in Redis
    assert await cache.get("k", fetch) == "token-1"  # still within this process's memo
    clock.advance(LOCAL_MEMO_SECONDS + 0.1)
    assert await cache.get("k", fetch) == "token-2"
    assert fetch.calls == 2


@pytest.mark.redis
async def test_a_refused_token_leaves_the_local_memo_at_once(
    redis: Redis, redis_prefix: str, clock: FakeClock
) -> None:
    cache = redis_cache(redis, redis_prefix, clock=clock)
    fetch = CountingFetcher()
    assert await cache.get("k", fetch) == "token-1"
    await cache.invalidate("k", stale="token-1")  # the provider answered 401
    assert await cache.get("k", fetch) == "token-2"


@pytest.mark.redis
async def test_another_processs_new_token_is_picked_up_after_the_memo(
    redis: Redis, redis_prefix: str, clock: FakeClock
) -> None:
    mine = redis_cache(redis, redis_prefix, clock=clock)
    theirs = redis_cache(redis, redis_prefix)
    fetch = CountingFetcher()
    assert await mine.get("k", fetch) == "token-1"
    await theirs.invalidate("k", stale="token-1")
    assert await theirs.get("k", fetch) == "token-2"
    clock.advance(LOCAL_MEMO_SECONDS + 0.1)
    assert await mine.get("k", fetch) == "token-2"
    assert fetch.calls == 2


@pytest.mark.redis
async def test_a_dead_holders_lock_expires(redis: Redis, redis_prefix: str) -> None:
    # Another process took the lock and died: its lock lapses and this one fetches.
    await redis.set(f"{redis_prefix}k:lock", "dead-process", px=100)
    cache = redis_cache(redis, redis_prefix, wait_timeout=5)
    fetch = CountingFetcher()
    assert await cache.get("k", fetch) == "token-1"
    assert fetch.calls == 1


@pytest.mark.redis
async def test_waiting_on_a_stuck_holder_gives_up(redis: Redis, redis_prefix: str) -> None:
    await redis.set(f"{redis_prefix}k:lock", "stuck-process", px=10_000)
    cache = redis_cache(redis, redis_prefix, wait_timeout=0.05)
    fetch = CountingFetcher()
    with pytest.raises(ProviderUnavailable):
        await cache.get("k", fetch)
    assert fetch.calls == 0


@pytest.mark.redis
async def test_redis_invalidate_drops_only_the_stale_token(redis: Redis, redis_prefix: str) -> None:
    cache = redis_cache(redis, redis_prefix)
    fetch = CountingFetcher()
    stale = await cache.get("k", fetch)
    await cache.invalidate("k", stale=stale)
    fresh = await cache.get("k", fetch)
    await cache.invalidate("k", stale=stale)
    assert await cache.get("k", fetch) == fresh == "token-2"
    await cache.invalidate("k")
    assert await cache.get("k", fetch) == "token-3"


async def test_an_unreachable_redis_falls_back_to_memory() -> None:
    # Redis holds only what can be lost: its outage must not stop payments.
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    cache = RedisTokenCache(unreachable)
    fetch = CountingFetcher()
    try:
        assert await cache.get("k", fetch) == "token-1"
        assert await cache.get("k", fetch) == "token-1"
        await cache.invalidate("k", stale="token-1")
        assert await cache.get("k", fetch) == "token-2"
    finally:
        await unreachable.aclose()
    assert fetch.calls == 2
