from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class SaleorInstallation(Base):
    """One Saleor instance that installed the app, and the merchant its payments belong to."""

    __tablename__ = "saleor_installations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Saleor's GraphQL endpoint, as its Saleor-Api-Url header names it: the installation's key.
    saleor_api_url: Mapped[str] = mapped_column(String(2048), unique=True)
    app_id: Mapped[str] = mapped_column(String(255))
    # The app's Saleor token, encrypted with SALEOR_APP_TOKEN_KEY (app.saleor.tokens); its
    # SHA-256 tells a replayed install (the same token again) apart from a new one.
    app_token_encrypted: Mapped[str] = mapped_column(Text)
    app_token_sha256: Mapped[str] = mapped_column(String(64))
    jwks: Mapped[dict[str, Any]]
    jwks_fetched_at: Mapped[datetime]
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), unique=True)
    installed_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
