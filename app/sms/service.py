"""SMS receipts, from a ``payment.succeeded`` event to a text on the payer's phone.

Away from the payment's path: a sweep (``queue_new``) finds successful payments owed a receipt
and inserts one per event; ``send_due`` sends them through Africa's Talking and retries what it
could not send; delivery reports mark them delivered or not. Whatever Africa's Talking does, a
payment and its events are never touched here.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import new_id, utcnow
from app.metrics import SMS_RECEIPTS
from app.payments.models import Payment
from app.phone import mask
from app.sms import repository
from app.sms.africastalking import AfricasTalking, SendOutcome, SendResult, build_sms_client
from app.sms.models import SmsReceipt
from app.sms.template import ReceiptValues, display_amount, render

logger = logging.getLogger("app.sms")

MAX_ATTEMPTS = 8
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
# Longer than one send can take (app.sms.africastalking.SEND_TIMEOUT), so a claimed receipt is
# not sent by two senders at once; if the sender dies, it is due again once the lease runs out.
CLAIM_LEASE = timedelta(seconds=60)
BATCH = 100
SEND_CONCURRENCY = 10
# Africa's Talking's final delivery statuses.
DELIVERED_STATUSES = frozenset({"Success"})
UNDELIVERED_STATUSES = frozenset({"Failed", "Rejected"})


class SmsStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"  # accepted by Africa's Talking
    FAILED = "failed"  # refused for good, or not accepted after MAX_ATTEMPTS
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


def retry_delay(attempts: int) -> timedelta:
    """30 s after the first failed attempt, doubling each time, at most an hour."""
    return min(RETRY_BASE * (1 << max(attempts - 1, 0)), RETRY_CAP)


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    refused: int = 0
    retrying: int = 0
    gave_up: int = 0


class SmsReceipts:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        callback_token: str | None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._sessions = sessions
        self._client = client or build_sms_client()
        self._callback_token = callback_token
        self._sender: AfricasTalking | None = None
        username, api_key = settings.africastalking_username, settings.africastalking_api_key
        if username and api_key is not None:  # settings.sms_configured, spelled for mypy
            self._sender = AfricasTalking(
                self._client,
                api_url=settings.africastalking_api_url,
                username=username,
                api_key=api_key.get_secret_value(),
                sender_id=settings.africastalking_sender_id,
            )

    @property
    def configured(self) -> bool:
        return self._sender is not None

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- queueing ------------------------------------------------------------------------------

    async def queue_new(self, now: datetime | None = None) -> int:
        """Insert a receipt for each payment owed one; how many were new."""
        if not self.configured:
            return 0
        now = now or utcnow()
        async with self._sessions.begin() as session:
            owed = await repository.events_owed_a_receipt(session, limit=BATCH)
            receipts = [_new_receipt(row, now) for row in owed]
            return await repository.insert_receipts(session, receipts)

    # --- sending -------------------------------------------------------------------------------

    async def send_due(self, now: datetime | None = None) -> SendReport:
        """Send every pending receipt whose time has come."""
        if self._sender is None:
            return SendReport()
        sender = self._sender
        now = now or utcnow()
        async with self._sessions.begin() as session:
            claimed = await repository.claim_due(session, now=now, lease=CLAIM_LEASE, limit=BATCH)
        semaphore = asyncio.Semaphore(SEND_CONCURRENCY)

        async def send(receipt: Any) -> str:
            async with semaphore:
                result = await sender.send(receipt.to_number, receipt.message)
                return await self._record(receipt, result, now)

        results = await asyncio.gather(*(send(receipt) for receipt in claimed))
        return SendReport(
            sent=results.count("sent"),
            refused=results.count("refused"),
            retrying=results.count("retry"),
            gave_up=results.count("gave_up"),
        )

    async def _record(self, receipt: Any, result: SendResult, now: datetime) -> str:
        """Store what Africa's Talking answered; the result as the metric names it."""
        to = mask(receipt.to_number)
        context = {"payment_id": receipt.payment_id}
        code = str(result.status_code) if result.status_code is not None else "none"
        values: dict[str, Any] = {"updated_at": now, "status_code": result.status_code}
        if result.outcome is SendOutcome.ACCEPTED:
            status, outcome = SmsStatus.SENT, "sent"
            values |= {"provider_message_id": result.message_id, "sent_at": now}
            values |= {"next_attempt_at": None, "failure_reason": None}
            SMS_RECEIPTS.labels(result="sent", status_code=code).inc()
            logger.info("SMS receipt sent to %s (%s)", to, result.message_id, extra=context)
        elif result.outcome is SendOutcome.REFUSED:
            status, outcome = SmsStatus.FAILED, "refused"
            values |= {"next_attempt_at": None, "failure_reason": result.status}
            SMS_RECEIPTS.labels(result="refused", status_code=code).inc()
            logger.warning(
                "SMS receipt to %s refused by Africa's Talking: %s %s",
                to,
                result.status_code,
                result.status or "",
                extra=context,
            )
        elif receipt.attempts >= MAX_ATTEMPTS:
            status, outcome = SmsStatus.FAILED, "gave_up"
            reason = f"not accepted after {receipt.attempts} attempts; last: {result.reason}"
            values |= {"next_attempt_at": None, "failure_reason": reason}
            SMS_RECEIPTS.labels(result="gave_up", status_code=code).inc()
            logger.warning("SMS receipt to %s given up: %s", to, reason, extra=context)
        else:
            status, outcome = SmsStatus.PENDING, "retry"
            delay = retry_delay(receipt.attempts)
            values |= {"next_attempt_at": now + delay, "failure_reason": result.reason}
            SMS_RECEIPTS.labels(result="retry", status_code=code).inc()
            logger.info(
                "SMS receipt to %s not sent (%s); attempt %d of %d, next in %d s",
                to,
                result.reason,
                receipt.attempts,
                MAX_ATTEMPTS,
                delay.total_seconds(),
                extra=context,
            )
        values["status"] = status.value
        async with self._sessions.begin() as session:
            await repository.update_receipt(session, receipt.id, values)
        return outcome

    # --- delivery reports ----------------------------------------------------------------------

    def callback_token_matches(self, token: str) -> bool:
        if self._callback_token is None:
            return False
        # Bytes: compare_digest refuses non-ASCII str, and a path may carry anything.
        return hmac.compare_digest(token.encode(), self._callback_token.encode())

    async def record_delivery_report(self, form: Mapping[str, str]) -> bool:
        """Apply a delivery report; False when it names no receipt of ours (or names nothing)."""
        message_id, status = form.get("id"), form.get("status")
        if not message_id or not status or len(message_id) > 100:
            return False
        values: dict[str, Any] = {"delivery_status": status[:40], "updated_at": utcnow()}
        if status in DELIVERED_STATUSES:
            values["status"] = SmsStatus.DELIVERED.value
        elif status in UNDELIVERED_STATUSES:
            values["status"] = SmsStatus.UNDELIVERED.value
            values["failure_reason"] = (form.get("failureReason") or status)[:255]
        async with self._sessions.begin() as session:
            current = await session.scalar(
                select(SmsReceipt.status).where(SmsReceipt.provider_message_id == message_id)
            )
            if current is None:
                return False
            if "status" not in values and current != SmsStatus.SENT:
                # An intermediate status arriving after the final one must not undo it.
                return True
            await session.execute(
                update(SmsReceipt)
                .where(SmsReceipt.provider_message_id == message_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return True

    # --- reading -------------------------------------------------------------------------------

    async def receipts_for_payment(
        self, merchant_id: str, payment_id: str
    ) -> Sequence[SmsReceipt] | None:
        """The payment's receipts, oldest first; None when the merchant has no such payment."""
        async with self._sessions() as session:
            owned = await session.scalar(
                select(Payment.id).where(
                    Payment.id == payment_id, Payment.merchant_id == merchant_id
                )
            )
            if owned is None:
                return None
            return (
                await session.scalars(
                    select(SmsReceipt)
                    .where(SmsReceipt.payment_id == payment_id)
                    .order_by(SmsReceipt.created_at, SmsReceipt.id)
                )
            ).all()


def _new_receipt(row: Any, now: datetime) -> dict[str, Any]:
    values = ReceiptValues(
        amount=display_amount(row.amount_minor, row.currency),
        merchant=row.merchant_name,
        order=row.order_id,
        ref=row.provider_transaction_id or row.payment_id,
    )
    return {
        "id": new_id("sms"),
        "event_id": row.event_id,
        "payment_id": row.payment_id,
        "merchant_id": row.merchant_id,
        "to_number": row.phone_number,
        "message": render(row.sms_template, values),
        "status": SmsStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
