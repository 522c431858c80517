"""Jobs inside the API process, for the embedded default (no Redis): one process only.

A timer runs the outbox sweep every ``jobs.OUTBOX_SWEEP_SECONDS`` and the reconciler every
``RECONCILE_INTERVAL_SECONDS``, and SMS receipts on the sweep's cadence; new events are
delivered, and their SMS receipts sent, right after their commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence

from app.metrics import WORKER_HEARTBEAT
from app.runtime import Runtime
from app.workers import jobs

logger = logging.getLogger(__name__)


class EmbeddedJobs:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._timer: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[object]] = set()
        # One SMS run at a time, beside the timer (a slow Africa's Talking must not hold up the
        # outbox sweep); a nudge during a run asks for one more run after it.
        self._sms_run: asyncio.Task[None] | None = None
        self._sms_wanted = False

    async def events_committed(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            self._in_background(jobs.deliver_event(self._runtime, event_id))
        if event_ids:
            self._nudge_sms()

    def _in_background(self, job: Coroutine[object, object, object]) -> None:
        task: asyncio.Task[object] = asyncio.create_task(job)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    def _nudge_sms(self) -> None:
        if not self._runtime.sms.configured:
            return
        self._sms_wanted = True
        if self._sms_run is None or self._sms_run.done():
            self._sms_run = asyncio.create_task(self._sms_runs(), name="embedded-sms")

    async def _sms_runs(self) -> None:
        while self._sms_wanted:
            self._sms_wanted = False
            await jobs.send_sms_receipts(self._runtime)  # catches and logs its own errors

    def start(self) -> None:
        self._runtime.notifier.target = self
        self._timer = asyncio.create_task(self._run(), name="embedded-jobs")

    async def stop(self) -> None:
        self._runtime.notifier.target = None
        tasks = [t for t in [self._timer, self._sms_run, *self._deliveries] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        settings = self._runtime.settings
        tick = min(jobs.OUTBOX_SWEEP_SECONDS, settings.reconcile_interval_seconds)
        next_reconcile = time.monotonic()
        while True:
            WORKER_HEARTBEAT.set_to_current_time()  # these jobs are this process's worker
            try:
                await jobs.sweep_outbox(self._runtime)
                self._nudge_sms()
                if time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + settings.reconcile_interval_seconds
                    await jobs.reconcile_pending(self._runtime)
            except Exception:
                # A database hiccup must not end the loop: the next tick tries again.
                logger.exception("embedded jobs tick failed")
            await asyncio.sleep(tick)
