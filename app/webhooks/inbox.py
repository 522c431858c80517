"""The callback inbox: every provider callback as received, and the dedupe key that makes a
repeat harmless."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.payments.domain import Provider
from app.webhooks.models import ProviderCallback

# Headers worth keeping for an investigation. Signatures are noted as present, never stored.
_KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "x-request-id")
_PRESENCE_ONLY = ("x-signature", "authorization")


def headers_of_interest(headers: Mapping[str, str]) -> dict[str, Any]:
    kept: dict[str, Any] = {name: headers[name][:256] for name in _KEPT_HEADERS if name in headers}
    for name in _PRESENCE_ONLY:
        if name in headers:
            kept[name] = "present"
    return kept


def dedupe_key(provider: Provider, payment_id: str, raw_body: bytes) -> str:
    return f"{provider.value}:{payment_id}:{hashlib.sha256(raw_body).hexdigest()}"


class Inbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(
        self,
        *,
        provider: Provider,
        raw_body: bytes,
        headers: Mapping[str, str],
        source_ip: str | None,
        outcome: str,
        payment_id: str | None = None,
        key: str | None = None,
    ) -> int | None:
        """Store one callback. With ``key``, returns None if that key is already taken
        (a repeat); the repeat is then stored without the key, as a duplicate."""
        row = ProviderCallback(
            provider=provider.value,
            payment_id=payment_id,
            dedupe_key=key,
            raw_body=raw_body,
            headers=headers_of_interest(headers),
            source_ip=source_ip,
            outcome=outcome,
            received_at=utcnow(),
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                return row.id
        except IntegrityError:
            if key is None:
                raise
        await self.record(
            provider=provider,
            raw_body=raw_body,
            headers=headers,
            source_ip=source_ip,
            outcome="duplicate",
            payment_id=payment_id,
        )
        return None

    async def set_outcome(
        self, callback_id: int, outcome: str, *, release_key: bool = False
    ) -> None:
        values: dict[str, Any] = {"outcome": outcome}
        if release_key:
            # The provider could not be asked: let a repeat of this callback try again.
            values["dedupe_key"] = None
        async with self._sessions.begin() as session:
            await session.execute(
                update(ProviderCallback).where(ProviderCallback.id == callback_id).values(**values)
            )
