"""Console login sessions: one row per signed-in browser, found by the hash of its cookie."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ConsoleSession(Base):
    """A browser signed in as an operator. The cookie holds a random token; the row holds only
    its SHA-256, so a copy of the table logs nobody in. Deleted at logout; past its idle or
    absolute limit it is refused (and deleted when next seen)."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token), hex
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id"), index=True)
    # The synchroniser token every form of this session carries.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    address: Mapped[str] = mapped_column(String(64))
