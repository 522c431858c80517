"""The callback inbox: every provider callback as received, and the dedupe key that makes a
repeat harmless."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import autocommit, insert_with_named_params, utcnow
from app.vocabulary import Provider
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


def dedupe_key(provider: Provider, subject_id: str, raw_body: bytes) -> str:
    """One key per (provider, payment or refund id, body): the same callback twice is a repeat."""
    return f"{provider.value}:{subject_id}:{hashlib.sha256(raw_body).hexdigest()}"


_CALLBACKS: Table = ProviderCallback.__table__  # type: ignore[assignment]
# Built once, so it is compiled once; one autocommitted round trip per callback.
_RECORD = insert_with_named_params(
    _CALLBACKS,
    (
        "provider",
        "payment_id",
        "refund_id",
        "dedupe_key",
        "raw_body",
        "headers",
        "source_ip",
        "outcome",
        "received_at",
    ),
    "callback",
).returning(_CALLBACKS.c.id)


class Inbox:
    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._autocommit_engine = autocommit(engine)
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
        refund_id: str | None = None,
        key: str | None = None,
    ) -> int | None:
        """Store one callback. With ``key``, returns None if that key is already taken
        (a repeat); the repeat is then stored without the key, as a duplicate."""
        values = {
            "callback_provider": provider.value,
            "callback_payment_id": payment_id,
            "callback_refund_id": refund_id,
            "callback_dedupe_key": key,
            "callback_raw_body": raw_body,
            "callback_headers": headers_of_interest(headers),
            "callback_source_ip": source_ip,
            "callback_outcome": outcome,
            "callback_received_at": utcnow(),
        }
        try:
            async with self._autocommit_engine.connect() as connection:
                callback_id: int = (await connection.execute(_RECORD, values)).scalar_one()
                return callback_id
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
            refund_id=refund_id,
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
