"""Building the process's providers from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import respx
from redis.asyncio import Redis

from app.providers.airtel_money import AirtelMoneyCollection
from app.providers.base import InitiationOutcome
from app.providers.http import RetryPolicy
from app.providers.mtn_momo import MtnMomoCollection
from app.providers.registry import build_providers, close_providers
from app.vocabulary import Provider
from tests.providers.conftest import MTN_URL, payment_request, settings

TOKEN_KEYS = "momo:token:mtn_momo:collection:*"


async def test_only_configured_providers_are_built() -> None:
    both = build_providers(settings(), None)
    assert isinstance(both[Provider.MTN_MOMO], MtnMomoCollection)
    assert isinstance(both[Provider.AIRTEL_MONEY], AirtelMoneyCollection)
    mtn_only = build_providers(settings(airtel_money_client_secret=None), None)
    assert set(mtn_only) == {Provider.MTN_MOMO}
    none = build_providers(settings(mtn_momo_api_key=None, airtel_money_client_id=None), None)
    assert none == {}
    await close_providers(both)
    await close_providers(mtn_only)


async def test_closed_providers_send_nothing() -> None:
    providers = build_providers(settings(), None)
    await close_providers(providers)
    with pytest.raises(RuntimeError):
        await providers[Provider.MTN_MOMO].request_payment(payment_request())


@pytest.fixture
async def clean_token_keys(redis: Redis) -> AsyncIterator[None]:
    yield
    keys = [key async for key in redis.scan_iter(match=TOKEN_KEYS)]
    if keys:
        await redis.delete(*keys)


@pytest.mark.redis
@pytest.mark.usefixtures("clean_token_keys")
async def test_with_redis_every_process_shares_one_token(
    api: respx.MockRouter, mtn_token: respx.Route, redis: Redis
) -> None:
    api.post(f"{MTN_URL}/collection/v1_0/requesttopay").respond(202)
    # Credentials of this test's own, so no other test's token can be found in Redis.
    config = settings(mtn_momo_api_key="registry-test-key")
    first = build_providers(config, redis, retry_policy=RetryPolicy.zero_wait())
    second = build_providers(config, redis, retry_policy=RetryPolicy.zero_wait())
    try:
        for providers in (first, second):
            result = await providers[Provider.MTN_MOMO].request_payment(payment_request())
            assert result.outcome is InitiationOutcome.ACCEPTED
    finally:
        await close_providers(first)
        await close_providers(second)
    assert mtn_token.call_count == 1
    assert [key async for key in redis.scan_iter(match=TOKEN_KEYS)]


async def test_without_redis_processes_do_not_share_tokens(
    api: respx.MockRouter, mtn_token: respx.Route
) -> None:
    api.post(f"{MTN_URL}/collection/v1_0/requesttopay").respond(202)
    first = build_providers(settings(), None, retry_policy=RetryPolicy.zero_wait())
    second = build_providers(settings(), None, retry_policy=RetryPolicy.zero_wait())
    for providers in (first, second):
        await providers[Provider.MTN_MOMO].request_payment(payment_request())
    await close_providers(first)
    await close_providers(second)
    assert mtn_token.call_count == 2
