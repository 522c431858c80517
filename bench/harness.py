"""Processes the benchmarks start and measure: simulator, gateway, workers, floor, event sink.

Everything listens on 127.0.0.1 and is started as a real subprocess, so CPU time and peak RSS are
read per process from the kernel (psutil and ``/proc/<pid>/status``), as an operator would see
them. Every wait here is bounded: a process that does not come up in time is killed and the
benchmark fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from app.simulator.config import (
    DEFAULT_AIRTEL_CLIENT_ID,
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
)

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PYTHON = sys.executable
GATEWAY_COMMAND = [str(Path(PYTHON).with_name("momo-gateway"))]
if not Path(GATEWAY_COMMAND[0]).exists():
    GATEWAY_COMMAND = [PYTHON, "-m", "app.cli"]

POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1/test"
)
POSTGRES_HOST_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "momo_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CALLBACK_TOKEN_SECRET = "bench-callback-token-secret"
# mtnmomo (the peer) refuses a subscription key that is not a UUID, so every benchmark runs the
# simulator with this one instead of DEFAULT_MTN_SUBSCRIPTION_KEY; the other credentials are the
# simulator's defaults.
SUBSCRIPTION_KEY = "7d1c3a52-9e4b-4f6d-8a2c-5b0e1f3d4c6a"
RESULTS_DIR = REPO / "bench" / "results"
START_TIMEOUT = 30.0


def database_url(name: str = BENCH_DATABASE) -> str:
    return f"{POSTGRES_HOST_URL}/{name}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- the machine ----------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    for name, command in (
        ("postgresql", ["psql", POSTGRES_ADMIN_URL, "-Atc", "SHOW server_version"]),
        ("redis", ["redis-cli", "-u", REDIS_URL, "INFO", "server"]),
        ("wrk", ["wrk", "--version"]),
    ):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = (out.stdout + out.stderr).strip()
        if name == "redis":
            text = next(
                (ln.split(":", 1)[1] for ln in text.splitlines() if "redis_version" in ln), ""
            )
        info[name] = text.splitlines()[0].strip() if text else "?"
    info["git"] = git_state()
    from importlib.metadata import version

    for package in ("uvicorn", "fastapi", "sqlalchemy", "asyncpg", "httpx", "httpcore", "uvloop"):
        with contextlib.suppress(Exception):
            info[package] = version(package)
    return info


def git_revision(revision: str) -> str:
    """The short commit id ``revision`` names."""
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.strip()


def git_state() -> str:
    """The commit the benchmarked code is at, and whether app/ differs from it (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "app", "migrations"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in app/' if dirty else ''}"


# --- processes ------------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the most resident memory the process ever had, in MB (10^6 bytes)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 1e6
    except psutil.Error:
        return None


@dataclass
class Service:
    """One started process (and whatever children it forks, e.g. uvicorn --workers)."""

    name: str
    process: subprocess.Popen[bytes]
    url: str | None = None
    log_path: Path | None = None
    startup_rss_mb: float | None = None
    _peak: dict[int, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the process and its children so far."""
        user = system = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                user += times.user
                system += times.system
        return user, system

    def peak_rss_mb(self) -> float:
        """Largest VmHWM among this service's processes (each process is its own heap)."""
        for proc in self.processes():
            value = peak_rss_mb(proc.pid)
            if value is not None:
                self._peak[proc.pid] = max(self._peak.get(proc.pid, 0.0), value)
        return max(self._peak.values(), default=0.0)

    def stop(self, timeout: float = 15.0) -> None:
        self.peak_rss_mb()  # last reading before the process goes away
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start(
    name: str,
    command: list[str],
    env: Mapping[str, str],
    *,
    log_dir: Path,
    ready_url: str | None = None,
    url: str | None = None,
    stdout_to_log: bool = True,
    code: Path = REPO,
) -> Service:
    """Start ``command`` with ``code`` (a checkout; this one by default) first on its path."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    full_env = {**os.environ, "PYTHONPATH": str(code), **env}
    process = subprocess.Popen(
        command,
        env=full_env,
        cwd=code,
        stdout=log if stdout_to_log else subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    service = Service(name=name, process=process, url=url, log_path=log_path)
    if ready_url is not None:
        try:
            wait_ready(service, ready_url)
        except BaseException:
            service.stop()
            raise
        # What the process holds once it serves, before any load: imports, pools, caches.
        service.startup_rss_mb = rss_mb(process.pid)
    return service


def wait_ready(service: Service, url: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with {service.process.returncode}; "
                    f"see {service.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.1)
    raise TimeoutError(
        f"{service.name} not ready at {url} after {timeout:.0f} s; see {service.log_path}"
    )


@contextlib.contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    try:
        yield services
    finally:
        for service in reversed(services):
            service.stop()


# --- the simulator --------------------------------------------------------------------------------


def start_simulator(log_dir: Path, config: Mapping[str, Any] | None = None) -> Service:
    import json

    port = free_port()
    base = f"http://{HOST}:{port}"
    config = {"mtn_subscription_key": SUBSCRIPTION_KEY, **(config or {})}
    return start(
        "simulator",
        [PYTHON, "-m", "bench.sim", "--port", str(port), "--config", json.dumps(config)],
        {},
        log_dir=log_dir,
        ready_url=f"{base}/_simulator/config",
        url=base,
    )


class SimulatorControl:
    """The simulator's /_simulator routes (never subject to injected faults or latency)."""

    def __init__(self, base_url: str) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)

    def configure(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        response = self._client.post("/_simulator/config", json=dict(patch))
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset(self, *, tokens: bool = False) -> None:
        self._client.post(
            "/_simulator/reset", params={"tokens": str(tokens).lower()}
        ).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._client.get("/_simulator/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        self._client.close()


def latency_patch(latency: float) -> dict[str, Any]:
    """Provider latency on the two endpoints an initiation touches: token and request-to-pay
    (status checks are left fast; the initiation path never calls them)."""
    faults = {"latency_seconds": latency}
    return {"endpoint_faults": {"mtn.token": faults, "mtn.requesttopay": faults}}


def requests_to(stats: Mapping[str, Any], endpoint: str) -> int:
    return int(stats.get("endpoints", {}).get(endpoint, {}).get("requests", 0))


# --- PostgreSQL and Redis ------------------------------------------------------------------------


def recreate_database(name: str = BENCH_DATABASE) -> str:
    """Drop and create the benchmark database, then migrate it with the gateway's own command."""
    for statement in (
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    ):
        subprocess.run(
            ["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", statement],
            check=True,
            capture_output=True,
            timeout=60,
        )
    url = database_url(name)
    subprocess.run(
        [*GATEWAY_COMMAND, "migrate"],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": url},
        cwd=REPO,
    )
    return url


def create_merchant(db_url: str, callback_url: str) -> dict[str, str]:
    import json

    out = subprocess.run(
        [
            *GATEWAY_COMMAND,
            "merchants",
            "create",
            "--name",
            "Bench shop",
            "--callback-url",
            callback_url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATABASE_URL": db_url},
        cwd=REPO,
    )
    result: dict[str, str] = json.loads(out.stdout)
    return result


def flush_redis(url: str = REDIS_URL) -> None:
    subprocess.run(["redis-cli", "-u", url, "FLUSHDB"], check=True, capture_output=True, timeout=30)


def psql_value(db_url: str, query: str) -> str:
    out = subprocess.run(
        ["psql", db_url, "-Atc", query], check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


def analyze(db_url: str) -> None:
    """``ANALYZE`` the benchmark's database, as autovacuum would have in production.

    This machine's PostgreSQL runs with ``autovacuum = off``, so a new table never gets
    statistics, and the plans PostgreSQL picks without them can be far from production's: the
    conditional ``UPDATE payments … WHERE id = $1 AND status = $2`` then walks the (status,
    next_check_at) index over every pending payment instead of the primary key, and costs more
    with every payment in the table (BENCHMARKS.md). Run once the warm-up wrote some rows."""
    psql_value(db_url, "ANALYZE")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, every process), so a window's
    share not spent by the benchmark's own processes shows load from elsewhere."""
    t = psutil.cpu_times()
    return (
        t.user
        + t.nice
        + t.system
        + getattr(t, "irq", 0.0)
        + getattr(t, "softirq", 0.0)
        + getattr(t, "steal", 0.0)
    )


def postgres_transactions(db_url: str) -> int:
    """Commits + rollbacks PostgreSQL has counted for this database. The statistics are flushed
    about once a second, so read this after the load has been quiet for a moment."""
    name = db_url.rsplit("/", 1)[-1]
    return int(
        psql_value(
            db_url,
            f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{name}'",
        )
    )


def postgres_cpu_seconds() -> float:
    """CPU of PostgreSQL so far: every live server process, plus what the postmaster has
    collected from backends that already exited (its children's times), so a connection that
    closes inside the window does not take its CPU with it."""
    total = 0.0
    for proc in psutil.process_iter(["name", "ppid"]):
        if proc.info["name"] not in ("postgres", "postmaster"):
            continue
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
            parent = psutil.Process(proc.info["ppid"])
            if parent.name() not in ("postgres", "postmaster"):
                total += times.children_user + times.children_system
    return total


# --- the gateway, its workers, the floor, the sink --------------------------------------------


def gateway_env(
    *,
    db_url: str,
    simulator_url: str,
    api_port: int,
    redis: bool = True,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "DATABASE_URL": db_url,
        "MTN_MOMO_API_URL": simulator_url,
        "MTN_MOMO_API_USER": DEFAULT_MTN_API_USER,
        "MTN_MOMO_API_KEY": DEFAULT_MTN_API_KEY,
        "MTN_MOMO_SUBSCRIPTION_KEY": SUBSCRIPTION_KEY,
        "MTN_MOMO_TARGET_ENV": "sandbox",
        "MTN_MOMO_CURRENCY": "UGX",
        "MTN_MOMO_CALLBACK_URL": f"http://{HOST}:{api_port}/api/webhooks/mtn-momo/",
        "AIRTEL_MONEY_API_URL": simulator_url,
        "AIRTEL_MONEY_CLIENT_ID": DEFAULT_AIRTEL_CLIENT_ID,
        "AIRTEL_MONEY_CLIENT_SECRET": DEFAULT_AIRTEL_CLIENT_SECRET,
        "AIRTEL_MONEY_CALLBACK_URL": f"http://{HOST}:{api_port}/api/webhooks/airtel-money/",
        "CALLBACK_TOKEN_SECRET": CALLBACK_TOKEN_SECRET,
        # Production defaults: INFO, JSON lines (to a file here).
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "REDIS_URL": REDIS_URL if redis else "",
    }
    if not redis:
        env.pop("REDIS_URL")
    env.update(extra or {})
    return env


def start_gateway(
    log_dir: Path,
    *,
    db_url: str,
    simulator_url: str,
    redis: bool = True,
    workers: int = 1,
    name: str = "gateway",
    extra_env: Mapping[str, str] | None = None,
    code: Path = REPO,
) -> Service:
    """``momo-gateway serve``; ``code``: the checkout whose ``app`` it runs (see export_code)."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = gateway_env(
        db_url=db_url, simulator_url=simulator_url, api_port=port, redis=redis, extra=extra_env
    )
    if not redis:
        # An inherited REDIS_URL would turn this into the production shape behind our back.
        env["REDIS_URL"] = ""
    return start(
        name,
        [*GATEWAY_COMMAND, "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)],
        env,
        log_dir=log_dir,
        ready_url=f"{base}/readyz",
        url=base,
        code=code,
    )


def export_code(revision: str, into: Path) -> Path:
    """The tree of ``revision`` (any git revision) written to ``into``, to run an earlier
    version of the gateway beside this one with the same Python environment. Its database
    schema must be the current one's (the benchmark migrates with this checkout)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True, timeout=60)
    return into


def start_worker(
    log_dir: Path,
    *,
    db_url: str,
    simulator_url: str,
    name: str = "worker",
    extra_env: Mapping[str, str] | None = None,
) -> Service:
    env = gateway_env(db_url=db_url, simulator_url=simulator_url, api_port=9, extra=extra_env)
    return start(name, [*GATEWAY_COMMAND, "worker"], env, log_dir=log_dir)


def start_floor(
    log_dir: Path, *, db_url: str, simulator_url: str, client: str = "httpx"
) -> Service:
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = {
        "FLOOR_DATABASE_URL": db_url,
        "FLOOR_SIMULATOR_URL": simulator_url,
        "FLOOR_SUBSCRIPTION_KEY": SUBSCRIPTION_KEY,
        "FLOOR_HTTP_CLIENT": client,
    }
    return start(
        f"floor-{client}",
        [
            PYTHON,
            "-m",
            "uvicorn",
            "bench.floor:create_app",
            "--factory",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--no-proxy-headers",
            "--log-level",
            "warning",
        ],
        env,
        log_dir=log_dir,
        ready_url=f"{base}/healthz",
        url=base,
    )


def start_sink(log_dir: Path) -> Service:
    port = free_port()
    base = f"http://{HOST}:{port}"
    return start(
        "sink",
        [PYTHON, "-m", "bench.sink", "--port", str(port)],
        {},
        log_dir=log_dir,
        ready_url=f"{base}/healthz",
        url=base,
    )


def run_dir(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{stamp}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop the processes we started."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
