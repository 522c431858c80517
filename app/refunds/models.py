from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, utcnow


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        Index("ix_refunds_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_refunds_status_next_check", "status", "next_check_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(160))
    refund_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Sent as MTN's X-Reference-Id; fixed before the provider is called, never replaced.
    provider_reference: Mapped[str] = mapped_column(String(64), unique=True)
    provider_transaction_id: Mapped[str | None] = mapped_column(String(128))
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    # What the provider reported when it disagreed with us (kept for needs_review).
    reported_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    reported_currency: Mapped[str | None] = mapped_column(String(3))
    # Set once the refund call is over; the reconciler leaves a refund alone until then.
    initiation_finished_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None]
    check_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class RefundTransition(Base):
    """Audit trail: one row per refund status change, written in the change's transaction."""

    __tablename__ = "refund_transitions"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    refund_id: Mapped[str] = mapped_column(ForeignKey("refunds.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(20))
    # The operator, when ``actor`` is "operator" (a resolution).
    operator_id: Mapped[str | None] = mapped_column(ForeignKey("operators.id"))
    detail: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
