from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, false
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the API key. Keys are 32 random bytes, so a fast hash is safe (nothing to
    # brute-force) and lets a request find its merchant with one indexed lookup.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str] = mapped_column(String(16))
    callback_url: Mapped[str] = mapped_column(String(2048))
    # Needed in clear to sign events (Standard Webhooks is symmetric).
    webhook_secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # SMS receipts to payers (app.sms): off unless the merchant asks. A template of None is the
    # default one. Only payments that succeed after ``sms_receipts_since`` (when they were last
    # switched on) get one, so switching on never texts about old payments.
    sms_receipts: Mapped[bool] = mapped_column(default=False, server_default=false())
    sms_template: Mapped[str | None] = mapped_column(String(160))
    sms_receipts_since: Mapped[datetime | None]
    # Operators' switches (app.merchants.admin). A disabled merchant's key is refused
    # (merchant_disabled); its payments still settle and its events wait.
    disabled_at: Mapped[datetime | None]
    # After a rotation the previous key and secret keep working until these times.
    previous_api_key_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_key_expires_at: Mapped[datetime | None]
    previous_webhook_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None]
