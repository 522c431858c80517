"""Idempotency-Key storage (Stripe / IETF draft semantics), kept in the database.

A key is claimed by inserting its row in the same transaction as the payment it creates (so
nothing is claimed for a request refused before it did anything); the unique constraint decides
between two concurrent requests with one key. The finished response is stored on the row, in
the transaction that records the payment's outcome, and replayed byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AutoId, Base, BoundWrite, insert_with_named_params, utcnow

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


_RECORDS: Table = IdempotencyRecord.__table__  # type: ignore[assignment]
# Built once (compiled and cached once): they run on every keyed payment.
_INSERT_CLAIM = insert_with_named_params(
    _RECORDS, ("merchant_id", "key", "request_hash", "locked_at", "created_at"), "claim"
)
_STORE_RESPONSE = _RECORDS.update().where(
    _RECORDS.c.merchant_id == bindparam("where_merchant_id"),
    _RECORDS.c.key == bindparam("where_key"),
)


def request_fingerprint(method: str, path: str, payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # nobody holds the key (any more): run the request and claim it
    TAKEN_OVER = "taken_over"  # we now hold an abandoned claim: run without claiming again
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

    @staticmethod
    def claim(merchant_id: str, key: str, fingerprint: str) -> BoundWrite:
        """The INSERT that claims ``key``, for the caller to commit with the payment it writes;
        a taken key makes it raise IntegrityError."""
        now = utcnow()
        return BoundWrite(
            _INSERT_CLAIM,
            {
                "claim_merchant_id": merchant_id,
                "claim_key": key,
                "claim_request_hash": fingerprint,
                "claim_locked_at": now,
                "claim_created_at": now,
            },
        )

    async def resolve(self, merchant_id: str, key: str, fingerprint: str) -> Claim:
        """What to do with a request whose key is already taken."""
        now = utcnow()
        async with self._sessions.begin() as session:
            record = await _find(session, merchant_id, key)
            if record is None:  # purged, or its request failed and released it: run it
                return Claim(ClaimState.CLAIMED)
            if record.request_hash != fingerprint:
                return Claim(ClaimState.MISMATCH)
            if record.response_status is not None:
                return Claim(ClaimState.REPLAY, record.response_status, record.response_body)
            stale_before = now - STALE_CLAIM_AFTER
            if record.locked_at is not None and record.locked_at < stale_before:
                # Take over an abandoned claim; the condition lets only one taker win.
                taken = await session.execute(
                    update(IdempotencyRecord)
                    .where(
                        IdempotencyRecord.id == record.id,
                        IdempotencyRecord.locked_at < stale_before,
                        IdempotencyRecord.response_status.is_(None),
                    )
                    .values(locked_at=now)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    return Claim(ClaimState.TAKEN_OVER)
            return Claim(ClaimState.IN_PROGRESS)

    @staticmethod
    def store_response(merchant_id: str, key: str, status_code: int, body: str) -> BoundWrite:
        """The UPDATE that stores the response, for the caller to commit with the payment's
        outcome."""
        return BoundWrite(
            _STORE_RESPONSE,
            {
                "where_merchant_id": merchant_id,
                "where_key": key,
                "response_status": status_code,
                "response_body": body,
                "locked_at": None,
            },
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
