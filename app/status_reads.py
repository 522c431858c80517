"""Every status read from a provider, answered or not, kept for the payment's timeline.

A read settles nothing by itself (the payment or refund service decides what it means); this is
the record of what the gateway was told and when, for the person looking at a stuck payment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, autocommit, utcnow
from app.providers.base import StatusResult

UNREACHABLE = "unreachable"


class ProviderStatusRead(Base):
    """One status read from a provider (a payment's or a refund's), answered or not: the
    timeline shows what the gateway was told, and when."""

    __tablename__ = "provider_status_reads"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    provider: Mapped[str] = mapped_column(String(20))
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"), index=True)
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"), index=True)
    actor: Mapped[str] = mapped_column(String(20))  # api | callback | reconciler | operator
    # pending | successful | failed | not_found, or unreachable when there was no answer.
    status: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    provider_transaction_id: Mapped[str | None] = mapped_column(String(128))
    failure_code: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(255))


_READS: Table = ProviderStatusRead.__table__  # type: ignore[assignment]
_INSERT = _READS.insert()


class StatusReadLog:
    """Writes one row per read, each its own autocommitted statement (one round trip)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = autocommit(engine)

    async def record(
        self,
        *,
        provider: str,
        actor: str,
        answer: StatusResult | None,
        payment_id: str | None = None,
        refund_id: str | None = None,
        error: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record ``answer``, or, when it is None, that the provider could not be asked
        (``error`` says why)."""
        values = {
            "at": at or utcnow(),
            "provider": provider,
            "payment_id": payment_id,
            "refund_id": refund_id,
            "actor": actor,
            "status": answer.status.value if answer is not None else UNREACHABLE,
            "amount_minor": answer.amount_minor if answer is not None else None,
            "currency": answer.currency if answer is not None else None,
            "provider_transaction_id": answer.provider_transaction_id if answer else None,
            "failure_code": answer.failure_code.value if answer and answer.failure_code else None,
            "detail": ((answer.failure_message if answer else error) or None),
        }
        if values["detail"] is not None:
            values["detail"] = str(values["detail"])[:255]
        async with self._engine.connect() as connection:
            await connection.execute(_INSERT, values)
