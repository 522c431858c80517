"""The jobs, as plain functions over a Runtime: the arq tasks and the embedded runner both call
these. Each is idempotent: running one twice changes nothing the first run did not."""

from __future__ import annotations

import asyncio
import logging

from app.events.delivery import DeliveryResult
from app.idempotency import IdempotencyStore
from app.payments.reconciler import SweepReport
from app.runtime import Runtime
from app.sms.service import SendReport

logger = logging.getLogger(__name__)

OUTBOX_BATCH = 500
# How often the outbox is swept, by the arq worker's cron and by the embedded timer alike: an
# event whose delivery job was lost waits at most this long. Every worker sweeps on every tick
# (a query each), which is why it is not shorter.
OUTBOX_SWEEP_SECONDS = 10.0
DELIVERY_CONCURRENCY = 20


async def reconcile_pending(runtime: Runtime) -> SweepReport:
    """One sweep over pending payments, then over pending refunds; the payments' report."""
    report = await runtime.reconciler.reconcile()
    await reconcile_refunds(runtime)
    return report


async def reconcile_refunds(runtime: Runtime) -> SweepReport:
    return await runtime.refund_reconciler.reconcile()


async def deliver_event(runtime: Runtime, event_id: str) -> DeliveryResult:
    return await runtime.delivery.deliver(event_id)


async def sweep_outbox(runtime: Runtime) -> list[DeliveryResult]:
    """Deliver every event that is due: new ones whose job was lost (Redis down or flushed,
    a worker killed) and retries whose time has come."""
    semaphore = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def deliver(event_id: str) -> DeliveryResult:
        async with semaphore:
            return await runtime.delivery.deliver(event_id)

    due = await runtime.delivery.due_events(limit=OUTBOX_BATCH)
    results = list(await asyncio.gather(*(deliver(event_id) for event_id in due)))
    sent = sum(1 for result in results if result.sent)
    if sent:
        logger.info(
            "outbox sweep: %d sent, %d delivered",
            sent,
            sum(1 for result in results if result.delivered),
        )
    return results


async def purge_idempotency_records(runtime: Runtime) -> int:
    return await IdempotencyStore(runtime.sessions).purge_expired()


async def send_sms_receipts(runtime: Runtime) -> SendReport:
    """Queue the receipts new successful payments are owed, then send those that are due.
    Its errors end here: SMS receipts never hold up payments or event delivery, and the next
    run picks up whatever this one left."""
    if not runtime.sms.configured:
        return SendReport()
    try:
        await runtime.sms.queue_new()
        return await runtime.sms.send_due()
    except Exception:
        logger.exception("SMS receipts run failed; the next run tries again")
        return SendReport()
