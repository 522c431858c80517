"""OAuth access tokens, fetched once and shared until shortly before they expire.

A burst of payments on a cold cache must cost one token request, not one per payment: within a
process every caller awaits the same fetch, and across processes (``RedisTokenCache``) one
process holds a short Redis lock while the others watch the cache key.

Tokens are bearer credentials: they are never logged and never part of a ``repr``. Cache keys
carry a fingerprint of the credentials, never the credentials themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.metrics import TOKEN_CACHE
from app.providers.errors import ProviderUnavailable

logger = logging.getLogger(__name__)

# Refresh this long before the provider says the token expires: min(60 s, 10% of its life),
# so Airtel's 180 s tokens are refreshed after 162 s and MTN's hour-long ones after 59 minutes.
MAX_SAFETY_MARGIN = 60.0
SAFETY_MARGIN_RATIO = 0.1
MIN_TTL = 5.0
# A token answer without a usable ``expires_in`` is kept this long, not forever.
DEFAULT_LIFETIME = 60.0
# A process keeps a token read from Redis this long instead of asking Redis on every provider
# call. Safe: Redis drops a token at least min(60 s, 10 % of its life) before the provider does,
# and a token revoked early costs one 401, after which it is dropped everywhere it is seen.
LOCAL_MEMO_SECONDS = 5.0


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    lifetime: float  # seconds, as the provider reported them

    @classmethod
    def from_response(cls, value: str, expires_in: object) -> AccessToken:
        return cls(value=value, lifetime=parse_expires_in(expires_in))

    @property
    def ttl(self) -> float:
        return cache_ttl(self.lifetime)


TokenFetcher = Callable[[], Awaitable[AccessToken]]


def parse_expires_in(value: object) -> float:
    """``3600``, ``"180"``, ``"180.0"`` → seconds; anything unusable → ``DEFAULT_LIFETIME``."""
    if isinstance(value, bool):
        return DEFAULT_LIFETIME
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            return DEFAULT_LIFETIME
    else:
        return DEFAULT_LIFETIME
    if not math.isfinite(seconds) or seconds <= 0:
        return DEFAULT_LIFETIME
    return seconds


def cache_ttl(lifetime: float) -> float:
    """How long to keep a token that lives ``lifetime`` seconds."""
    margin = min(MAX_SAFETY_MARGIN, lifetime * SAFETY_MARGIN_RATIO)
    # A very short-lived token is still worth a few seconds of reuse; if it dies early the
    # provider answers 401 and the token is refetched.
    return max(lifetime - margin, min(lifetime, MIN_TTL))


def credentials_fingerprint(*parts: str) -> str:
    """A stable, non-reversible name for a credential set (and the host it belongs to)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:32]


class TokenCache(Protocol):
    """Where access tokens live between requests.

    ``get`` returns a cached token or calls ``fetch`` — once for all concurrent callers of the
    same key. ``invalidate`` drops a token the provider refused; with ``stale`` it drops only
    that token, so a burst of 401s for one old token causes one refresh, not one per request.
    """

    async def get(self, key: str, fetch: TokenFetcher) -> str: ...

    async def invalidate(self, key: str, *, stale: str | None = None) -> None: ...


class _SingleFlight:
    """Concurrent callers for one key share one running fetch, and its failure.

    Sharing the failure matters: with a lock, a token endpoint that is down would be retried
    by every queued caller in turn.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[str]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[str]]) -> str:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # One impatient caller being cancelled must not cancel the fetch the others await.
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[str]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # consumed here, so a fetch nobody awaits any more logs no warning


class InMemoryTokenCache:
    """Tokens for one process (no Redis): the embedded mode and tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._flights = _SingleFlight()

    async def get(self, key: str, fetch: TokenFetcher) -> str:
        cached = self._fresh(key)
        if cached is not None:
            TOKEN_CACHE.labels("hit").inc()
            return cached
        TOKEN_CACHE.labels("miss").inc()
        return await self._flights.run(key, lambda: self._refresh(key, fetch))

    async def invalidate(self, key: str, *, stale: str | None = None) -> None:
        entry = self._tokens.get(key)
        if entry is not None and (stale is None or entry[0] == stale):
            del self._tokens[key]

    def _fresh(self, key: str) -> str | None:
        entry = self._tokens.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def _refresh(self, key: str, fetch: TokenFetcher) -> str:
        cached = self._fresh(key)
        if cached is not None:
            return cached
        token = await fetch()
        self._tokens[key] = (token.value, self._clock() + token.ttl)
        return token.value


