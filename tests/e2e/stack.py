"""The real thing on loopback: the gateway under uvicorn, the simulator under uvicorn, HTTP
between them both ways."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from app.config import Settings
from app.dev import DevPorts, dev_settings, run_dev
from app.main import create_app
from app.merchants.service import NewMerchantCredentials, create_merchant
from app.providers.airtel_money import AirtelMoneySettings
from app.simulator.config import SimulatorConfig
from app.simulator.server import running_simulator, serve_in_background


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Stack:
    gateway: httpx.AsyncClient  # base_url = the gateway, authenticated as the merchant
    simulator: httpx.AsyncClient  # base_url = the simulator
    merchant: NewMerchantCredentials
    settings: Settings
    runtime: Any

    async def pay(self, phone: str, order_id: str, amount: str = "1000") -> dict[str, Any]:
        response = await self.gateway.post(
            "/v1/payments", json={"order_id": order_id, "amount": amount, "phone_number": phone}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def payment(self, payment_id: str) -> dict[str, Any]:
        body: dict[str, Any] = (await self.gateway.get(f"/v1/payments/{payment_id}")).json()
        return body

    async def settles(self, payment_id: str, status: str, *, timeout: float = 15.0) -> None:
        async def settled() -> bool:
            return (await self.payment(payment_id))["status"] == status

        await eventually(settled, timeout=timeout, what=f"{payment_id} to be {status}")

    async def sim(self, path: str) -> Any:
        return (await self.simulator.get(path)).json()


@asynccontextmanager
async def running_stack(
    database_url: str,
    *,
    simulator: SimulatorConfig | None = None,
    callback_url: str = "http://127.0.0.1:9/unused",
    background_jobs: bool = False,
    **settings_overrides: Any,
) -> AsyncIterator[Stack]:
    config = simulator or SimulatorConfig(approval_delay_seconds=0.05)
    api_port = free_port()
    async with running_simulator(config) as simulator_url:
        sim_port = int(simulator_url.rsplit(":", 1)[1])
        settings = dev_settings(
            DevPorts(api=api_port, simulator=sim_port),
            database_url=database_url,
            log_format="json",
            **settings_overrides,
        )
        app = create_app(settings, background_jobs=background_jobs)
        async with (
            serve_in_background(app, port=api_port) as api_url,
            httpx.AsyncClient(base_url=simulator_url, timeout=10) as sim_client,
        ):
            # Airtel posts to the one URL registered in its portal: register ours.
            await sim_client.post(
                "/_simulator/config",
                json={
                    "airtel_callback_url": settings.provider_settings(
                        AirtelMoneySettings
                    ).callback_url
                },
            )
            runtime = app.state.runtime
            merchant = await create_merchant(
                runtime.sessions, name="E2E shop", callback_url=callback_url
            )
            headers = {"Authorization": f"Bearer {merchant.api_key}"}
            async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as http:
                yield Stack(http, sim_client, merchant, settings, runtime)


def free_dev_ports() -> DevPorts:
    return DevPorts(
        api=free_port(), simulator=free_port(), storefront=free_port(), saleor=free_port()
    )


@asynccontextmanager
async def dev_running(
    callback_url: str | None = None, ports: DevPorts | None = None
) -> AsyncIterator[dict[str, str]]:
    """`momo-gateway dev` in this event loop, on ``ports`` (default: free ones); yields what it
    printed (the API URL, the demo key and merchant id) and stops it on exit."""
    ports = ports or free_dev_ports()
    stop = asyncio.Event()
    ready: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    dev = asyncio.create_task(run_dev(ports, callback_url=callback_url, stop=stop, ready=ready))
    try:
        yield await asyncio.wait_for(ready, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(dev, timeout=30)
