"""The API application: ``create_app()`` and the ASGI ``app`` that uvicorn serves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from arq.connections import ArqRedis
from fastapi import FastAPI

from app.api_docs import install_api_docs
from app.body_limit import BodySizeLimit
from app.config import Settings
from app.console.install import install_console
from app.errors import install_error_handlers
from app.events.router import router as events_router
from app.health import router as operations_router
from app.openapi import customise_openapi
from app.overload import InFlightLimit
from app.payments.router import router as payments_router
from app.providers import registry
from app.providers.base import PaymentProvider, RefundProvider
from app.refunds.router import router as refunds_router
from app.request_id import RequestId
from app.runtime import build_runtime
from app.saleor.router import router as saleor_router
from app.sms.router import router as sms_router
from app.vocabulary import Provider
from app.webhooks.router import build_callback_router
from app.workers.embedded import EmbeddedJobs
from app.workers.settings import ArqNotifier

API_DESCRIPTION = """
Collect payments in Uganda through **MTN Mobile Money** and **Airtel Money**.

Authenticate with `Authorization: Bearer <api key>`. Every error is `application/problem+json`
with a stable `code`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    providers: Mapping[Provider, PaymentProvider] | None = None,
    refund_providers: Mapping[Provider, RefundProvider] | None = None,
    background_jobs: bool = True,
    delivery_client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The API. ``background_jobs``: without ``REDIS_URL``, run the reconciler and event
    delivery in this process (the embedded default); tests switch it off to drive jobs
    themselves."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await build_runtime(
            settings,
            providers=providers,
            refund_providers=refund_providers,
            delivery_client=delivery_client,
        )
        app.state.runtime = runtime
        async with AsyncExitStack() as stack:
            stack.push_async_callback(runtime.aclose)
            if settings.redis_url:
                # Not arq's create_pool: it insists on reaching Redis now, and the API must
                # start (and take payments) while Redis is away; the outbox sweep catches up.
                pool = ArqRedis.from_url(settings.redis_url)
                stack.push_async_callback(pool.aclose)
                runtime.notifier.target = ArqNotifier(pool, sms_receipts=settings.sms_configured)
            elif background_jobs:
                embedded = EmbeddedJobs(runtime)
                embedded.start()
                stack.push_async_callback(embedded.stop)
            yield

    app = FastAPI(
        title="momo-gateway",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's pages load from CDNs; install_api_docs serves the same pages offline.
        docs_url=None,
        redoc_url=None,
    )
    install_api_docs(app)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(RequestId)
    # Outermost: a refusal under overload costs nothing else (app/overload.py).
    app.add_middleware(InFlightLimit, limit=settings.max_requests_in_flight)
    app.include_router(payments_router)
    app.include_router(refunds_router)
    app.include_router(sms_router)
    app.include_router(events_router)
    app.include_router(build_callback_router(registry.registered()))
    app.include_router(operations_router)
    app.include_router(saleor_router)

    install_console(app, settings)

    customise_openapi(app)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` builds the app from the environment on first use, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
