from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, utcnow


class ProviderCallback(Base):
    """Inbox: every provider callback as received, with what we made of it.

    ``dedupe_key`` is set only for callbacks that passed verification, so a forged copy of a real
    callback can never claim the key before the real one arrives.
    """

    __tablename__ = "provider_callbacks"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(20))
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"), index=True)
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"), index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    # The exact bytes received (a signature can be re-checked later; may not even be UTF-8).
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]]
    source_ip: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
