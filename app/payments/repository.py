"""Every query on payments lives here.

Reads go through the ORM session. The writes on the hot path (creating a payment, recording
its initiation, changing its status) are Core statements on a connection: the ORM's unit of
work, identity map and per-statement compilation were most of a payment's CPU time. The
statements are built once, at import, so SQLAlchemy compiles and caches each of them once. On
PostgreSQL a payment's two writes (``insert_all_at_once``, ``finish_initiation_if_pending``) go
further and run straight on the asyncpg connection (``app.db.execute_on_driver``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Insert,
    Row,
    Table,
    Update,
    and_,
    bindparam,
    exists,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.db import BoundWrite, execute_on_driver, insert_with_named_params
from app.pagination import newest_first_page
from app.payments.domain import (
    ABANDONED_INITIATION_AFTER,
    ORDER_BLOCKING_STATUSES,
    Actor,
    PaymentStatus,
)
from app.payments.models import Payment, PaymentTransition
from app.vocabulary import Provider

PAYMENTS: Table = Payment.__table__  # type: ignore[assignment]
TRANSITIONS: Table = PaymentTransition.__table__  # type: ignore[assignment]

# ORM attribute name for each column key (``payment_metadata`` is the column ``metadata``).
_ATTRIBUTE_FOR_COLUMN: dict[str, str] = {
    column.key: attribute.key
    for attribute in inspect(Payment).column_attrs
    for column in attribute.columns
}
_COLUMN_FOR_ATTRIBUTE = {attribute: column for column, attribute in _ATTRIBUTE_FOR_COLUMN.items()}

_INSERT_PAYMENT = insert_with_named_params(PAYMENTS, list(_ATTRIBUTE_FOR_COLUMN), "payment")
_AUDIT_COLUMNS = (
    "payment_id",
    "from_status",
    "to_status",
    "actor",
    "operator_id",
    "detail",
    "created_at",
)
_INSERT_TRANSITION = insert_with_named_params(TRANSITIONS, _AUDIT_COLUMNS, "audit")
# Bound parameter names must differ from column names: the other keys become the SET clause.
_UPDATE_RETURNING = (
    PAYMENTS.update().where(PAYMENTS.c.id == bindparam("where_id")).returning(*PAYMENTS.c)
)
_CONDITIONAL_UPDATE_RETURNING = (
    PAYMENTS.update()
    .where(PAYMENTS.c.id == bindparam("where_id"), PAYMENTS.c.status == bindparam("where_status"))
    .returning(*PAYMENTS.c)
)


# Recording that the request-to-pay is over, if nothing changed the payment meanwhile.
_FINISH_IF_PENDING = (
    PAYMENTS.update()
    .where(PAYMENTS.c.id == bindparam("where_id"), PAYMENTS.c.status == bindparam("where_status"))
    .values(
        initiation_finished_at=bindparam("finish_initiation_finished_at"),
        next_check_at=bindparam("finish_next_check_at"),
    )
)
_FINISHED_FIELDS = frozenset({"initiation_finished_at", "next_check_at"})


def payment_from_row(row: Row[Any]) -> Payment:
    """A detached ``Payment`` holding a row read with Core."""
    return Payment(**{_ATTRIBUTE_FOR_COLUMN[key]: value for key, value in row._mapping.items()})


def _column_values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {_COLUMN_FOR_ATTRIBUTE[name]: value for name, value in values.items()}


def _payment_values(payment: Payment) -> dict[str, Any]:
    columns = _ATTRIBUTE_FOR_COLUMN.items()
    return {f"payment_{column}": getattr(payment, attribute) for column, attribute in columns}


def transition_values(
    *,
    payment_id: str,
    from_status: PaymentStatus | None,
    to_status: PaymentStatus,
    actor: str,
    detail: str | None,
    at: datetime,
    operator_id: str | None = None,
) -> dict[str, Any]:
    """The parameters of an audit row's INSERT."""
    return {
        "audit_payment_id": payment_id,
        "audit_from_status": from_status.value if from_status else None,
        "audit_to_status": to_status.value,
        "audit_actor": actor,
        "audit_operator_id": operator_id,
        "audit_detail": detail[:255] if detail else None,
        "audit_created_at": at,
    }


async def insert_payment(connection: AsyncConnection, payment: Payment) -> None:
    await connection.execute(_INSERT_PAYMENT, _payment_values(payment))


async def insert_transition(connection: AsyncConnection, values: Mapping[str, Any]) -> None:
    await connection.execute(_INSERT_TRANSITION, values)


