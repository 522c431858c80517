"""Jobs inside the API process, for the embedded default (no Redis): one process only.

A timer runs the outbox sweep every ``jobs.OUTBOX_SWEEP_SECONDS`` and the reconciler every
``RECONCILE_INTERVAL_SECONDS``; new events are delivered right after their commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from app.runtime import Runtime
from app.workers import jobs

logger = logging.getLogger(__name__)


class EmbeddedJobs:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._timer: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[object]] = set()

    async def events_committed(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            task: asyncio.Task[object] = asyncio.create_task(
                jobs.deliver_event(self._runtime, event_id)
            )
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    def start(self) -> None:
        self._runtime.notifier.target = self
        self._timer = asyncio.create_task(self._run(), name="embedded-jobs")

    async def stop(self) -> None:
        self._runtime.notifier.target = None
        tasks = [t for t in [self._timer, *self._deliveries] if t is not None]
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
            try:
                await jobs.sweep_outbox(self._runtime)
                if time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + settings.reconcile_interval_seconds
                    await jobs.reconcile_pending(self._runtime)
            except Exception:
                # A database hiccup must not end the loop: the next tick tries again.
                logger.exception("embedded jobs tick failed")
            await asyncio.sleep(tick)
