"""Every query on refunds, and the refund's side of the payment row (its lock and its total)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.pagination import newest_first_page
from app.payments.domain import ABANDONED_INITIATION_AFTER, Actor, PaymentStatus
from app.payments.models import Payment
from app.payments.repository import payment_from_row
from app.refunds.domain import HOLDING_STATUSES, RefundStatus
from app.refunds.models import Refund, RefundTransition

REFUNDS: Table = Refund.__table__  # type: ignore[assignment]
TRANSITIONS: Table = RefundTransition.__table__  # type: ignore[assignment]
PAYMENTS: Table = Payment.__table__  # type: ignore[assignment]

_HOLDING = [status.value for status in HOLDING_STATUSES]


def refund_from_row(row: Row[Any]) -> Refund:
    values = dict(row._mapping)
    values["refund_metadata"] = values.pop("metadata")
    return Refund(**values)


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute names to column names (``refund_metadata`` is the column ``metadata``)."""
    return {
        ("metadata" if key == "refund_metadata" else key): value for key, value in values.items()
    }


# --- the payment, under the refund's lock -------------------------------------------------------


async def lock_refundable_payment(
    connection: AsyncConnection, merchant_id: str, payment_id: str
) -> Payment | None:
    """Lock a successful payment against concurrent refunds until the transaction ends, and
    return it; None when it is not (or no longer) successful.

    A no-op UPDATE rather than SELECT … FOR UPDATE: on PostgreSQL it takes the row lock, on
    SQLite the database's write lock, so on both two refunds of one payment are decided one after
    the other, each seeing the other's committed row. It must be the transaction's first
    statement (SQLite cannot upgrade a read snapshot to a write).
    """
    result = await connection.execute(
        update(PAYMENTS)
        .where(
            PAYMENTS.c.id == payment_id,
            PAYMENTS.c.merchant_id == merchant_id,
            PAYMENTS.c.status == PaymentStatus.SUCCESSFUL.value,
        )
        .values(amount_refunded_minor=PAYMENTS.c.amount_refunded_minor)
        .returning(*PAYMENTS.c)
    )
    row = result.first()
    return None if row is None else payment_from_row(row)