async def insert_all_at_once(
    engine: AsyncEngine,
    payment: Payment,
    audit: Mapping[str, Any],
    also: BoundWrite | None,
) -> None:
    """PostgreSQL only: the new payment, its audit row and ``also`` (e.g. an idempotency claim)
    in one statement of data-modifying CTEs. Run outside an explicit transaction it is still
    atomic, and it costs one round trip instead of five (BEGIN, three INSERTs, COMMIT)."""
    params = {**_payment_values(payment), **audit, **(also.params if also else {})}
    await execute_on_driver(engine, _all_at_once(also.statement if also else None), params)


@functools.cache
def _all_at_once(also: Insert | None) -> Insert:
    # One statement object per kind of ``also`` (they are module constants), so each is
    # compiled once.
    statement = _INSERT_TRANSITION.add_cte(_INSERT_PAYMENT.cte("new_payment"))
    if also is not None:
        statement = statement.add_cte(also.cte("also"))
    return statement


async def update_returning(
    connection: AsyncConnection, payment_id: str, values: Mapping[str, Any]
) -> Payment:
    """Update and read back in one round trip."""
    result = await connection.execute(
        _UPDATE_RETURNING, {"where_id": payment_id, **_column_values(values)}
    )
    return payment_from_row(result.one())


async def finish_initiation_if_pending(
    engine: AsyncEngine,
    payment_id: str,
    finished: Mapping[str, Any],
    also: BoundWrite | None,
) -> bool:
    """PostgreSQL only: set ``finished`` (initiation_finished_at, next_check_at) on a payment
    still pending and, in the same statement and only then, run ``also`` (an UPDATE, e.g. the
    idempotency response). True if both happened; False if the payment had left pending (then
    nothing was written; ``also`` may also find no row, e.g. a purged key)."""
    if set(finished) != _FINISHED_FIELDS:
        raise ValueError(f"finished must set exactly {sorted(_FINISHED_FIELDS)}")
    params = {
        "where_id": payment_id,
        "where_status": PaymentStatus.PENDING.value,
        **{f"finish_{name}": value for name, value in finished.items()},
    }
    if also is None:
        changed = await execute_on_driver(engine, _FINISH_IF_PENDING, params)
    else:
        if not isinstance(also.statement, Update):
            raise TypeError("also must be an UPDATE")
        statement = _finish_then(also.statement)
        changed = await execute_on_driver(engine, statement, {**params, **also.params})
    return changed == 1


@functools.cache
def _finish_then(also: Update) -> Update:
    # ``also`` only touches its row if the payment's UPDATE did (it returns a row then).
    finished = _FINISH_IF_PENDING.returning(PAYMENTS.c.id).cte("finished")
    return also.where(exists(select(finished.c.id)))


async def conditional_update(
    connection: AsyncConnection,
    payment_id: str,
    from_status: PaymentStatus,
    values: Mapping[str, Any],
) -> Payment | None:
    """``UPDATE … WHERE status = from_status RETURNING …``: the database picks exactly one
    winner among concurrent writers. Returns the updated payment, or None if this one lost."""
    result = await connection.execute(
        _CONDITIONAL_UPDATE_RETURNING,
        {"where_id": payment_id, "where_status": from_status.value, **_column_values(values)},
    )
    row = result.first()
    return None if row is None else payment_from_row(row)


async def get_for_merchant(
    session: AsyncSession, merchant_id: str, payment_id: str
) -> Payment | None:
    return await session.scalar(
        select(Payment).where(Payment.id == payment_id, Payment.merchant_id == merchant_id)
    )


async def resolved_by_operator(session: AsyncSession, payment_id: str) -> bool:
    """Whether a person settled this payment (an audit row with an operator as actor)."""
    found = await session.execute(
        select(TRANSITIONS.c.id)
        .where(TRANSITIONS.c.payment_id == payment_id, TRANSITIONS.c.actor == Actor.OPERATOR.value)
        .limit(1)
    )
    return found.first() is not None


async def get(session: AsyncSession, payment_id: str) -> Payment | None:
    return await session.get(Payment, payment_id, populate_existing=True)


async def get_by_reference(session: AsyncSession, reference: str) -> Payment | None:
    return await session.scalar(select(Payment).where(Payment.provider_reference == reference))


async def get_by_provider_reference(
    session: AsyncSession, provider: Provider, reference: str
) -> Payment | None:
    """The payment ``provider`` knows as ``reference``; None if the reference is another
    provider's (a callback names only payments of its own network)."""
    payment = await get_by_reference(session, reference)
    if payment is None or payment.provider != provider.value:
        return None
    return payment


