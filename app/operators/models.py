from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, utcnow


class Operator(Base):
    """A person who runs the gateway: a ``viewer`` sees everything, an ``admin`` also acts."""

    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    role: Mapped[str] = mapped_column(String(10))
    # Argon2id, in its own encoded form (parameters and salt included); never logged.
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    # The console shows times in this IANA zone; None = CONSOLE_TIMEZONE.
    timezone: Mapped[str | None] = mapped_column(String(64))


class OperatorAction(Base):
    """The operator audit log: who did what to which object, when, and from where. The
    application only ever inserts and reads it (PostgreSQL also refuses UPDATE and DELETE)."""

    __tablename__ = "operator_actions"
    __table_args__ = (Index("ix_operator_actions_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    operator_id: Mapped[str | None] = mapped_column(ForeignKey("operators.id"), index=True)
    # Who, as a person reads it: the operator's email, or "cli" for an unnamed command.
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40))  # e.g. "payment.resolve", "merchant.rotate_key"
    target_type: Mapped[str | None] = mapped_column(String(20))
    target_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))  # "cli", or the console client's address
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
