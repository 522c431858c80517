"""The peer: payments made the way the original Django backend did, through a PyPI MoMo client.

``mtnmomo`` 3.0.1 (sparkplug/momoapi-python) is a synchronous ``requests`` client that takes
its base URL from its config (``BASE_URL``), so it can target the simulator. What it does per
``requestToPay`` is its own code, unchanged: a fresh token request (``requests.post``, a new
connection) and then the request-to-pay through a new retrying ``requests.Session`` (its
``requests_retry_session(sesssion=...)`` typo means the session passed in is never used).

One deviation, needed to talk to the simulator at all: mtnmomo sends ``{}`` as the token
request's body, which MTN's documentation lists as a 400 ("a body in an API that does not
support one, e.g. /token") and the simulator refuses accordingly. ``SimulatorCollection`` only
overrides ``getAuthToken`` to send no body; everything else is the library's. It also validates
the subscription key as a UUID, which is why the benchmarks give the simulator a UUID key.

Payments are made from a ``ThreadPoolExecutor`` (256 threads by default), one client per thread,
as a threaded Django worker would. No database work is done here: the peer gets that for free.

    .venv/bin/python -m bench.peer --latency 0.3 --payments 2000 --threads 256
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import requests
from requests.auth import HTTPBasicAuth

from app.simulator.config import DEFAULT_MTN_API_KEY, DEFAULT_MTN_API_USER

PHONE = "0772123456"


def _collection_class() -> Any:
    from mtnmomo.collection import Collection

    class SimulatorCollection(Collection):  # type: ignore[misc]
        def getAuthToken(self) -> requests.Response:
            # The library's MomoApi.getAuthToken, minus its `data=json.dumps({})`.
            config = self.config
            return requests.post(
                f"{config.baseUrl}/collection/token/",
                auth=HTTPBasicAuth(config.userId("COLLECTION"), config.APISecret("COLLECTION")),
                headers={
                    "Content-Type": "application/json",
                    "Ocp-Apim-Subscription-Key": config.collectionsKey,
                },
            )

    return SimulatorCollection


@dataclass
class PeerResult:
    library: str
    threads: int
    payments: int
    ok: int
    failed: int
    seconds: float
    payments_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float
    cpu_ms_per_payment: float
    peak_rss_mb: float | None
    errors: dict[str, int]


def run(simulator_url: str, subscription_key: str, *, payments: int, threads: int) -> PeerResult:
    from importlib.metadata import version

    collection_class = _collection_class()
    config = {
        "BASE_URL": simulator_url,
        "ENVIRONMENT": "sandbox",
        "COLLECTION_PRIMARY_KEY": subscription_key,
        "COLLECTION_USER_ID": DEFAULT_MTN_API_USER,
        "COLLECTION_API_SECRET": DEFAULT_MTN_API_KEY,
    }
    local = threading.local()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def pay(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = collection_class(config)
        started = time.perf_counter()
        try:
            client.requestToPay(
                mobile=PHONE,
                amount="50000",
                external_id=f"peer-{i}",
                payee_note="Order",
                payer_message="Order",
                currency="UGX",
            )
        except Exception as exc:
            with lock:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)

    cpu0 = time.process_time()
    started = time.perf_counter()
    # mtnmomo prints every response; that is its behaviour, but not worth a terminal's time.
    with (
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
        ThreadPoolExecutor(max_workers=threads) as pool,
    ):
        list(pool.map(pay, range(payments)))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    latencies.sort()
    ok = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(ok - 1, max(0, round(q / 100 * ok) - 1))] * 1000 if ok else 0.0

    from bench.harness import peak_rss_mb

    return PeerResult(
        library=f"mtnmomo {version('mtnmomo')} (requests {version('requests')})",
        threads=threads,
        payments=payments,
        ok=ok,
        failed=payments - ok,
        seconds=round(seconds, 3),
        payments_per_second=round(ok / seconds, 1),
        p50_ms=round(pct(50), 1),
        p99_ms=round(pct(99), 1),
        cpu_seconds=round(cpu, 3),
        cpu_ms_per_payment=round(cpu / max(ok, 1) * 1000, 3),
        peak_rss_mb=peak_rss_mb(os.getpid()),
        errors=errors,
    )


def run_in_process(
    simulator_url: str, subscription_key: str, *, payments: int, threads: int
) -> dict[str, Any]:
    """Run the peer in a process of its own (its threads and CPU are then its own)."""
    import subprocess
    import sys

    from bench.harness import REPO

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.peer",
            "--simulator",
            simulator_url,
            "--subscription-key",
            subscription_key,
            "--payments",
            str(payments),
            "--threads",
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(*, latency: float, payments: int, threads: int) -> dict[str, Any]:
    """Start a simulator with this provider latency, run the peer against it, count tokens."""
    from bench import harness

    work_dir = harness.run_dir("peer")
    simulator = harness.start_simulator(work_dir, {"callbacks_enabled": False})
    control = harness.SimulatorControl(simulator.url or "")
    try:
        control.configure(harness.latency_patch(latency))
        cpu0 = simulator.cpu_seconds()
        result = run_in_process(
            simulator.url or "", harness.SUBSCRIPTION_KEY, payments=payments, threads=threads
        )
        stats = control.stats()
        tokens = harness.requests_to(stats, "mtn.token")
        result.update(
            latency_ms=int(latency * 1000),
            token_requests=tokens,
            token_requests_per_payment=round(tokens / max(result["ok"], 1), 3),
            requesttopay_requests=harness.requests_to(stats, "mtn.requesttopay"),
            simulator_cpu_ms_per_payment=round(
                (simulator.cpu_seconds() - cpu0) / max(result["ok"], 1) * 1000, 3
            ),
        )
        (work_dir / "peer.json").write_text(json.dumps(result, indent=2))
        return result
    finally:
        control.close()
        simulator.stop()


def main() -> None:
    from bench.harness import SUBSCRIPTION_KEY, exit_on_sigterm

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.3, help="provider latency, seconds")
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument(
        "--simulator", help="use this running simulator and print only the raw result"
    )
    parser.add_argument("--subscription-key", default=SUBSCRIPTION_KEY)
    args = parser.parse_args()
    if args.simulator:
        result = run(
            args.simulator, args.subscription_key, payments=args.payments, threads=args.threads
        )
        print(json.dumps(asdict(result)))
        return
    exit_on_sigterm()
    print(
        json.dumps(
            measure(latency=args.latency, payments=args.payments, threads=args.threads), indent=2
        )
    )


if __name__ == "__main__":
    main()
