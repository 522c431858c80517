"""The gateway under uvicorn on a thread of its own, for clients that block (schemathesis uses
``requests``): the server keeps its own event loop, so a blocking call never stalls it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.main import create_app
from app.merchants.service import create_merchant
from app.providers import registry
from app.simulator.server import serve_in_background
from app.vocabulary import Provider
from tests.fakes import FakeProvider, FakeRefundProvider

STARTUP_TIMEOUT = 60.0


@dataclass
class LiveGateway:
    url: str
    api_key: str
    runtime: Any
    providers: Mapping[Provider, FakeProvider] = field(default_factory=dict)
    # Refunds through every provider that has them, so that /v1/refunds and the refund callback
    # routes reach the refund service rather than answering refunds_not_configured.
    refunds: Mapping[Provider, FakeRefundProvider] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@contextmanager
def gateway_on_a_thread(settings: Settings) -> Iterator[LiveGateway]:
    """The app with in-memory providers (answers at once, never hangs), refunds configured for
    every provider that has them, and one merchant."""
    providers = {provider: FakeProvider(provider) for provider in registry.names()}
    refunds = {
        spec.name: FakeRefundProvider(spec.name)
        for spec in registry.registered()
        if spec.refunds is not None
    }
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        state["stop"] = stop
        state["loop"] = asyncio.get_running_loop()
        app = create_app(
            settings, providers=providers, refund_providers=refunds, background_jobs=False
        )
        async with serve_in_background(app) as url:
            runtime = app.state.runtime
            merchant = await create_merchant(
                runtime.sessions, name="Fuzz shop", callback_url="https://shop.example/hooks"
            )
            state["gateway"] = LiveGateway(url, merchant.api_key, runtime, providers, refunds)
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test thread below
            state["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="live-gateway", daemon=True)
    thread.start()
    ready.wait(STARTUP_TIMEOUT)
    if "gateway" not in state:
        raise RuntimeError(f"the gateway did not start: {state.get('error')!r}")
    try:
        yield state["gateway"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(STARTUP_TIMEOUT)
        if "error" in state:
            raise state["error"]