# Deletes KEYS[1] only while it still holds ARGV[1]: releases our lock and not a successor's,
# drops the stale token and not the fresh one another process just stored.
_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisTokenCache:
    """Tokens shared by every process that talks to one Redis.

    The refresh lock expires after ``lock_ttl`` so a process that dies holding it blocks the
    others only that long; waiters poll the token key every ``poll_interval`` and give up with
    ``ProviderUnavailable`` after ``wait_timeout``. Redis holds nothing that cannot be lost:
    while it is unreachable, tokens are kept in this process instead of failing payments.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "momo:token:",
        lock_ttl: float = 10.0,
        wait_timeout: float = 30.0,
        poll_interval: float = 0.05,
        memo_seconds: float = LOCAL_MEMO_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._memo_seconds = memo_seconds
        self._clock = clock
        self._prefix = prefix
        self._lock_ttl_ms = int(lock_ttl * 1000)
        self._wait_timeout = wait_timeout
        self._poll_interval = poll_interval
        self._flights = _SingleFlight()
        self._delete_if_holds = redis.register_script(_COMPARE_AND_DELETE)
        self._fallback = InMemoryTokenCache()
        self._memo: dict[str, tuple[str, float]] = {}  # key → (token, kept until, monotonic)

    async def get(self, key: str, fetch: TokenFetcher) -> str:
        memo = self._memo.get(key)
        if memo is not None and memo[1] > self._clock():
            TOKEN_CACHE.labels("hit").inc()
            return memo[0]
        try:
            cached = await self._read(self._prefix + key)
            if cached is not None:
                TOKEN_CACHE.labels("hit").inc()
            else:
                TOKEN_CACHE.labels("miss").inc()
                cached = await self._flights.run(key, lambda: self._refresh(key, fetch))
        except RedisError as exc:
            logger.warning("token cache: Redis unavailable (%s), using memory", type(exc).__name__)
            return await self._fallback.get(key, fetch)
        self._memo[key] = (cached, self._clock() + self._memo_seconds)
        return cached

    async def invalidate(self, key: str, *, stale: str | None = None) -> None:
        memo = self._memo.get(key)
        if memo is not None and (stale is None or memo[0] == stale):
            del self._memo[key]
        await self._fallback.invalidate(key, stale=stale)
        try:
            if stale is None:
                await self._redis.delete(self._prefix + key)
            else:
                await self._compare_and_delete(self._prefix + key, stale)
        except RedisError as exc:
            logger.warning("token cache: Redis unavailable (%s)", type(exc).__name__)

    async def _refresh(self, key: str, fetch: TokenFetcher) -> str:
        token_key = self._prefix + key
        lock_key = token_key + ":lock"
        holder = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_timeout
        while True:
            cached = await self._read(token_key)
            if cached is not None:
                return cached
            if await self._redis.set(lock_key, holder, nx=True, px=self._lock_ttl_ms):
                try:
                    # The previous holder may have stored a token between our read and our lock.
                    cached = await self._read(token_key)
                    if cached is not None:
                        return cached
                    token = await fetch()
                    await self._redis.set(token_key, token.value, px=max(1, int(token.ttl * 1000)))
                    return token.value
                finally:
                    await self._compare_and_delete(lock_key, holder)
            if loop.time() >= deadline:
                raise ProviderUnavailable("timed out waiting for another process's token refresh")
            await asyncio.sleep(self._poll_interval)

    async def _read(self, token_key: str) -> str | None:
        value = await self._redis.get(token_key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _compare_and_delete(self, key: str, expected: str) -> None:
        await self._delete_if_holds(keys=[key], args=[expected])


class CachedTokenAuth(httpx.Auth):
    """Bearer auth from a ``TokenCache``; on a 401 it drops that token and retries once."""

    def __init__(self, *, cache: TokenCache, key: str, fetch: TokenFetcher) -> None:
        self._cache = cache
        self._key = key
        self._fetch = fetch

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._cache.get(self._key, self._fetch)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        logger.info("provider refused a cached access token; fetching a new one")
        await self._cache.invalidate(self._key, stale=token)
        token = await self._cache.get(self._key, self._fetch)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        # The default would send the request without a token: refuse instead.
        raise RuntimeError("CachedTokenAuth needs an httpx.AsyncClient")
