"""The real deployment shape on loopback, for reliability tests.

The gateway under uvicorn and the simulator under uvicorn (``tests.e2e.stack``), PostgreSQL, Redis
(the API enqueues deliveries through arq), a storefront receiver, and ``momo-gateway worker`` as
a separate OS process so it can be SIGKILLed like a real one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from app.config import Settings
from app.providers import registry
from app.simulator.config import SimulatorConfig
from tests.e2e.stack import Stack, running_stack
from tests.receiver import Receiver
from tests.reliability.invariants import (
    Evidence,
    deliveries_from,
    read_gateway,
    read_simulator,
    wait_for_invariants,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# The worker settles fast in tests: a sweep every second, no minimum age, no rate cap to speak of.
WORKER_DEFAULTS = {
    "RECONCILE_INTERVAL_SECONDS": "1",
    "RECONCILE_MIN_AGE_SECONDS": "0",
    "RECONCILE_RATE_PER_SECOND": "200",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
}


# --- payers --------------------------------------------------------------------------------------


def mtn_payer(i: int) -> str:
    """An MTN number that pays (its last six digits never start with the scenario marker 000)."""
    return f"07721{i % 100_000:05d}"


def airtel_payer(i: int) -> str:
    return f"07001{i % 100_000:05d}"


def mtn_scenario(code: int) -> str:
    """An MTN number selecting simulator scenario ``code`` (see app.simulator.scenarios)."""
    return f"0772000{code}"


def airtel_scenario(code: int) -> str:
    return f"0752000{code}"


@dataclass(frozen=True)
class Order:
    order_id: str
    phone: str
    # How the payer's scenario ends: successful, failed, refused (at request time) or pending.
    outcome: str = "successful"

    @property
    def refused(self) -> bool:
        return self.outcome == "refused"


# Gateway statuses each outcome may end in.
FINAL_STATUSES = {
    "successful": {"successful"},
    "failed": {"failed"},
    "refused": {"failed"},
    "pending": {"pending", "expired"},
}


def mixed_orders(prefix: str, count: int) -> list[Order]:
    """Most payers pay; on both networks (odd i: Airtel, even: MTN) some refuse, some lack
    the funds, some numbers are refused at request time, some payers never answer."""
    scenarios = {
        3: (451, "failed"),
        4: (451, "failed"),
        7: (470, "failed"),
        8: (470, "failed"),
        11: (457, "refused"),
        12: (457, "refused"),
        15: (499, "pending"),
        16: (499, "pending"),
    }
    orders = []
    for i in range(count):
        mtn = i % 2 == 0
        if i % 20 in scenarios:
            code, outcome = scenarios[i % 20]
            phone = mtn_scenario(code) if mtn else airtel_scenario(code)
        else:
            phone, outcome = (mtn_payer(i) if mtn else airtel_payer(i)), "successful"
        orders.append(Order(f"{prefix}-{i}", phone, outcome))
    return orders


# --- the stack -----------------------------------------------------------------------------------


@asynccontextmanager
async def reliability_stack(
    database_url: str,
    redis_url: str,
    receiver: Receiver,
    *,
    simulator: SimulatorConfig | None = None,
    **settings: Any,
) -> AsyncIterator[Stack]:
    """Gateway (with Redis: deliveries go through arq) + simulator, events to ``receiver``."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "reconcile_min_age_seconds": 0,
        "log_level": "WARNING",
        **settings,
    }
    config = simulator or SimulatorConfig(approval_delay_seconds=0.05)
    async with running_stack(
        database_url, simulator=config, callback_url=receiver.url, **values
    ) as stack:
        yield stack


async def configure_simulator(stack: Stack, patch: dict[str, Any]) -> None:
    response = await stack.simulator.post("/_simulator/config", json=patch)
    assert response.status_code == 200, response.text


def collector(stack: Stack, receiver: Receiver) -> Callable[[], Awaitable[Evidence]]:
    """Reads the provider's ledger, then the gateway's tables, then the storefront's log: in
    that order, so nothing the storefront shows can be missing from the gateway snapshot."""

    async def collect() -> Evidence:
        simulator = await read_simulator(stack.simulator)
        gateway = await read_gateway(stack.runtime.engine)
        deliveries = deliveries_from(list(receiver.received), list(receiver.accepted))
        return Evidence(gateway, simulator, deliveries)

    return collect


