"""arq ``WorkerSettings``: ``momo-gateway worker`` runs it against ``REDIS_URL``.

Cron jobs are not unique: every worker sweeps each tick, and the claims (SKIP LOCKED in the
reconciler, a lease on each event) keep two workers off the same payment or event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from arq import cron
from arq.connections import ArqRedis, RedisSettings
from arq.cron import CronJob
from prometheus_client import start_http_server

from app.backlog import refresh_backlog_gauges
from app.config import Settings
from app.metrics import WORKER_HEARTBEAT
from app.runtime import Runtime, build_runtime
from app.workers import jobs

logger = logging.getLogger(__name__)


class ArqNotifier:
    """Enqueue a delivery job for each new event, after its commit, and (with SMS receipts
    configured) one SMS run, so that a receipt goes out now rather than at the next sweep."""

    def __init__(self, pool: ArqRedis, *, sms_receipts: bool = False) -> None:
        self._pool = pool
        self._sms_receipts = sms_receipts

    async def events_committed(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            await self._pool.enqueue_job("deliver_event", event_id)
        if self._sms_receipts and event_ids:
            await self._pool.enqueue_job("send_sms_receipts")


class QuietEmptySweeps(logging.Filter):
    """arq logs every job's start and end at INFO; for the outbox and SMS sweeps, which run
    every few seconds and mostly find nothing, that would be lines every tick. Their start and
    an empty result go to DEBUG; a sweep that sent something still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        quiet = (f"cron:{sweep_outbox.__name__}", f"cron:{send_sms_receipts.__name__}")
        if len(args) < 3 or not any(name in str(args[1]) for name in quiet):
            return True
        starting = record.msg.startswith("%6.2fs →")
        empty_result = record.msg.startswith("%6.2fs ← ") and str(args[2]) == "0"
        if not (starting or empty_result):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_empty_sweeps() -> None:
    arq_logger = logging.getLogger("arq.worker")
    if not any(isinstance(f, QuietEmptySweeps) for f in arq_logger.filters):
        arq_logger.addFilter(QuietEmptySweeps())


# --- tasks: thin wrappers, the work is in app.workers.jobs --------------------------------------


async def reconcile_pending(ctx: dict[str, Any]) -> dict[str, int]:
    WORKER_HEARTBEAT.set_to_current_time()
    report = await jobs.reconcile_pending(ctx["runtime"])
    await refresh_backlog_gauges(ctx["runtime"].sessions)
    return {"claimed": report.claimed, "settled": report.settled}


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    # The tick itself is the sign of life (every 10 s), even when the database then fails it.
    WORKER_HEARTBEAT.set_to_current_time()
    return sum(1 for result in await jobs.sweep_outbox(ctx["runtime"]) if result.sent)


async def send_sms_receipts(ctx: dict[str, Any]) -> int:
    report = await jobs.send_sms_receipts(ctx["runtime"])
    return report.sent


async def deliver_event(ctx: dict[str, Any], event_id: str) -> bool:
    result = await jobs.deliver_event(ctx["runtime"], event_id)
    return result.delivered


async def purge_idempotency_records(ctx: dict[str, Any]) -> int:
    return await jobs.purge_idempotency_records(ctx["runtime"])


async def startup(ctx: dict[str, Any]) -> None:
    quiet_empty_sweeps()
    settings: Settings = ctx.get("settings") or Settings()
    if settings.worker_metrics_port and not ctx.get("metrics_started"):
        # Its own port: the worker's counters live in this process, not the API's.
        try:
            start_http_server(settings.worker_metrics_port)
            ctx["metrics_started"] = True
        except OSError as exc:
            # A second worker on one host finds the port taken: it works on, unscraped.
            logger.warning(
                "worker metrics port %d unavailable (%s)", settings.worker_metrics_port, exc
            )
    runtime = await build_runtime(
        settings, providers=ctx.get("providers"), refund_providers=ctx.get("refund_providers")
    )
    runtime.notifier.target = ArqNotifier(
        ctx["redis"], sms_receipts=runtime.settings.sms_configured
    )
    ctx["runtime"] = runtime


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.aclose()


def every(seconds: float) -> dict[str, Any]:
    """arq cron fields for "every N seconds": N is rounded to a divisor of a minute (below
    60 s) or of an hour (whole minutes), which is what a cron schedule can express."""
    whole = max(1, round(seconds))
    if whole < 60:
        step = max(d for d in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) if d <= whole)
        return {"second": set(range(0, 60, step))}
    minutes = max(1, round(whole / 60))
    step = max(d for d in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) if d <= minutes)
    return {"minute": set(range(0, 60, step)), "second": {0}}


def cron_jobs(settings: Settings) -> list[CronJob]:
    return [
        cron(
            reconcile_pending,
            unique=False,
            run_at_startup=True,
            **every(settings.reconcile_interval_seconds),
        ),
        cron(sweep_outbox, unique=False, run_at_startup=True, **every(jobs.OUTBOX_SWEEP_SECONDS)),
        # On the sweep's cadence: new receipts are also nudged right after their event's commit.
        cron(send_sms_receipts, unique=False, **every(jobs.OUTBOX_SWEEP_SECONDS)),
        cron(purge_idempotency_records, minute={17}, second={0}),
    ]


def worker_settings(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for ``arq.Worker`` (tests add ``burst=True`` and a ctx)."""
    settings = settings or Settings()
    if not settings.redis_url:
        raise RuntimeError("the worker needs REDIS_URL (without it, `serve` runs jobs itself)")
    return {
        "functions": [deliver_event, reconcile_pending, sweep_outbox, send_sms_receipts],
        "cron_jobs": cron_jobs(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "max_jobs": 20,
        "job_timeout": 300,
        "health_check_interval": 30,
        "ctx": {"settings": settings},
    }


def __getattr__(name: str) -> Any:
    # `arq app.workers.settings.WorkerSettings` works too; built on first use so that importing
    # this module never needs REDIS_URL.
    if name == "WorkerSettings":
        return type("WorkerSettings", (), worker_settings())
    raise AttributeError(name)
