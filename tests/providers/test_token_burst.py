"""A burst of payments on a cold token cache makes one token request per provider."""

from __future__ import annotations

import asyncio

import pytest
import respx
from redis.asyncio import Redis

from app.providers.base import InitiationOutcome
from app.providers.http import RetryPolicy
from app.providers.tokens import InMemoryTokenCache, RedisTokenCache, TokenCache
from tests.providers.conftest import (
    AIRTEL_PREFIX,
    AIRTEL_TOKEN_BODY,
    AIRTEL_URL,
    MTN_TOKEN_BODY,
    MTN_URL,
    build_airtel,
    build_mtn,
    delayed,
    payment_request,
)

BURST = 100


def mock_providers(api: respx.MockRouter) -> tuple[respx.Route, respx.Route]:
    mtn_token = api.post(f"{MTN_URL}/collection/token/").mock(
        side_effect=delayed(200, MTN_TOKEN_BODY)
    )
    airtel_token = api.post(f"{AIRTEL_URL}{AIRTEL_PREFIX}/auth/oauth2/token").mock(
        side_effect=delayed(200, AIRTEL_TOKEN_BODY)
    )
    api.post(f"{MTN_URL}/collection/v1_0/requesttopay").mock(side_effect=delayed(202))
    api.post(f"{AIRTEL_URL}{AIRTEL_PREFIX}/merchant/v1/payments/").mock(
        side_effect=delayed(
            200,
            {
                "data": {"transaction": {"id": "x", "status": "SUCCESS"}},
                "status": {"response_code": "DP00800001006", "success": True, "code": "200"},
            },
        )
    )
    return mtn_token, airtel_token


async def burst(caches: list[TokenCache], per_cache: int) -> list[InitiationOutcome]:
    """``per_cache`` payments per provider through adapters built on each cache: one cache per
    simulated process, each process with its own clients."""
    policy = RetryPolicy.zero_wait()
    adapters = [build(cache, policy) for cache in caches for build in (build_mtn, build_airtel)]
    try:
        results = await asyncio.gather(
            *(
                adapter.request_payment(payment_request())
                for adapter in adapters
                for _ in range(per_cache)
            )
        )
    finally:
        for adapter in adapters:
            await adapter.aclose()
    return [result.outcome for result in results]


async def test_in_memory_cold_burst_makes_one_token_request_per_provider(
    api: respx.MockRouter,
) -> None:
    mtn_token, airtel_token = mock_providers(api)
    outcomes = await burst([InMemoryTokenCache()], BURST)
    assert outcomes == [InitiationOutcome.ACCEPTED] * (2 * BURST)
    assert (mtn_token.call_count, airtel_token.call_count) == (1, 1)


@pytest.mark.redis
async def test_redis_cold_burst_makes_one_token_request_per_provider(
    api: respx.MockRouter, redis: Redis, redis_prefix: str
) -> None:
    mtn_token, airtel_token = mock_providers(api)
    outcomes = await burst([RedisTokenCache(redis, prefix=redis_prefix)], BURST)
    assert outcomes == [InitiationOutcome.ACCEPTED] * (2 * BURST)
    assert (mtn_token.call_count, airtel_token.call_count) == (1, 1)


@pytest.mark.redis
async def test_two_processes_sharing_redis_make_one_token_request_per_provider(
    api: respx.MockRouter, redis: Redis, redis_prefix: str
) -> None:
    mtn_token, airtel_token = mock_providers(api)
    processes: list[TokenCache] = [
        RedisTokenCache(redis, prefix=redis_prefix, poll_interval=0.005) for _ in range(2)
    ]
    outcomes = await burst(processes, BURST // 2)
    assert outcomes == [InitiationOutcome.ACCEPTED] * (2 * BURST)
    assert (mtn_token.call_count, airtel_token.call_count) == (1, 1)