async def create_payments(
    stack: Stack,
    orders: Sequence[Order],
    *,
    concurrency: int = 16,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
    amount: str = "1000",
) -> list[httpx.Response | Exception]:
    """POST every order (each for ``amount``), ``concurrency`` at a time; returns each response
    (or the transport error), in order. ``on_progress(done)`` runs after each answer."""
    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def one(order: Order) -> httpx.Response | Exception:
        nonlocal done
        async with semaphore:
            try:
                response: httpx.Response | Exception = await stack.gateway.post(
                    "/v1/payments",
                    json={
                        "order_id": order.order_id,
                        "amount": amount,
                        "phone_number": order.phone,
                    },
                    timeout=60,
                )
            except httpx.HTTPError as exc:
                response = exc
        done += 1
        if on_progress is not None:
            await on_progress(done)
        return response

    return list(await asyncio.gather(*(one(order) for order in orders)))


def statuses(responses: Sequence[httpx.Response | Exception]) -> list[int | str]:
    """Each answer's status code, or the transport error's repr."""
    return [r.status_code if isinstance(r, httpx.Response) else repr(r) for r in responses]


async def refused_payment_ids(stack: Stack, orders: Sequence[Order]) -> set[str]:
    """Gateway ids of the orders whose number the provider refuses at request time."""
    refused = {o.order_id for o in orders if o.refused}
    ids: set[str] = set()
    for order_id in refused:
        listed = (await stack.gateway.get("/v1/payments", params={"order_id": order_id})).json()
        ids.update(p["id"] for p in listed["data"])
    return ids


def unexpected_outcomes(orders: Sequence[Order], evidence: Evidence) -> list[str]:
    """Orders whose payment did not end as the payer's scenario says it must."""
    by_order = {p.order_id: p for p in evidence.gateway.payments}
    wrong = []
    for order in orders:
        payment = by_order.get(order.order_id)
        if payment is None:
            wrong.append(f"{order.order_id}: no payment")
        elif payment.status not in FINAL_STATUSES[order.outcome] and not (
            # The request never reached the provider (every attempt was lost): nothing was
            # charged, and the invariants have checked the provider indeed never accepted it.
            payment.status == "failed" and payment.failure_code == "not_found_at_provider"
        ):
            wrong.append(
                f"{order.order_id} ({order.phone}, {order.outcome}): {payment.status} "
                f"{payment.failure_code or ''}".rstrip()
            )
    return wrong


async def status_requests(stack: Stack) -> int:
    """Status checks the simulator has been asked, both providers."""
    endpoints = (await stack.sim("/_simulator/stats"))["endpoints"]
    return sum(
        endpoints.get(name, {}).get("requests", 0)
        for name in ("mtn.requesttopay_status", "airtel.enquiry")
    )


async def poll_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, poll: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(poll)


# --- refunds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundAsk:
    """One ``POST /v1/refunds`` and the answer it must get."""

    payment_id: str
    amount: str | None  # None: everything still refundable
    expect: int = 201
    code: str | None = None  # the problem code of an expected refusal

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"payment_id": self.payment_id, "reason": "Reliability run"}
        if self.amount is not None:
            body["amount"] = self.amount
        return body


RefundAnswer = tuple[RefundAsk, httpx.Response | Exception]


