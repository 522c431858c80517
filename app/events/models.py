from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, utcnow

_PAYMENT_EVENT = "refund_id IS NULL AND operator_action_id IS NULL"
_REFUND_EVENT = "refund_id IS NOT NULL AND operator_action_id IS NULL"


class OutboxEvent(Base):
    """An event for the storefront, inserted in the same transaction as the state change."""

    __tablename__ = "events"
    __table_args__ = (
        # One event per final status: of a payment (refund_id empty), and of each of its refunds.
        # An operator's resolution announces a status again (a success once contradicted, then
        # confirmed by a person): its event is tied to the audit entry instead, one per entry.
        Index(
            "uq_events_payment_type",
            "payment_id",
            "type",
            unique=True,
            postgresql_where=text(_PAYMENT_EVENT),
            sqlite_where=text(_PAYMENT_EVENT),
        ),
        Index(
            "uq_events_refund_type",
            "refund_id",
            "type",
            unique=True,
            postgresql_where=text(_REFUND_EVENT),
            sqlite_where=text(_REFUND_EVENT),
        ),
        Index("uq_events_operator_action", "operator_action_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"))
    operator_action_id: Mapped[int | None] = mapped_column(
        AutoId, ForeignKey("operator_actions.id")
    )
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
