"""Several API replicas and arq workers on one PostgreSQL and one Redis, as separate OS processes.

The deployment shape of "Scaling out": ``momo-gateway serve`` twice (each on a port of its own),
``momo-gateway worker`` as many times as a test spawns, one simulator for both providers, and a
round-robin balancer in front of the API replicas. The balancer is the one public URL the
providers know, as in production: MTN's per-payment callback URLs and Airtel's registered
callback URL name it, so callbacks land on the replicas in turn, whichever replica created the
payment. Each process names itself to the simulator (``/_as/{name}`` in its provider base URL),
so the simulator's status-call log says which process asked.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.dev import DevPorts, dev_settings
from app.merchants.service import NewMerchantCredentials, create_merchant
from app.providers.airtel_money import AirtelMoneySettings
from app.simulator.config import SimulatorConfig
from app.simulator.server import running_simulator, serve_in_background
from tests.e2e.stack import free_port
from tests.receiver import Receiver
from tests.reliability.harness import ChildProcess, Order, poll_until, worker_env
from tests.reliability.invariants import Evidence, deliveries_from, read_gateway, read_simulator

# PostgreSQL connections each process keeps (and half as many more in bursts): a handful of
# processes stay well below the 100 a shared server allows.
POOL_SIZE = "4"
# Headers that describe one hop (or a body the proxy re-encodes), not the request itself.
NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)


@dataclass(frozen=True)
class Forwarded:
    backend: int  # index into RoundRobin.backends
    method: str
    path: str
    status_code: int  # 502 when the backend could not be reached


@dataclass
class RoundRobin:
    """A load balancer in front of the API replicas: each request goes to the next one in turn,
    and is remembered."""

    backends: list[str] = field(default_factory=list)
    forwarded: list[Forwarded] = field(default_factory=list)
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _client: httpx.AsyncClient | None = None

    async def handle(self, request: Request) -> Response:
        assert self._client is not None
        assert self.backends
        index = next(self._turn) % len(self.backends)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED}
        url = self.backends[index] + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        try:
            answer = await self._client.request(
                request.method, url, content=await request.body(), headers=headers
            )
        except httpx.HTTPError:
            self.forwarded.append(Forwarded(index, request.method, request.url.path, 502))
            return Response(status_code=502)
        self.forwarded.append(
            Forwarded(index, request.method, request.url.path, answer.status_code)
        )
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in NOT_FORWARDED},
        )

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        async with (
            httpx.AsyncClient(timeout=30, trust_env=False) as client,
            serve_in_background(self.app()) as url,
        ):
            self._client = client
            try:
                yield url
            finally:
                self._client = None


@dataclass
class Deployment:
    apis: list[httpx.AsyncClient]  # one per replica, authenticated as the merchant
    api_processes: list[ChildProcess]
    balancer: RoundRobin
    simulator: httpx.AsyncClient
    engine: AsyncEngine
    settings: Settings
    merchant: NewMerchantCredentials
    receiver: Receiver
    directory: Path
    worker_overrides: dict[str, str]
    workers: dict[str, ChildProcess] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def spawn_worker(self, name: str) -> ChildProcess:
        """Start ``momo-gateway worker`` as ``name`` (its name at the simulator, its log file),
        with its metrics on a port of its own."""
        assert name not in self.workers, f"{name} already ran"
        port = free_port()
        env = process_env(
            self.settings,
            str(self.simulator.base_url),
            name,
            **{**self.worker_overrides, "WORKER_METRICS_PORT": str(port)},
        )
        worker = ChildProcess(env, self.directory / f"{name}.log", self.directory)
        worker.start()
        self.workers[name] = worker
        self.metrics_ports[name] = port
        return worker

    async def worker_metric(self, name: str, metric: str) -> float:
        """The sum of ``metric``'s samples on worker ``name``'s metrics port (0 if absent)."""
        url = f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            exposition = (await client.get(url)).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == metric
        )

    @property
    def processes(self) -> list[ChildProcess]:
        return [*self.api_processes, *self.workers.values()]

    async def collect(self) -> Evidence:
        """The provider's ledger, then the gateway's tables, then the storefront's log (in that
        order: nothing the storefront shows can be missing from the gateway snapshot)."""
        simulator = await read_simulator(self.simulator)
        gateway = await read_gateway(self.engine)
        deliveries = deliveries_from(list(self.receiver.received), list(self.receiver.accepted))
        return Evidence(gateway, simulator, deliveries)

    async def configure_simulator(self, patch: dict[str, Any]) -> None:
        response = await self.simulator.post("/_simulator/config", json=patch)
        assert response.status_code == 200, response.text


def process_env(
    settings: Settings, simulator_url: str, name: str, **overrides: str
) -> dict[str, str]:
    """The environment of one gateway process called ``name``: ``settings``, its own name at
    the simulator, a small connection pool, and no metrics port unless ``overrides`` give one
    (several processes share this host)."""
    simulator = simulator_url.rstrip("/") + f"/_as/{name}"
    values = {
        "MTN_MOMO_API_URL": simulator,
        "AIRTEL_MONEY_API_URL": simulator,
        "DATABASE_POOL_SIZE": POOL_SIZE,
        "WORKER_METRICS_PORT": "0",
        **overrides,
    }
    return worker_env(settings, **values)


async def _ready(client: httpx.AsyncClient, process: ChildProcess) -> bool:
    assert process.running(), f"{process.log_path.name} exited:\n{process.log_tail()}"
    with suppress(httpx.HTTPError):
        return (await client.get("/readyz")).status_code == 200
    return False


@asynccontextmanager
async def deployment(
    database_url: str,
    redis_url: str,
    receiver: Receiver,
    directory: Path,
    *,
    simulator: SimulatorConfig,
    replicas: int = 2,
    worker_overrides: dict[str, str] | None = None,
) -> AsyncIterator[Deployment]:
    """``replicas`` API processes behind a round-robin balancer, ready to serve; workers are
    started with ``Deployment.spawn_worker``. Every process is stopped on the way out."""
    engine = create_engine(database_url)
    balancer = RoundRobin()
    processes: list[ChildProcess] = []
    deployed: Deployment | None = None
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        simulator_url = await stack.enter_async_context(running_simulator(simulator))
        balancer_url = await stack.enter_async_context(balancer.serving())
        simulator_client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=simulator_url, timeout=10, trust_env=False)
        )
        settings = dev_settings(
            DevPorts(
                api=int(balancer_url.rsplit(":", 1)[1]),
                simulator=int(simulator_url.rsplit(":", 1)[1]),
            ),
            database_url=database_url,
            redis_url=redis_url,
            log_format="json",
        )
        # Airtel posts to the one URL registered in its portal: the balancer's.
        airtel_callback = settings.provider_settings(AirtelMoneySettings).callback_url
        await simulator_client.post(
            "/_simulator/config", json={"airtel_callback_url": airtel_callback}
        )
        merchant = await create_merchant(
            create_sessionmaker(engine), name="Scaled shop", callback_url=receiver.url
        )
        try:
            apis: list[httpx.AsyncClient] = []
            for n in range(1, replicas + 1):
                name, port = f"api-{n}", free_port()
                api = ChildProcess(
                    process_env(settings, simulator_url, name),
                    directory / f"{name}.log",
                    directory,
                    ("serve", "--host", "127.0.0.1", "--port", str(port)),
                )
                api.start()
                processes.append(api)
                url = f"http://127.0.0.1:{port}"
                balancer.backends.append(url)
                apis.append(
                    await stack.enter_async_context(
                        httpx.AsyncClient(
                            base_url=url,
                            headers={"Authorization": f"Bearer {merchant.api_key}"},
                            timeout=60,
                            trust_env=False,
                        )
                    )
                )
            for client, api in zip(apis, processes, strict=True):
                await poll_until(
                    functools.partial(_ready, client, api),
                    timeout=60,
                    what=f"{api.log_path.stem} to be ready",
                )
            deployed = Deployment(
                apis=apis,
                api_processes=processes,
                balancer=balancer,
                simulator=simulator_client,
                engine=engine,
                settings=settings,
                merchant=merchant,
                receiver=receiver,
                directory=directory,
                worker_overrides=dict(worker_overrides or {}),
            )
            yield deployed
        finally:
            everything = deployed.processes if deployed is not None else processes
            await asyncio.gather(*(process.stop() for process in everything))


def spread(count: int, ways: int) -> list[int]:
    """Which of ``ways`` replicas each of ``count`` requests goes to: in turn, by pairs, so that
    when requests alternate between two kinds (MTN, Airtel payers) each replica gets both."""
    return [(i // 2) % ways for i in range(count)]


async def create_spread(
    deployed: Deployment, orders: Sequence[Order], *, concurrency: int = 12
) -> list[tuple[int, httpx.Response | Exception]]:
    """POST every order to the API replicas in turn (``spread``), ``concurrency`` at a time;
    each answer (or transport error) with the replica that gave it, in order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(order: Order, replica: int) -> tuple[int, httpx.Response | Exception]:
        async with semaphore:
            try:
                answer: httpx.Response | Exception = await deployed.apis[replica].post(
                    "/v1/payments",
                    json={
                        "order_id": order.order_id,
                        "amount": "1000",
                        "phone_number": order.phone,
                    },
                )
            except httpx.HTTPError as exc:
                answer = exc
        return replica, answer

    replicas = spread(len(orders), len(deployed.apis))
    return list(await asyncio.gather(*map(one, orders, replicas)))
