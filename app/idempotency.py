"""Idempotency-Key storage (Stripe / IETF draft semantics), kept in the database.

A key is claimed by inserting its row before the request runs; the unique constraint decides
between two concurrent requests with one key. The finished response is stored on the row and
replayed byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow
from app.payments.models import AutoId

# A claim older than this whose request never finished (the process died) may be taken over.
# Longer than the slowest possible request: three provider attempts with 30 s read timeouts.
STALE_CLAIM_AFTER = timedelta(minutes=5)
KEEP_FOR = timedelta(hours=24)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("merchant_id", "key", name="uq_idempotency_merchant_key"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_at: Mapped[datetime | None]


def request_fingerprint(method: str, path: str, payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # run the request, then store its response
    REPLAY = "replay"  # same request already answered: send the stored response
    MISMATCH = "mismatch"  # key reused with another request
    IN_PROGRESS = "in_progress"  # the first request with this key is still running


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    status_code: int | None = None
    body: str | None = None


class IdempotencyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim(self, merchant_id: str, key: str, fingerprint: str) -> Claim:
        now = utcnow()
        try:
            async with self._sessions.begin() as session:
                session.add(
                    IdempotencyRecord(
                        merchant_id=merchant_id,
                        key=key,
                        request_hash=fingerprint,
                        locked_at=now,
                        created_at=now,
                    )
                )
            return Claim(ClaimState.CLAIMED)
        except IntegrityError:
            pass
        async with self._sessions.begin() as session:
            record = await _find(session, merchant_id, key)
            if record is None:  # expired and purged between our insert and this read
                return await self.claim(merchant_id, key, fingerprint)
            if record.request_hash != fingerprint:
                return Claim(ClaimState.MISMATCH)
            if record.response_status is not None:
                return Claim(ClaimState.REPLAY, record.response_status, record.response_body)
            if record.locked_at is not None and now - record.locked_at > STALE_CLAIM_AFTER:
                # Take over an abandoned claim, atomically so only one taker wins.
                taken = await session.execute(
                    update(IdempotencyRecord)
                    .where(
                        IdempotencyRecord.id == record.id,
                        IdempotencyRecord.locked_at == record.locked_at,
                        IdempotencyRecord.response_status.is_(None),
                    )
                    .values(locked_at=now)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    return Claim(ClaimState.CLAIMED)
            return Claim(ClaimState.IN_PROGRESS)

    async def complete(self, merchant_id: str, key: str, status_code: int, body: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
                .values(response_status=status_code, response_body=body, locked_at=None)
            )

    async def release(self, merchant_id: str, key: str) -> None:
        """Forget a claim whose request failed unexpectedly, so the client may retry."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.merchant_id == merchant_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.response_status.is_(None),
                )
            )

    async def purge_expired(self) -> int:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP_FOR)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]


async def _find(session: AsyncSession, merchant_id: str, key: str) -> IdempotencyRecord | None:
    result = await session.execute(
        select(IdempotencyRecord).where(
            IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key
        )
    )
    return result.scalar_one_or_none()
