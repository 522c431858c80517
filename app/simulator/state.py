"""Everything one simulator app knows, and how an accepted payment moves to its final status.

One ``Simulator`` per app instance (``app.state.simulator``): two simulators in one process share
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Mapping
from typing import Any

from app.simulator.background import BackgroundTasks
from app.simulator.callbacks import CallbackAttempt, CallbackSender
from app.simulator.config import SimulatorConfig
from app.simulator.credentials import Credentials
from app.simulator.delivery_reports import DeliveryReportSender
from app.simulator.ledger import Ledger, Payment, PaymentKey, PaymentStatus, Settlement
from app.simulator.refund_ledger import RefundLedger
from app.simulator.scenarios import Resolution
from app.simulator.stats import Stats
from app.simulator.status_calls import StatusCallLog


def mint_mtn_transaction_id() -> str:
    return str(100_000_000 + secrets.randbelow(900_000_000))  # MTN's are plain digits


def mint_transaction_id(payment: Payment) -> str:
    if payment.provider == "mtn_momo":
        return mint_mtn_transaction_id()
    now = time.gmtime()
    letter = "ABCDEFGHJKLMNPQRSTUVWXYZ"[secrets.randbelow(24)]
    return f"MP{time.strftime('%y%m%d.%H%M', now)}.{letter}{secrets.randbelow(100_000):05d}"


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self.startup_config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - reproducible faults, not secrets
        self.ledger = Ledger()
        self.refunds = RefundLedger()
        self.credentials = Credentials()
        self.stats = Stats()
        self.status_calls = StatusCallLog()
        self.background = BackgroundTasks()
        self.callbacks = CallbackSender(self.stats)
        self.delivery_reports = DeliveryReportSender()
        self._release_hangs = asyncio.Event()

    # --- configuration -------------------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    def reconfigure(self, patch: Mapping[str, Any]) -> SimulatorConfig:
        updated = self._config.patched(patch)
        if "seed" in patch:
            self.rng.seed(updated.seed)
        self._config = updated
        return updated

    # --- payments ------------------------------------------------------------------------------

    def accept(self, payment: Payment) -> bool:
        """Record the charge and start its approval timer; False if the reference is taken."""
        if not self.ledger.add(payment):
            return False
        scenario = payment.scenario
        if scenario.settles_after == "never" or scenario.resolution is None:
            return True
        delay = (
            self._config.ongoing_delay_seconds
            if scenario.settles_after == "ongoing"
            else self._config.approval_delay_seconds
        )
        if delay == 0:
            # Settled before the create call answers: a status query right after sees it final.
            self._resolve(payment.key, scenario.resolution)
        else:
            self.background.spawn(
                self._resolve_later(payment.key, scenario.resolution, delay),
                name=f"approve {payment.provider} {payment.reference}",
            )
        return True

    async def _resolve_later(self, key: PaymentKey, resolution: Resolution, delay: float) -> None:
        await asyncio.sleep(delay)
        self._resolve(key, resolution)

    def _resolve(self, key: PaymentKey, resolution: Resolution) -> None:
        payment = self.ledger.get(key)
        if payment is None or payment.status is not PaymentStatus.PENDING:
            return  # reset meanwhile, or a test forced a status first
        settlement = Settlement(
            status=PaymentStatus.SUCCESSFUL if resolution.successful else PaymentStatus.FAILED,
            resolution=resolution,
            transaction_id=mint_transaction_id(payment),
        )
        settled = self.ledger.settle(key, settlement, only_if_pending=True)
        if settled.status is not PaymentStatus.PENDING and self._config.callbacks_enabled:
            self.schedule_callback(settled)

    def force(self, payment: Payment, settlement: Settlement) -> Payment:
        """A test's word overrides the scenario, even on a payment already final."""
        if settlement.status is not PaymentStatus.PENDING and settlement.transaction_id is None:
            settlement = Settlement(
                status=settlement.status,
                resolution=settlement.resolution,
                transaction_id=payment.transaction_id or mint_transaction_id(payment),
                reported_amount=settlement.reported_amount,
                reported_currency=settlement.reported_currency,
            )
        return self.ledger.settle(payment.key, settlement, only_if_pending=False)

    # --- callbacks -----------------------------------------------------------------------------

    def schedule_callback(self, payment: Payment) -> None:
        self.background.spawn(
            self._callback_after_delay(payment.key),
            name=f"callback {payment.provider} {payment.reference}",
        )

    async def _callback_after_delay(self, key: PaymentKey) -> None:
        if self._config.callback_delay_seconds:
            await asyncio.sleep(self._config.callback_delay_seconds)
        payment = self.ledger.get(key)
        if payment is not None:
            await self.callbacks.deliver(payment, self._config)

    async def send_callback_now(self, payment: Payment) -> CallbackAttempt | None:
        return await self.callbacks.deliver(payment, self._config)

    # --- SMS delivery reports ------------------------------------------------------------------

    def schedule_delivery_report(self, message_id: str, phone_number: str) -> None:
        """Report the SMS delivered after the configured delay, if a report URL is set."""
        url = self._config.sms_delivery_report_url
        if url is None:
            return
        self.background.spawn(
            self._report_after_delay(url, message_id, phone_number),
            name=f"delivery report {message_id}",
        )

    async def _report_after_delay(self, url: str, message_id: str, phone_number: str) -> None:
        if self._config.sms_report_delay_seconds:
            await asyncio.sleep(self._config.sms_report_delay_seconds)
        await self.delivery_reports.send(
            url,
            message_id=message_id,
            phone_number=phone_number,
            timeout_seconds=self._config.callback_timeout_seconds,
        )

    # --- injected hangs ------------------------------------------------------------------------

    async def hang(self, seconds: float) -> None:
        """Hold a request without answering, until the time is up or the simulator stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release_hangs.wait(), timeout=seconds)

    def release_hung_requests(self) -> None:
        self._release_hangs.set()

    # --- lifecycle -----------------------------------------------------------------------------

    async def reset(self, *, config: bool = False, tokens: bool = False) -> None:
        await self.background.cancel_all()
        self.ledger.reset()
        self.refunds.reset()
        self.stats.reset()
        self.status_calls.reset()
        self.callbacks.clear()
        self.credentials.reset_counts()
        if tokens:
            self.credentials.revoke()
        if config:
            self._config = self.startup_config
        self.rng.seed(self._config.seed)

    async def close(self) -> None:
        self.release_hung_requests()
        await self.background.cancel_all()