async def successful_payments(
    stack: Stack,
    orders: Sequence[Order],
    *,
    amount: str = "10000",
    concurrency: int = 8,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """Create a payment per order (every payer pays) and wait until each is successful at the
    gateway; returns the payments as the API shows them, in order."""
    responses = await create_payments(stack, orders, concurrency=concurrency, amount=amount)
    assert statuses(responses) == [201] * len(orders), statuses(responses)
    ids = [r.json()["id"] for r in responses if isinstance(r, httpx.Response)]

    async def all_successful() -> bool:
        snapshot = await read_gateway(stack.runtime.engine)
        status = {p.id: p.status for p in snapshot.payments}
        unhappy = {pid: status[pid] for pid in ids if status[pid] not in ("pending", "successful")}
        assert unhappy == {}, f"payments that should have succeeded: {unhappy}"
        return all(status[pid] == "successful" for pid in ids)

    await poll_until(all_successful, timeout=timeout, what="every payment to succeed")
    return [await stack.payment(pid) for pid in ids]


async def create_refunds(
    stack: Stack,
    plans: Sequence[Sequence[RefundAsk]],
    *,
    concurrency: int = 8,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
) -> list[RefundAnswer]:
    """Ask for each plan's refunds one after the other (so what is left to refund is known when
    each is asked, and an over-refund is refused for sure), ``concurrency`` plans at a time.
    Returns every ask with its answer (or the transport error), plan by plan.
    ``on_progress(done)`` runs after each answer."""
    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def one_plan(plan: Sequence[RefundAsk]) -> list[RefundAnswer]:
        nonlocal done
        answers: list[RefundAnswer] = []
        async with semaphore:
            for ask in plan:
                try:
                    response: httpx.Response | Exception = await stack.gateway.post(
                        "/v1/refunds", json=ask.body, timeout=60
                    )
                except httpx.HTTPError as exc:
                    response = exc
                answers.append((ask, response))
                done += 1
                if on_progress is not None:
                    await on_progress(done)
        return answers

    per_plan = await asyncio.gather(*(one_plan(plan) for plan in plans))
    return [answer for answers in per_plan for answer in answers]


def unexpected_refund_answers(answers: Sequence[RefundAnswer]) -> list[str]:
    """Refund requests that did not get the answer their ask expects: another status code,
    another problem code, a refusal that is not problem+json, or a refund failed at request."""
    wrong = []
    for ask, response in answers:
        what = f"{ask.payment_id} amount={ask.amount}"
        if not isinstance(response, httpx.Response):
            wrong.append(f"{what}: {response!r}")
            continue
        if response.status_code != ask.expect:
            wrong.append(
                f"{what}: {response.status_code} {response.text[:300]}, expected {ask.expect}"
            )
        elif response.status_code >= 400:
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("application/problem+json"):
                wrong.append(f"{what}: {response.status_code} as {content_type!r}")
            elif ask.code is not None and response.json().get("code") != ask.code:
                wrong.append(f"{what}: {response.json().get('code')}, expected {ask.code}")
        elif response.json()["status"] == "failed":
            # Only the provider's explicit refusal fails a refund at request, and these
            # providers had no reason to refuse.
            wrong.append(f"{what}: failed at request ({response.json()['failure_code']})")
    return wrong


def created_refunds(answers: Sequence[RefundAnswer]) -> list[dict[str, Any]]:
    """The refunds the API created (201), as it answered them."""
    return [
        response.json()
        for _, response in answers
        if isinstance(response, httpx.Response) and response.status_code == 201
    ]


async def refund_ledger(stack: Stack) -> dict[str, Any]:
    """``GET /_simulator/refunds``: every refund the providers took, and the unaccepted ones."""
    ledger: dict[str, Any] = await stack.sim("/_simulator/refunds")
    return ledger


async def endpoint_stats(stack: Stack, name: str) -> dict[str, Any]:
    """The simulator's counters for one endpoint (requests, responses, faults)."""
    endpoints = (await stack.sim("/_simulator/stats"))["endpoints"]
    found: dict[str, Any] = endpoints.get(name, {"requests": 0, "responses": {}, "faults": {}})
    return found


async def refund_status_requests(stack: Stack) -> int:
    """MTN refund status reads the simulator has been asked (Airtel has none to ask)."""
    return int((await endpoint_stats(stack, "mtn.refund_status"))["requests"])


async def refund_statuses(stack: Stack) -> dict[str, str]:
    """Each gateway refund's status, by id."""
    snapshot = await read_gateway(stack.runtime.engine)
    return {refund.id: refund.status for refund in snapshot.refunds}


# --- the provider's word forced, and operators ---------------------------------------------------


async def settle_at_provider(stack: Stack, reference: str, **body: Any) -> dict[str, Any]:
    """``POST /_simulator/payments/{reference}/settle``: make the provider hold ``body``'s
    status (``amount``: report another amount), and send its callback."""
    response = await stack.simulator.post(f"/_simulator/payments/{reference}/settle", json=body)
    assert response.status_code == 200, response.text
    settled: dict[str, Any] = response.json()
    return settled


async def settle_refund_at_provider(stack: Stack, reference: str, **body: Any) -> dict[str, Any]:
    """``POST /_simulator/refunds/{reference}/settle`` (MTN): force what MTN reports for a
    refund (``amount``: another amount), and send its callback."""
    response = await stack.simulator.post(f"/_simulator/refunds/{reference}/settle", json=body)
    assert response.status_code == 200, response.text
    settled: dict[str, Any] = response.json()
    return settled


async def run_cli(*argv: str) -> int:
    """``momo-gateway ARGV`` through its entry point, ``app.cli.main``, in a thread of its own
    (with its own event loop), as an operator runs it beside the running stack; its exit code.
    The environment names the stack: set each of ``settings_env(stack.settings)`` first."""
    from app.cli import main

    return await asyncio.to_thread(main, list(argv))


# --- the worker as its own process ---------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in another process: the core settings and
    each registered provider's block under its prefix."""
    blocks: list[tuple[str, BaseSettings]] = [("", settings)]
    for spec in registry.registered():
        prefix = str(spec.settings.model_config.get("env_prefix") or "")
        blocks.append((prefix, spec.settings_from(settings)))
    env: dict[str, str] = {}
    for prefix, block in blocks:
        for name, value in block.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, list | tuple | set | frozenset):
                value = ",".join(str(item) for item in value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[(prefix + name).upper()] = str(value)
    return env


class ChildProcess:
    """A ``momo-gateway`` command in a child process, its output kept in a log file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, cwd: Path, command: Sequence[str] = ("worker",)
    ) -> None:
        self._env = env
        self.log_path = log_path
        self._cwd = cwd
        self._command = list(command)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [sys.executable, "-m", "app.cli", *self._command],
                env=self._env,
                cwd=self._cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no cleanup, transactions cut off mid-flight."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    async def stop(self, *, timeout: float = 30) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                return
            await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def worker_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(settings_env(settings))
    env.update(WORKER_DEFAULTS)
    env.update(overrides)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if part
    )
    return env


@asynccontextmanager
async def worker_processes(
    settings: Settings, directory: Path, **overrides: str
) -> AsyncIterator[Callable[[], ChildProcess]]:
    """Yields ``spawn()``, which starts one more worker; every worker is stopped on exit.

    The workers run in ``directory`` so that no ``.env`` file of the developer's leaks in.
    """
    env = worker_env(settings, **overrides)
    workers: list[ChildProcess] = []

    def spawn() -> ChildProcess:
        worker = ChildProcess(env, directory / f"worker-{len(workers) + 1}.log", directory)
        worker.start()
        workers.append(worker)
        return worker

    try:
        yield spawn
    finally:
        for worker in workers:
            await worker.stop()


@asynccontextmanager
async def one_worker(
    settings: Settings, directory: Path, **overrides: str
) -> AsyncIterator[ChildProcess]:
    async with worker_processes(settings, directory, **overrides) as spawn:
        yield spawn()


def explain(workers: Sequence[ChildProcess]) -> Iterator[str]:
    for worker in workers:
        yield f"--- {worker.log_path.name} (last lines) ---\n{worker.log_tail()}"


async def invariants_hold(
    collect: Callable[[], Awaitable[Evidence]],
    processes: Sequence[ChildProcess],
    *,
    timeout: float,
    **options: Any,
) -> Evidence:
    """``wait_for_invariants``, and when it fails, the last log lines of ``processes`` with it:
    a broken invariant is usually explained by what a worker or server said."""
    try:
        return await wait_for_invariants(collect, timeout=timeout, **options)
    except AssertionError as failure:
        raise AssertionError("\n".join([str(failure), *explain(processes)])) from None