async def sole_payment_for_order(
    session: AsyncSession, provider: Provider, order_id: str
) -> Payment | None:
    """The payment of ``provider`` for ``order_id`` if there is exactly one (an order may have
    been retried after a failure: then the order alone does not say which payment is meant)."""
    candidates = (
        await session.scalars(
            select(Payment)
            .where(Payment.order_id == order_id, Payment.provider == provider.value)
            .order_by(Payment.created_at.desc())
            .limit(2)
        )
    ).all()
    return candidates[0] if len(candidates) == 1 else None


async def live_payment_for_order(
    session: AsyncSession, merchant_id: str, order_id: str
) -> Payment | None:
    return await session.scalar(
        select(Payment).where(
            Payment.merchant_id == merchant_id,
            Payment.order_id == order_id,
            Payment.status.in_([status.value for status in ORDER_BLOCKING_STATUSES]),
        )
    )


async def list_page(
    session: AsyncSession,
    merchant_id: str,
    *,
    limit: int,
    order_id: str | None = None,
    status: PaymentStatus | None = None,
    after: Payment | None = None,
) -> tuple[Sequence[Payment], bool]:
    """Newest first; ``after`` is the last payment of the previous page."""
    query = select(Payment).where(Payment.merchant_id == merchant_id)
    if order_id is not None:
        query = query.where(Payment.order_id == order_id)
    if status is not None:
        query = query.where(Payment.status == status.value)
    return await newest_first_page(
        session,
        query,
        id_column=Payment.id,
        created_column=Payment.created_at,
        after=after,
        limit=limit,
    )


async def update_fields(session: AsyncSession, payment_id: str, values: dict[str, Any]) -> None:
    await session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def waiting_counts(session: AsyncSession) -> dict[tuple[str, str], tuple[int, datetime]]:
    """(provider name, status) → (how many, the oldest one's ``created_at``) for the payments
    still waiting on someone: ``pending`` (the provider) and ``needs_review`` (an operator). A
    pair with none is absent. One grouped read, so the backlog gauges cost one query."""
    waiting = (PaymentStatus.PENDING.value, PaymentStatus.NEEDS_REVIEW.value)
    rows = await session.execute(
        select(Payment.provider, Payment.status, func.count(), func.min(Payment.created_at))
        .where(Payment.status.in_(waiting))
        .group_by(Payment.provider, Payment.status)
    )
    return {(provider, status): (count, oldest) for provider, status, count, oldest in rows}


# --- the reconciler's claims ---------------------------------------------------------------


async def claim_due(
    session: AsyncSession, *, limit: int, due_by: datetime, now: datetime
) -> Sequence[Payment]:
    """Claim up to ``limit`` pending payments whose check was due by ``due_by``, counting the
    check (``check_count`` + 1), and return them as they are now. A payment whose initiation
    never finished is due too once it is ``ABANDONED_INITIATION_AFTER`` old at ``now``.

    ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`` on PostgreSQL: concurrent
    claimers skip each other's rows instead of waiting, so they take disjoint sets. The caller
    must move each claimed payment's ``next_check_at`` forward (``schedule_next_checks``) in the
    same transaction, or the next claim takes it again.
    """
    due = (
        select(Payment.id)
        .where(
            Payment.status == PaymentStatus.PENDING.value,
            or_(
                and_(
                    Payment.initiation_finished_at.is_not(None),
                    Payment.next_check_at <= due_by,
                ),
                # Abandoned mid-initiation (the process died during the call): nobody else
                # will ever look at it.
                and_(
                    Payment.initiation_finished_at.is_(None),
                    Payment.created_at <= now - ABANDONED_INITIATION_AFTER,
                    or_(Payment.next_check_at.is_(None), Payment.next_check_at <= due_by),
                ),
            ),
        )
        .order_by(Payment.next_check_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed_ids = (
        await session.scalars(
            update(Payment)
            .where(Payment.id.in_(due.scalar_subquery()))
            .values(check_count=Payment.check_count + 1)
            .returning(Payment.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not claimed_ids:
        return []
    return (await session.scalars(select(Payment).where(Payment.id.in_(claimed_ids)))).all()


async def schedule_next_checks(session: AsyncSession, next_checks: Mapping[str, datetime]) -> None:
    """Set each payment's ``next_check_at`` (payment id to when)."""
    if not next_checks:
        return
    # One executemany, not a statement per payment.
    await session.execute(
        update(Payment).execution_options(synchronize_session=False),
        [
            {"id": payment_id, "next_check_at": check_at}
            for payment_id, check_at in next_checks.items()
        ],
    )
