"""Provider adapters against respx: fake MTN and Airtel hosts, zero-wait retries, a fake clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from redis.asyncio import Redis

from app.config import Settings
from app.providers.airtel_money import AirtelMoneyCollection
from app.providers.base import PaymentRequest
from app.providers.http import RetryPolicy
from app.providers.mtn_momo import MtnMomoCollection
from app.providers.tokens import InMemoryTokenCache, TokenCache
from tests.services import need_redis

MTN_URL = "https://mtn.test"
AIRTEL_URL = "https://airtel.test"
AIRTEL_PREFIX = "/simulate"

MTN_API_USER = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
MTN_API_KEY = "f1db798c98df4bcf83b538175893bbf0"
MTN_SUBSCRIPTION_KEY = "0123456789abcdef0123456789abcdef"
AIRTEL_CLIENT_ID = "airtel-client-id"
AIRTEL_CLIENT_SECRET = "airtel-client-secret"

# From the provider notes: MTN's token answer (NdoleStudio stubs, MTN PHP SDK mocks) and
# Airtel's (Uganda Postman export, expires_in as a string).
MTN_TOKEN_BODY = {"access_token": "mtn-token-1", "token_type": "access_token", "expires_in": 3600}
AIRTEL_TOKEN_BODY = {"access_token": "airtel-token-1", "expires_in": "180", "token_type": "bearer"}


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def delayed(status: int, json: Any = None, *, seconds: float = 0.02) -> Any:
    """A respx side effect answering after ``seconds``, as a real provider would: without the
    delay, concurrent callers would never overlap and single-flight could not be observed."""

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        return httpx.Response(status, json=json)

    return answer


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mtn_momo_api_url": MTN_URL,
        "mtn_momo_api_user": MTN_API_USER,
        "mtn_momo_api_key": MTN_API_KEY,
        "mtn_momo_subscription_key": MTN_SUBSCRIPTION_KEY,
        "mtn_momo_target_env": "mtnuganda",
        "mtn_momo_currency": "UGX",
        "airtel_money_api_url": AIRTEL_URL,
        "airtel_money_path_prefix": AIRTEL_PREFIX,
        "airtel_money_client_id": AIRTEL_CLIENT_ID,
        "airtel_money_client_secret": AIRTEL_CLIENT_SECRET,
        "airtel_money_country": "UG",
        "airtel_money_currency": "UGX",
        "redis_url": None,
        # respx intercepts httpcore; the aiohttp backend has its own tests over real sockets.
        "provider_http_backend": "httpx",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def payment_request(**overrides: Any) -> PaymentRequest:
    values: dict[str, Any] = {
        "reference": str(uuid.uuid4()),
        "order_id": "ORD-1001",
        "amount_minor": 50000,
        "currency": "UGX",
        "msisdn": "256772123456",
        "description": "Order ORD-1001",
        "callback_url": None,
    }
    values.update(overrides)
    return PaymentRequest(**values)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def mtn_token(api: respx.MockRouter) -> respx.Route:
    return api.post(f"{MTN_URL}/collection/token/").respond(200, json=MTN_TOKEN_BODY)


@pytest.fixture
def airtel_token(api: respx.MockRouter) -> respx.Route:
    return api.post(f"{AIRTEL_URL}{AIRTEL_PREFIX}/auth/oauth2/token").respond(
        200, json=AIRTEL_TOKEN_BODY
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def slept() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def retry_policy(slept: RecordingSleep) -> RetryPolicy:
    return RetryPolicy.zero_wait(sleep=slept)


@pytest.fixture
def token_cache(clock: FakeClock) -> InMemoryTokenCache:
    return InMemoryTokenCache(clock=clock)


def build_mtn(cache: TokenCache, policy: RetryPolicy, **overrides: Any) -> MtnMomoCollection:
    return MtnMomoCollection.from_settings(
        settings(**overrides), token_cache=cache, retry_policy=policy
    )


def build_airtel(cache: TokenCache, policy: RetryPolicy, **overrides: Any) -> AirtelMoneyCollection:
    return AirtelMoneyCollection.from_settings(
        settings(**overrides), token_cache=cache, retry_policy=policy
    )


@pytest.fixture
async def mtn(
    token_cache: InMemoryTokenCache, retry_policy: RetryPolicy
) -> AsyncIterator[MtnMomoCollection]:
    adapter = build_mtn(token_cache, retry_policy)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def airtel(
    token_cache: InMemoryTokenCache, retry_policy: RetryPolicy
) -> AsyncIterator[AirtelMoneyCollection]:
    adapter = build_airtel(token_cache, retry_policy)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(need_redis())
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own, so parallel runs sharing DB 15 never collide."""
    prefix = f"test:tokens:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