async def held_amount(connection: AsyncConnection, payment_id: str) -> tuple[int, int]:
    """``(sum, count)`` of the payment's refunds that hold money: pending, succeeded and
    needs_review (a failed refund gave nothing back and holds nothing)."""
    row = (
        await connection.execute(
            select(func.coalesce(func.sum(REFUNDS.c.amount_minor), 0), func.count()).where(
                REFUNDS.c.payment_id == payment_id, REFUNDS.c.status.in_(_HOLDING)
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def recount_refunded(connection: AsyncConnection, payment_id: str) -> None:
    """Set the payment's ``amount_refunded_minor`` to the sum of its succeeded refunds, in the
    transaction that changed one of them.

    The payment row is locked first, in a statement of its own: two refunds of one payment
    settling at once then count one after the other, and the second count (a new statement, so
    a new snapshot under READ COMMITTED) sees the first one's committed refund. Counting in the
    UPDATE alone would read a snapshot taken before the other commit, and lose it.
    """
    await connection.execute(
        select(PAYMENTS.c.id).where(PAYMENTS.c.id == payment_id).with_for_update()
    )
    succeeded = (
        select(func.coalesce(func.sum(REFUNDS.c.amount_minor), 0))
        .where(
            REFUNDS.c.payment_id == payment_id,
            REFUNDS.c.status == RefundStatus.SUCCEEDED.value,
        )
        .scalar_subquery()
    )
    await connection.execute(
        update(PAYMENTS).where(PAYMENTS.c.id == payment_id).values(amount_refunded_minor=succeeded)
    )


async def set_payment_transaction_id(
    connection: AsyncConnection, payment_id: str, transaction_id: str
) -> None:
    """Fill in a payment's provider transaction id if it has none yet."""
    await connection.execute(
        update(PAYMENTS)
        .where(PAYMENTS.c.id == payment_id, PAYMENTS.c.provider_transaction_id.is_(None))
        .values(provider_transaction_id=transaction_id)
    )


# --- writes ---------------------------------------------------------------------------------------


async def insert_refund(connection: AsyncConnection, refund: Refund) -> None:
    values = {column.key: getattr(refund, _attribute(column.key)) for column in REFUNDS.c}
    await connection.execute(REFUNDS.insert(), values)


def _attribute(column: str) -> str:
    return "refund_metadata" if column == "metadata" else column


async def insert_transition(
    connection: AsyncConnection,
    *,
    refund_id: str,
    from_status: RefundStatus | None,
    to_status: RefundStatus,
    actor: str,
    detail: str | None,
    at: datetime,
    operator_id: str | None = None,
) -> None:
    await connection.execute(
        TRANSITIONS.insert(),
        {
            "refund_id": refund_id,
            "from_status": from_status.value if from_status else None,
            "to_status": to_status.value,
            "actor": actor,
            "operator_id": operator_id,
            "detail": detail[:255] if detail else None,
            "created_at": at,
        },
    )


async def conditional_update(
    connection: AsyncConnection,
    refund_id: str,
    from_status: RefundStatus,
    values: Mapping[str, Any],
) -> Refund | None:
    """``UPDATE … WHERE status = from_status RETURNING …``: exactly one concurrent writer wins."""
    result = await connection.execute(
        update(REFUNDS)
        .where(REFUNDS.c.id == refund_id, REFUNDS.c.status == from_status.value)
        .values(**_columns(values))
        .returning(*REFUNDS.c)
    )
    row = result.first()
    return None if row is None else refund_from_row(row)


async def update_returning(
    connection: AsyncConnection, refund_id: str, values: Mapping[str, Any]
) -> Refund:
    result = await connection.execute(
        update(REFUNDS)
        .where(REFUNDS.c.id == refund_id)
        .values(**_columns(values))
        .returning(*REFUNDS.c)
    )
    return refund_from_row(result.one())


# --- reads ----------------------------------------------------------------------------------------


async def resolved_by_operator(session: AsyncSession, refund_id: str) -> bool:
    """Whether a person settled this refund (an audit row with an operator as actor)."""
    found = await session.execute(
        select(TRANSITIONS.c.id)
        .where(TRANSITIONS.c.refund_id == refund_id, TRANSITIONS.c.actor == Actor.OPERATOR.value)
        .limit(1)
    )
    return found.first() is not None


async def get(session: AsyncSession, refund_id: str) -> Refund | None:
    return await session.get(Refund, refund_id)


async def get_for_merchant(
    session: AsyncSession, merchant_id: str, refund_id: str
) -> Refund | None:
    return await session.scalar(
        select(Refund).where(Refund.id == refund_id, Refund.merchant_id == merchant_id)
    )


async def get_by_provider_reference(
    session: AsyncSession, provider: str, reference: str
) -> Refund | None:
    return await session.scalar(
        select(Refund).where(Refund.provider_reference == reference, Refund.provider == provider)
    )


async def for_payment(session: AsyncSession, payment_id: str) -> Sequence[Refund]:
    """A payment's refunds, oldest first."""
    return (
        await session.scalars(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.created_at)
        )
    ).all()


async def list_page(
    session: AsyncSession,
    merchant_id: str,
    *,
    limit: int,
    payment_id: str | None = None,
    status: RefundStatus | None = None,
    after: Refund | None = None,
) -> tuple[Sequence[Refund], bool]:
    query = select(Refund).where(Refund.merchant_id == merchant_id)
    if payment_id is not None:
        query = query.where(Refund.payment_id == payment_id)
    if status is not None:
        query = query.where(Refund.status == status.value)
    return await newest_first_page(
        session,
        query,
        id_column=Refund.id,
        created_column=Refund.created_at,
        after=after,
        limit=limit,
    )


# --- the reconciler's claims ------------------------------------------------------------------


async def claim_due(
    session: AsyncSession, *, limit: int, due_by: datetime, now: datetime
) -> Sequence[Refund]:
    """Claim up to ``limit`` pending refunds whose check was due by ``due_by`` (or whose refund
    call was abandoned by a process that died during it), counting the check; SKIP LOCKED on
    PostgreSQL so concurrent reconcilers take disjoint sets. The caller moves each one's
    ``next_check_at`` forward in the same transaction."""
    due = (
        select(Refund.id)
        .where(
            Refund.status == RefundStatus.PENDING.value,
            or_(
                and_(
                    Refund.initiation_finished_at.is_not(None),
                    Refund.next_check_at <= due_by,
                ),
                and_(
                    Refund.initiation_finished_at.is_(None),
                    Refund.created_at <= now - ABANDONED_INITIATION_AFTER,
                    or_(Refund.next_check_at.is_(None), Refund.next_check_at <= due_by),
                ),
            ),
        )
        .order_by(Refund.next_check_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed_ids = (
        await session.scalars(
            update(Refund)
            .where(Refund.id.in_(due.scalar_subquery()))
            .values(check_count=Refund.check_count + 1)
            .returning(Refund.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not claimed_ids:
        return []
    return (await session.scalars(select(Refund).where(Refund.id.in_(claimed_ids)))).all()


async def schedule_next_checks(session: AsyncSession, next_checks: Mapping[str, datetime]) -> None:
    if not next_checks:
        return
    await session.execute(
        update(Refund).execution_options(synchronize_session=False),
        [{"id": refund_id, "next_check_at": at} for refund_id, at in next_checks.items()],
    )


async def check_soon(session: AsyncSession, refund_id: str, at: datetime) -> None:
    await session.execute(
        update(Refund)
        .where(Refund.id == refund_id)
        .values(next_check_at=at)
        .execution_options(synchronize_session=False)
    )


async def pending_count(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(Refund.status == RefundStatus.PENDING.value)
        )
        or 0
    )
