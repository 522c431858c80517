"""Keyset pagination, newest first, shared by every list endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.errors import AppError


class Listed(Protocol):
    id: Any
    created_at: Any


Row = TypeVar("Row", bound=Listed)


async def cursor_row(
    starting_after: str | None, find: Callable[[str], Awaitable[Row | None]]
) -> Row | None:
    """The row a ``starting_after`` cursor names (``find`` looks among the caller's own rows),
    or None for the first page. A cursor that names nothing is the client's mistake: 400."""
    if starting_after is None:
        return None
    row = await find(starting_after)
    if row is None:
        raise AppError(400, "invalid_cursor", f"starting_after {starting_after!r} is unknown")
    return row


async def newest_first_page(
    session: AsyncSession,
    query: Select[Row],
    *,
    id_column: InstrumentedAttribute[str],
    created_column: InstrumentedAttribute[datetime],
    after: Listed | None,
    limit: int,
) -> tuple[Sequence[Row], bool]:
    """One page of ``query`` ordered by (created_at, id) descending, starting after ``after``
    (the last row of the previous page); ``has_more`` says whether another page follows."""
    if after is not None:
        query = query.where(
            or_(
                created_column < after.created_at,
                and_(created_column == after.created_at, id_column < after.id),
            )
        )
    ordered = query.order_by(created_column.desc(), id_column.desc()).limit(limit + 1)
    rows = (await session.scalars(ordered)).all()
    return rows[:limit], len(rows) > limit
