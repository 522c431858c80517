from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, utcnow


class OutboxEvent(Base):
    """An event for the storefront, inserted in the same transaction as the state change."""

    __tablename__ = "events"
    __table_args__ = (
        # One event per final status: of a payment (refund_id empty), and of each of its refunds.
        Index(
            "uq_events_payment_type",
            "payment_id",
            "type",
            unique=True,
            postgresql_where=text("refund_id IS NULL"),
            sqlite_where=text("refund_id IS NULL"),
        ),
        Index(
            "uq_events_refund_type",
            "refund_id",
            "type",
            unique=True,
            postgresql_where=text("refund_id IS NOT NULL"),
            sqlite_where=text("refund_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"))
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    delivery_status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "event_delivery_attempts"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(String(255))
