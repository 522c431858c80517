"""Which providers the gateway knows, and the process's adapters for the configured ones.

``register(spec)`` is the one place a provider is added: MTN MoMo and Airtel Money are
registered below, and a provider defined elsewhere (a test's fake network, a plug-in) registers
the same way before the app is built.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from app.config import ProviderSettings, Settings
from app.providers import airtel_money, mtn_momo
from app.providers.base import PaymentProvider, RefundProvider
from app.providers.http import RetryPolicy
from app.providers.spec import ProviderSpec
from app.providers.tokens import InMemoryTokenCache, RedisTokenCache, TokenCache
from app.vocabulary import Provider

logger = logging.getLogger(__name__)

_SPECS: dict[Provider, ProviderSpec[Any]] = {}


class UnknownProvider(KeyError):
    pass


def register(spec: ProviderSpec[Any]) -> None:
    if spec.name in _SPECS:
        raise ValueError(f"a provider named {spec.name} is registered already")
    _SPECS[spec.name] = spec


def unregister(name: str) -> None:
    _SPECS.pop(Provider(name), None)


def registered() -> tuple[ProviderSpec[Any], ...]:
    """Every registered provider, in the order of registration."""
    return tuple(_SPECS.values())


def names() -> tuple[Provider, ...]:
    return tuple(_SPECS)


def is_registered(name: object) -> bool:
    return isinstance(name, str) and name in _SPECS


def spec_for(name: str) -> ProviderSpec[Any]:
    try:
        return _SPECS[Provider(name)]
    except KeyError:
        raise UnknownProvider(name) from None


def settings_for(settings: Settings, name: str) -> ProviderSettings:
    """A provider's own block of ``settings`` (its ``*_CURRENCY``, ``*_CALLBACK_URL``, …)."""
    block: ProviderSettings = spec_for(name).settings_from(settings)
    return block


def setting_names() -> frozenset[str]:
    """Every environment variable the gateway reads: its own and each provider's."""
    names = {name.upper() for name in Settings.model_fields}
    for spec in registered():
        prefix = str(spec.settings.model_config.get("env_prefix") or "").upper()
        names.update(prefix + name.upper() for name in spec.settings.model_fields)
    return frozenset(names)


def check_settings(settings: Settings) -> None:
    """Refuse, at start-up, settings that name a provider nobody registered."""
    for prefix, provider in settings.prefix_overrides.items():
        if not is_registered(provider):
            known = ", ".join(names())
            raise ValueError(
                f"NETWORK_PREFIX_OVERRIDES: {prefix}={provider} names no provider ({known})"
            )


def token_cache_for(redis: Redis | None) -> TokenCache:
    """Tokens shared through Redis when there is one, else kept in this process."""
    return RedisTokenCache(redis) if redis is not None else InMemoryTokenCache()


def build_providers(
    settings: Settings,
    redis: Redis | None,
    *,
    retry_policy: RetryPolicy | None = None,
    token_cache: TokenCache | None = None,
) -> dict[Provider, PaymentProvider]:
    """One adapter per configured provider, each with its own pooled client.

    Tokens are shared through Redis when there is one (every API and worker process then makes
    one token request per expiry), else kept in this process.
    """
    check_settings(settings)
    cache = token_cache or token_cache_for(redis)
    return {
        spec.name: spec.build(settings, token_cache=cache, retry_policy=retry_policy)
        for spec in registered()
        if spec.settings_from(settings).configured
    }


def build_refund_providers(
    settings: Settings,
    redis: Redis | None,
    *,
    retry_policy: RetryPolicy | None = None,
    token_cache: TokenCache | None = None,
) -> dict[Provider, RefundProvider]:
    """One refund adapter per provider whose refunds are configured (MTN's Disbursement
    credentials may be missing while its collections work: then MTN refunds are refused).
    Given the collection adapters' ``token_cache``, a provider whose refunds use the collection
    credentials (Airtel) shares their token."""
    cache = token_cache or token_cache_for(redis)
    adapters: dict[Provider, RefundProvider] = {}
    for spec in registered():
        block = spec.settings_from(settings)
        if spec.refunds is not None and block.configured and spec.refunds.configured(block):
            adapters[spec.name] = spec.refunds.build(
                settings, token_cache=cache, retry_policy=retry_policy
            )
    return adapters


async def close_providers(
    providers: Mapping[Provider, PaymentProvider] | Mapping[Provider, RefundProvider],
) -> None:
    """Close every provider's connections; one failing to close does not keep the others open."""
    results = await asyncio.gather(
        *(provider.aclose() for provider in providers.values()), return_exceptions=True
    )
    for provider, result in zip(providers, results, strict=True):
        if isinstance(result, BaseException):
            logger.warning("closing %s failed: %s", provider.value, type(result).__name__)


register(mtn_momo.SPEC)
register(airtel_money.SPEC)
