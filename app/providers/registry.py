"""The process's providers, built once from settings: only those whose credentials are set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from redis.asyncio import Redis

from app.config import Settings
from app.payments.domain import Provider
from app.providers.airtel_money import AirtelMoneyCollection
from app.providers.base import PaymentProvider
from app.providers.http import RetryPolicy
from app.providers.mtn_momo import MtnMomoCollection
from app.providers.tokens import InMemoryTokenCache, RedisTokenCache, TokenCache

logger = logging.getLogger(__name__)


def build_providers(
    settings: Settings, redis: Redis | None, *, retry_policy: RetryPolicy | None = None
) -> dict[Provider, PaymentProvider]:
    """One adapter per configured provider, each with its own pooled client.

    Tokens are shared through Redis when there is one (every API and worker process then makes
    one token request per expiry), else kept in this process.
    """
    cache: TokenCache = RedisTokenCache(redis) if redis is not None else InMemoryTokenCache()
    providers: dict[Provider, PaymentProvider] = {}
    if settings.mtn_configured:
        providers[Provider.MTN_MOMO] = MtnMomoCollection.from_settings(
            settings, token_cache=cache, retry_policy=retry_policy
        )
    if settings.airtel_configured:
        providers[Provider.AIRTEL_MONEY] = AirtelMoneyCollection.from_settings(
            settings, token_cache=cache, retry_policy=retry_policy
        )
    return providers


async def close_providers(providers: Mapping[Provider, PaymentProvider]) -> None:
    """Close every provider's connections; one failing to close does not keep the others open."""
    results = await asyncio.gather(
        *(provider.aclose() for provider in providers.values()), return_exceptions=True
    )
    for provider, result in zip(providers, results, strict=True):
        if isinstance(result, BaseException):
            logger.warning("closing %s failed: %s", provider.value, type(result).__name__)
