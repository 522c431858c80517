"""Signing in and out of the console, and the limits on a session and on failed logins.

A session lives in ``console_sessions`` (not in a signed cookie) so that logging out, or
disabling an operator, ends it at once everywhere. Failed logins are read back from the
operator audit log, which records every login attempt anyway: no second store to keep.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.console.models import ConsoleSession
from app.db import utcnow
from app.operators.audit import record_action
from app.operators.models import Operator, OperatorAction

IDLE_LIMIT: Final = timedelta(minutes=30)
ABSOLUTE_LIMIT: Final = timedelta(hours=12)
# Five failed logins for one account within 15 minutes lock it for 15 minutes.
LOCKOUT_FAILURES: Final = 5
LOCKOUT_WINDOW: Final = timedelta(minutes=15)
LOCKOUT_FOR: Final = timedelta(minutes=15)
# Writing ``last_seen_at`` on every page view would be a write per click for nothing.
_TOUCH_AFTER: Final = timedelta(minutes=1)

LOGIN: Final = "console.login"
LOGIN_FAILED: Final = "console.login_failed"
LOGIN_LOCKED: Final = "console.login_locked"
LOGOUT: Final = "console.logout"


@dataclass(frozen=True)
class SignedIn:
    """A live session and its operator."""

    session: ConsoleSession
    operator: Operator


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(
    sessions: async_sessionmaker[AsyncSession], operator: Operator, address: str
) -> tuple[str, ConsoleSession]:
    """A new session for ``operator`` and its cookie token (shown to the browser only), with
    the login in the audit log, in one transaction."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = ConsoleSession(
        id=_digest(token),
        operator_id=operator.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        address=address[:64],
    )
    async with sessions.begin() as session:
        session.add(row)
        await record_action(
            session,
            operator=operator,
            actor=operator.email,
            action=LOGIN,
            target_type="operator",
            target_id=operator.id,
            source=address,
            detail={},
        )
    return token, row


async def signed_in(
    sessions: async_sessionmaker[AsyncSession], token: str | None, *, now: datetime | None = None
) -> SignedIn | None:
    """The session behind a cookie token, or None when there is none, it is past its idle or
    absolute limit, or its operator was disabled since."""
    if not token or len(token) > 200:
        return None
    now = now or utcnow()
    digest = _digest(token)
    async with sessions() as session:
        found = (
            await session.execute(
                select(ConsoleSession, Operator)
                .join(Operator, Operator.id == ConsoleSession.operator_id)
                .where(ConsoleSession.id == digest)
            )
        ).first()
    if found is None:
        return None
    row, operator = found
    expired = now - row.last_seen_at > IDLE_LIMIT or now - row.created_at > ABSOLUTE_LIMIT
    if expired or operator.disabled_at is not None:
        await _delete(sessions, digest)
        return None
    if now - row.last_seen_at > _TOUCH_AFTER:
        async with sessions.begin() as session:
            stored = await session.get(ConsoleSession, digest)
            if stored is not None:
                stored.last_seen_at = now
        row.last_seen_at = now
    return SignedIn(session=row, operator=operator)


async def end_session(
    sessions: async_sessionmaker[AsyncSession], signed: SignedIn, address: str
) -> None:
    async with sessions.begin() as session:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.id == signed.session.id))
        await record_action(
            session,
            operator=signed.operator,
            actor=signed.operator.email,
            action=LOGOUT,
            target_type="operator",
            target_id=signed.operator.id,
            source=address,
            detail={},
        )


async def _delete(sessions: async_sessionmaker[AsyncSession], digest: str) -> None:
    async with sessions.begin() as session:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.id == digest))


async def record_failed_login(
    sessions: async_sessionmaker[AsyncSession],
    email: str,
    address: str,
    *,
    locked: bool = False,
) -> None:
    """A refused login, under the email that was typed (normalised by the caller)."""
    async with sessions.begin() as session:
        await record_action(
            session,
            operator=None,
            actor=email,
            action=LOGIN_LOCKED if locked else LOGIN_FAILED,
            target_type="operator",
            target_id=None,
            source=address,
            detail={},
        )


async def locked_until(
    sessions: async_sessionmaker[AsyncSession], email: str, *, now: datetime | None = None
) -> datetime | None:
    """When the lock on ``email`` ends, if it is locked: the 5th failure within 15 minutes
    locks the account for 15 minutes from that failure."""
    now = now or utcnow()
    since = now - LOCKOUT_WINDOW - LOCKOUT_FOR
    async with sessions() as session:
        failures = (
            await session.scalars(
                select(OperatorAction.at)
                .where(
                    OperatorAction.at >= since,
                    OperatorAction.action == LOGIN_FAILED,
                    OperatorAction.actor == email,
                )
                .order_by(OperatorAction.at)
            )
        ).all()
    lock_ends = None
    for index in range(LOCKOUT_FAILURES - 1, len(failures)):
        if failures[index] - failures[index - LOCKOUT_FAILURES + 1] <= LOCKOUT_WINDOW:
            lock_ends = failures[index] + LOCKOUT_FOR
    return lock_ends if lock_ends is not None and lock_ends > now else None
