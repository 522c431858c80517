"""Secrets the service generates for itself and keeps in the database, so that every process
and every restart agrees on them (e.g. the key of the MTN callback tokens)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ServerSecret(Base):
    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


async def get_or_create_secret(sessions: async_sessionmaker[AsyncSession], name: str) -> str:
    async with sessions() as session:
        existing = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
        if existing is not None:
            return existing
    try:
        async with sessions.begin() as session:
            session.add(ServerSecret(name=name, value=secrets.token_urlsafe(32)))
    except IntegrityError:
        pass  # another process created it first: use theirs
    async with sessions() as session:
        value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
        assert value is not None
        return value
