from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, utcnow

# Statuses that hold an order (app.payments.domain.ORDER_BLOCKING_STATUSES), spelled for SQL.
_ORDER_BLOCKING_SQL = "status IN ('pending', 'successful', 'needs_review')"
_HAS_TRANSACTION_ID_SQL = "provider_transaction_id IS NOT NULL"


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        # One live payment per order: the database, not a read-then-write, refuses a second one,
        # so two concurrent requests cannot both charge the same order.
        Index(
            "uq_payments_live_order",
            "merchant_id",
            "order_id",
            unique=True,
            postgresql_where=text(_ORDER_BLOCKING_SQL),
            sqlite_where=text(_ORDER_BLOCKING_SQL),
        ),
        Index("ix_payments_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_payments_status_next_check", "status", "next_check_at"),
        # The console (migration 0006): the newest-first list and its keyset pages, date ranges
        # and the overview's windows; the search box's order ids and provider transaction ids.
        Index("ix_payments_created", "created_at", "id"),
        Index("ix_payments_order_id", "order_id"),
        Index(
            "ix_payments_provider_transaction_id",
            "provider_transaction_id",
            postgresql_where=text(_HAS_TRANSACTION_ID_SQL),
            sqlite_where=text(_HAS_TRANSACTION_ID_SQL),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    order_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    phone_number: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(160))
    payment_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Sent as MTN X-Reference-Id / Airtel transaction.id; fixed before the provider is called.
    provider_reference: Mapped[str] = mapped_column(String(64), unique=True)
    provider_transaction_id: Mapped[str | None] = mapped_column(String(128))
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    # What the provider reported when it disagreed with us (kept for needs_review).
    reported_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    reported_currency: Mapped[str | None] = mapped_column(String(3))
    # Set once the request-to-pay call is over (accepted, refused or retries exhausted). The
    # reconciler leaves a payment alone until then.
    initiation_finished_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None]
    check_count: Mapped[int] = mapped_column(Integer, default=0)
    # The sum of its succeeded refunds, kept in each refund's status change transaction.
    amount_refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class PaymentTransition(Base):
    """Audit trail: one row per status change, written in the change's own transaction."""

    __tablename__ = "payment_transitions"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(20))
    # The operator, when ``actor`` is "operator" (a resolution).
    operator_id: Mapped[str | None] = mapped_column(ForeignKey("operators.id"))
    detail: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
