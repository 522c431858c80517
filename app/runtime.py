"""Everything a process builds once and shares: engine, sessions, Redis, providers, services.

The API keeps one on ``app.state.runtime``; the worker keeps one in arq's ``ctx``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_fixed

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.errors import database_unavailable
from app.events.delivery import EventDelivery, build_delivery_client
from app.events.service import EventService
from app.idempotency import IdempotencyStore
from app.merchants.auth import ApiKeyCache
from app.payments.reconciler import Reconciler
from app.payments.service import EventNotifier, PaymentService
from app.payments.validation import PaymentRules
from app.providers import registry
from app.providers.base import PaymentProvider, RefundProvider
from app.refunds.reconciler import RefundReconciler
from app.refunds.service import RefundService
from app.saleor.client import SaleorClient, build_saleor_client
from app.saleor.installations import Installations
from app.saleor.reporting import SaleorReporter
from app.server_secrets import get_or_create_secret
from app.sms.africastalking import DELIVERY_REPORT_PATH
from app.sms.service import SmsReceipts
from app.vocabulary import Provider
from app.webhooks.service import CallbackService

logger = logging.getLogger(__name__)
T = TypeVar("T")

CALLBACK_TOKEN_SECRET_NAME = "callback_token_secret"  # noqa: S105 - a row name, not a secret
AFRICASTALKING_CALLBACK_TOKEN_NAME = "africastalking_callback_token"  # noqa: S105 - a row name


class NotifierSlot:
    """The payment service's notifier, filled in once the process knows how it runs jobs
    (arq when Redis is configured, in-process otherwise). Until then: nothing; the outbox
    sweep delivers regardless."""

    def __init__(self) -> None:
        self.target: EventNotifier | None = None

    async def events_committed(self, event_ids: Sequence[str]) -> None:
        if self.target is None:
            return
        try:
            await self.target.events_committed(event_ids)
        except Exception:
            # The event is committed; failing to schedule it now only delays it to the sweep.
            logger.exception("could not schedule event delivery; the outbox sweep will")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis | None
    providers: Mapping[Provider, PaymentProvider]
    refund_providers: Mapping[Provider, RefundProvider]
    callback_secret: bytes
    payments: PaymentService
    refunds: RefundService
    idempotency: IdempotencyStore
    callbacks: CallbackService
    delivery: EventDelivery
    events: EventService
    reconciler: Reconciler
    refund_reconciler: RefundReconciler
    notifier: NotifierSlot
    delivery_client: httpx.AsyncClient
    merchant_keys: ApiKeyCache
    payment_rules: PaymentRules
    sms: SmsReceipts
    saleor_installations: Installations
    saleor_http: httpx.AsyncClient
    owns_providers: bool = field(default=True)

    async def aclose(self) -> None:
        await self.callbacks.aclose()
        await self.sms.aclose()
        await self.delivery_client.aclose()
        await self.saleor_http.aclose()
        if self.owns_providers:
            await registry.close_providers(self.providers)
            await registry.close_providers(self.refund_providers)
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


async def build_runtime(
    settings: Settings,
    *,
    providers: Mapping[Provider, PaymentProvider] | None = None,
    refund_providers: Mapping[Provider, RefundProvider] | None = None,
    delivery_client: httpx.AsyncClient | None = None,
) -> Runtime:
    """Everything one process shares. Given ``providers`` (tests, benchmarks), refunds go only
    through the ``refund_providers`` given with them, never through adapters built here."""
    registry.check_settings(settings)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    sessions = create_sessionmaker(engine)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    owns_providers = providers is None
    if providers is None:
        token_cache = registry.token_cache_for(redis)
        providers = registry.build_providers(settings, redis, token_cache=token_cache)
        refund_providers = registry.build_refund_providers(settings, redis, token_cache=token_cache)
    refund_providers = refund_providers or {}
    if settings.callback_token_secret is not None:
        secret = settings.callback_token_secret.get_secret_value()
    else:
        secret = await _read_at_start(
            lambda: get_or_create_secret(sessions, CALLBACK_TOKEN_SECRET_NAME)
        )
    callback_secret = secret.encode()
    notifier = NotifierSlot()
    payments = PaymentService(
        engine=engine,
        sessions=sessions,
        settings=settings,
        providers=providers,
        callback_secret=callback_secret,
        notifier=notifier,
    )
    refunds = RefundService(
        engine=engine,
        sessions=sessions,
        settings=settings,
        providers=providers,
        refund_providers=refund_providers,
        callback_secret=callback_secret,
        notifier=notifier,
    )
    client = delivery_client or build_delivery_client()
    for provider in registry.names():
        state = "configured" if provider in providers else "not configured"
        refund_state = "refunds configured" if provider in refund_providers else "no refunds"
        logger.info("provider %s %s, %s", provider.value, state, refund_state)
    for spec in registry.registered():
        block = spec.settings_from(settings)
        if block.callback_url and not any(route.per_payment for route in spec.callback_routes):
            # A provider that calls one URL needs it registered on its side.
            logger.info("%s callback URL to register: %s", spec.title, block.callback_url)
    sms = SmsReceipts(
        sessions=sessions,
        settings=settings,
        callback_token=await _read_at_start(
            lambda: _africastalking_callback_token(settings, sessions)
        ),
    )
    reconciler = Reconciler(
        sessions=sessions,
        settings=settings,
        payments=payments,
        rates=dict.fromkeys(registry.names(), settings.reconcile_rate_per_second),
    )
    saleor_http = build_saleor_client()
    saleor_client = SaleorClient(saleor_http)
    installations = Installations(sessions=sessions, settings=settings, client=saleor_client)
    reporter = None
    if settings.saleor_app_token_key is not None:
        reporter = SaleorReporter(
            sessions=sessions, installations=installations, client=saleor_client
        )
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        providers=providers,
        refund_providers=refund_providers,
        callback_secret=callback_secret,
        payments=payments,
        refunds=refunds,
        idempotency=IdempotencyStore(sessions),
        callbacks=CallbackService(
            engine=engine,
            sessions=sessions,
            settings=settings,
            payments=payments,
            refunds=refunds,
            callback_secret=callback_secret,
        ),
        delivery=EventDelivery(
            sessions=sessions, settings=settings, client=client, saleor=reporter
        ),
        events=EventService(sessions=sessions, notifier=notifier),
        reconciler=reconciler,
        refund_reconciler=RefundReconciler(
            sessions=sessions, settings=settings, refunds=refunds, limiters=reconciler.limiters
        ),
        notifier=notifier,
        delivery_client=client,
        merchant_keys=ApiKeyCache(sessions),
        payment_rules=PaymentRules.from_settings(settings),
        sms=sms,
        saleor_installations=installations,
        saleor_http=saleor_http,
        owns_providers=owns_providers,
    )


async def _read_at_start(read: Callable[[], Awaitable[T]]) -> T:
    """A start-up read, tried again after connection trouble: a connection the server cut
    (a failover, an administrator) fails once and the next one works, so a worker starting at
    that moment starts anyway; a database that is down still fails within a second."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(database_unavailable),
        stop=stop_after_attempt(4),
        wait=wait_fixed(0.25),
        reraise=True,
    ):
        with attempt:
            return await read()
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _africastalking_callback_token(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> str | None:
    """The secret in the delivery-report URL: configured, or generated once and kept in the
    database. None (every report refused) when SMS is off and none was configured."""
    if settings.africastalking_callback_token is not None:
        token = settings.africastalking_callback_token.get_secret_value()
    elif settings.sms_configured:
        token = await get_or_create_secret(sessions, AFRICASTALKING_CALLBACK_TOKEN_NAME)
    else:
        return None
    if settings.sms_configured:
        # The URL to paste into Africa's Talking's dashboard (SMS → Delivery Reports).
        path = DELIVERY_REPORT_PATH.replace("{token}", token)
        logger.info("Africa's Talking delivery reports: <your public URL>%s", path)
    return token
