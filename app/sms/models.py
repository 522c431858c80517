from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class SmsReceipt(Base):
    """One text to a payer, for one ``payment.succeeded`` event (``event_id`` is unique, so a
    repeated sweep can never queue, and so never send, a second one)."""

    __tablename__ = "sms_receipts"
    __table_args__ = (
        # What the sender asks on every tick: pending ones whose time has come.
        Index("ix_sms_receipts_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), unique=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    # The whole number, needed to send; only ever shown or logged masked.
    to_number: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20))  # app.sms.service.SmsStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    status_code: Mapped[int | None]  # Africa's Talking's recipient statusCode
    failure_reason: Mapped[str | None] = mapped_column(String(255))
    delivery_status: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
