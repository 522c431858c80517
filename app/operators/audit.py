"""The operator audit log: written once per action, in the action's own transaction, and read.

There is deliberately no function to change or remove an entry (PostgreSQL refuses it too).
An entry's ``detail`` says what changed in words and numbers, never a secret: a password, a
password hash, an API key or a webhook secret in it is refused before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.db import utcnow
from app.operators.models import Operator, OperatorAction

__all__ = ["MAX_LIST_LIMIT", "SecretInAuditDetail", "list_actions", "record_action"]

MAX_LIST_LIMIT = 1000

_ACTIONS: Table = OperatorAction.__table__  # type: ignore[assignment]
# Built once, so SQLAlchemy compiles it once; RETURNING works on PostgreSQL and SQLite alike.
_INSERT_ACTION = _ACTIONS.insert().returning(_ACTIONS.c.id)

# Names of things that must never be written down, whatever their value.
_SECRET_NAME = re.compile(
    r"(?i)^(?:.*_)?(?:password|password_hash|secret|webhook_secret|api_key|api_key_hash|"
    r"key_hash|token|access_token|client_secret)$"
)


class SecretInAuditDetail(ValueError):
    """An audit ``detail`` that holds (or is named like) a secret: a bug in the caller."""


def _looks_secret(value: str) -> bool:
    # Merchant keys are "mgw_" + 43 characters; their 12-character prefix is not a secret.
    return value.startswith(("whsec_", "$argon2")) or (value.startswith("mgw_") and len(value) > 16)


def _check_detail(detail: Any, path: str = "detail") -> None:
    if isinstance(detail, Mapping):
        for name, value in detail.items():
            if not isinstance(name, str):
                raise SecretInAuditDetail(f"{path} keys must be strings")
            if _SECRET_NAME.match(name):
                raise SecretInAuditDetail(f"{path}.{name}: secrets are never audited")
            _check_detail(value, f"{path}.{name}")
    elif isinstance(detail, list | tuple):
        for index, value in enumerate(detail):
            _check_detail(value, f"{path}.{index}")
    elif isinstance(detail, str) and _looks_secret(detail):
        raise SecretInAuditDetail(f"{path}: secrets are never audited")


async def record_action(
    connection_or_session: AsyncConnection | AsyncSession,
    *,
    operator: Operator | None,
    actor: str,
    action: str,
    target_type: str | None,
    target_id: str | None,
    source: str,
    detail: Mapping[str, Any],
) -> int:
    """Write one audit entry on the caller's transaction and return its id.

    Takes a session (the admin services) or a connection (a resolution writing its status
    change, event and audit entry on one connection); either way the entry commits or vanishes
    with the change it records. ``operator``: the person who acted (None for an unnamed CLI
    command); ``actor``: who, as a person reads it (their email, or "cli"); ``source``: "cli" or
    the console client's address. ``detail`` must be JSON and hold no secret
    (SecretInAuditDetail).
    """
    _check_detail(detail)
    params = {
        "at": utcnow(),
        "operator_id": operator.id if operator is not None else None,
        "actor": actor[:254],
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "source": source[:64],
        "detail": dict(detail),
    }
    if isinstance(connection_or_session, AsyncSession):
        await connection_or_session.flush()  # rows it refers to (a new operator) go first
    result = await connection_or_session.execute(_INSERT_ACTION, params)
    return int(result.scalar_one())


async def list_actions(
    sessions: async_sessionmaker[AsyncSession],
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = 100,
) -> Sequence[OperatorAction]:
    """Audit entries, newest first, optionally about one kind of object or one object."""
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    query = select(OperatorAction)
    if target_type is not None:
        query = query.where(OperatorAction.target_type == target_type)
    if target_id is not None:
        query = query.where(OperatorAction.target_id == target_id)
    query = query.order_by(OperatorAction.id.desc()).limit(limit)
    async with sessions() as session:
        return (await session.scalars(query)).all()
