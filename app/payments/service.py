"""The payment service: the one place a payment is created or changes status.

Reached three ways — the storefront API, provider callbacks and the reconciler — and all three
end in ``transition``, a conditional update that lets exactly one writer move a payment out of
its current status, writing the audit row and the storefront's event in the same transaction.
What a provider's answer calls for is decided in ``app.payments.decision``; how a new payment
is written and its request-to-pay recorded, in ``app.payments.creation``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import BoundWrite, execute_write, utcnow
from app.errors import AppError, NotFound
from app.events.outbox import insert_event
from app.log_config import payment_log_context
from app.metrics import PAYMENT_TRANSITIONS
from app.pagination import cursor_row
from app.payments import repository
from app.payments.creation import CreationHooks, PaymentCreation
from app.payments.decision import Change, Deadlines, decide
from app.payments.domain import (
    ALLOWED_TRANSITIONS,
    EVENT_FOR_STATUS,
    OPERATOR_RESOLUTIONS,
    Actor,
    PaymentStatus,
)
from app.payments.models import Payment
from app.payments.validation import NewPayment
from app.providers.base import PaymentProvider, StatusResult
from app.providers.errors import ProviderError, ProviderUnavailable
from app.status_reads import StatusReadLog
from app.vocabulary import Provider

logger = logging.getLogger(__name__)


class EventNotifier(Protocol):
    """Told, after commit, which events were just created (to schedule their delivery)."""

    async def events_committed(self, event_ids: Sequence[str]) -> None: ...


# Writes an operator's audit entry on the resolution's own connection; returns the entry's id.
RecordAudit = Callable[[AsyncConnection], Awaitable[int]]


class _NoNotifier:
    async def events_committed(self, event_ids: Sequence[str]) -> None:
        return None


class PaymentService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        providers: Mapping[Provider, PaymentProvider],
        callback_secret: bytes,
        notifier: EventNotifier | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._providers = providers
        self._notifier = notifier or _NoNotifier()
        self._reads = StatusReadLog(engine)
        self._deadlines = Deadlines(
            payment_timeout=timedelta(seconds=settings.payment_timeout_seconds),
            not_found_grace=timedelta(seconds=settings.reconcile_min_age_seconds),
        )
        self._creation = PaymentCreation(
            engine=engine,
            sessions=sessions,
            settings=settings,
            callback_secret=callback_secret,
            transition=self.transition,
        )

    # --- reading ---------------------------------------------------------------------------
    async def get_payment(self, merchant_id: str, payment_id: str) -> Payment:
        async with self._sessions() as session:
            payment = await repository.get_for_merchant(session, merchant_id, payment_id)
        if payment is None:
            raise NotFound(f"No payment {payment_id!r}.")
        return payment

    async def list_payments(
        self,
        merchant_id: str,
        *,
        limit: int,
        order_id: str | None = None,
        status: PaymentStatus | None = None,
        starting_after: str | None = None,
    ) -> tuple[Sequence[Payment], bool]:
        async with self._sessions() as session:
            after = await cursor_row(
                starting_after,
                lambda cursor: repository.get_for_merchant(session, merchant_id, cursor),
            )
            return await repository.list_page(
                session, merchant_id, limit=limit, order_id=order_id, status=status, after=after
            )

    # --- creating --------------------------------------------------------------------------
    async def create_payment(
        self, merchant_id: str, new: NewPayment, hooks: CreationHooks | None = None
    ) -> Payment:
        """Write-ahead: the pending payment and its reference are committed before the
        provider is called, so nothing the provider accepts can go unrecorded."""
        provider = self._provider(new.provider)
        return await self._creation.create(provider, merchant_id, new, hooks)

    # --- settling --------------------------------------------------------------------------
    async def refresh_payment(self, merchant_id: str, payment_id: str) -> Payment:
        payment = await self.get_payment(merchant_id, payment_id)
        try:
            return await self.check_with_provider(payment, Actor.API)
        except ProviderUnavailable:
            raise AppError(
                503,
                "provider_unavailable",
                f"{payment.provider} did not answer; the payment stays as it is.",
                headers={"Retry-After": "30"},
            ) from None

    async def check_with_provider(self, payment: Payment | str, actor: Actor) -> Payment:
        """Ask the provider about a payment and apply the answer. Raises ProviderUnavailable.

        ``payment`` may be a row the caller has just read, which saves reading it again: if it
        is out of date by the time the answer comes, the conditional update notices.
        """
        if isinstance(payment, str):
            payment = await self._reload(payment)
        provider = self._provider(Provider(payment.provider))
        with payment_log_context(payment.id, payment.provider):
            try:
                result = await provider.get_status(payment.provider_reference)
            except ProviderError as exc:
                await self._record_read(payment, actor, None, type(exc).__name__)
                raise
        await self._record_read(payment, actor, result)
        return await self.apply_status(payment, result, actor)

    async def _record_read(
        self, payment: Payment, actor: Actor, answer: StatusResult | None, error: str | None = None
    ) -> None:
        try:
            await self._reads.record(
                provider=payment.provider,
                actor=actor.value,
                answer=answer,
                payment_id=payment.id,
                error=error,
            )
        except Exception:
            # The timeline's record of a read is worth less than acting on it.
            logger.exception("could not record a status read", extra={"payment_id": payment.id})

    async def apply_status(self, payment: Payment, result: StatusResult, actor: Actor) -> Payment:
        change = await self._decide(payment, result, actor)
        if change is None:
            return await self._reload(payment.id)
        changed = await self.transition(
            payment.id, change, from_status=PaymentStatus(payment.status)
        )
        if changed is not None:
            return changed
        # Someone moved the payment first: judge the same answer against the row as it is now
        # (e.g. a failure reported after another writer recorded success is a contradiction).
        current = await self._reload(payment.id)
        change = await self._decide(current, result, actor)
        if change is not None:
            changed = await self.transition(
                current.id, change, from_status=PaymentStatus(current.status)
            )
            if changed is not None:
                return changed
            current = await self._reload(payment.id)
        return current

    async def _decide(self, payment: Payment, result: StatusResult, actor: Actor) -> Change | None:
        """``decide``, except that a payment a person resolved stays as they resolved it.

        An operator settles a needs_review payment after checking it with the provider; the
        provider contradicting it again asks the same question they answered, and a second
        review would only undo their decision. It is logged and left alone."""
        change = decide(payment, result, actor=actor, now=utcnow(), deadlines=self._deadlines)
        if change is None or payment.status == PaymentStatus.PENDING.value:
            return change
        async with self._sessions() as session:
            resolved = await repository.resolved_by_operator(session, payment.id)
        if not resolved:
            return change
        logger.warning(
            "provider disagrees with an operator's resolution (%s); left as resolved",
            change.detail,
            extra={"payment_id": payment.id, "provider": payment.provider},
        )
        return None

    async def transition(
        self,
        payment_id: str,
        change: Change,
        *,
        from_status: PaymentStatus = PaymentStatus.PENDING,
        also: Mapping[str, Any] | None = None,
        also_write: Callable[[Payment], BoundWrite] | None = None,
    ) -> Payment | None:
        """Move a payment from ``from_status`` to ``change.to_status`` if nobody beat us to it,
        and return it as it now is.

        One transaction: the conditional update (which also sets ``also``, more columns), the
        audit row, the outbox event and ``also_write`` (a write built from the changed
        payment). Returns None, changing nothing, when the payment was no longer in
        ``from_status`` — terminal states absorb repeats this way.
        """
        if change.to_status not in ALLOWED_TRANSITIONS[from_status]:
            raise ValueError(f"{from_status} → {change.to_status} is not a transition")
        now = utcnow()
        values = change.payment_values(now)
        if also:
            values.update(also)
        async with self._engine.begin() as connection:
            # The conditional UPDATE is the transaction's first statement, so SQLite takes
            # its write lock up front instead of failing to upgrade a read snapshot.
            payment = await repository.conditional_update(
                connection, payment_id, from_status, values
            )
            if payment is None:
                return None
            await repository.insert_transition(
                connection,
                repository.transition_values(
                    payment_id=payment_id,
                    from_status=from_status,
                    to_status=change.to_status,
                    actor=change.actor.value,
                    detail=change.detail,
                    at=now,
                ),
            )
            event_id = await insert_event(
                connection, payment, EVENT_FOR_STATUS[change.to_status], now
            )
            if also_write is not None:
                await execute_write(connection, also_write(payment))
        PAYMENT_TRANSITIONS.labels(
            payment.provider, from_status.value, change.to_status.value, change.actor.value
        ).inc()
        logger.info(
            "payment %s → %s",
            from_status.value,
            change.to_status.value,
            extra={"payment_id": payment_id, "actor": change.actor.value},
        )
        await self._notifier.events_committed([event_id])
        return payment

    async def resolve(
        self,
        payment_id: str,
        to_status: PaymentStatus,
        *,
        note: str,
        operator_id: str,
        record_audit: RecordAudit,
    ) -> Payment | None:
        """An operator settles a payment in needs_review: one transaction holds the conditional
        update, the operator's audit entry (``record_audit``), the audit row with the operator
        as actor and the event, tied to the entry. None when the payment was not (or no longer)
        in needs_review: of two concurrent resolutions, one wins and one event goes out."""
        if to_status not in OPERATOR_RESOLUTIONS[PaymentStatus.NEEDS_REVIEW]:
            raise ValueError(f"needs_review → {to_status} is not a resolution")
        now = utcnow()
        values: dict[str, Any] = {"status": to_status.value, "updated_at": now, "completed_at": now}
        if to_status is PaymentStatus.SUCCESSFUL:
            values.update(failure_code=None, failure_message=None)
        else:
            values["failure_message"] = f"Resolved as failed by an operator: {note}"[:255]
        async with self._engine.begin() as connection:
            payment = await repository.conditional_update(
                connection, payment_id, PaymentStatus.NEEDS_REVIEW, values
            )
            if payment is None:
                return None
            action_id = await record_audit(connection)
            await repository.insert_transition(
                connection,
                repository.transition_values(
                    payment_id=payment_id,
                    from_status=PaymentStatus.NEEDS_REVIEW,
                    to_status=to_status,
                    actor=Actor.OPERATOR.value,
                    detail=note,
                    at=now,
                    operator_id=operator_id,
                ),
            )
            event_id = await insert_event(
                connection, payment, EVENT_FOR_STATUS[to_status], now, operator_action_id=action_id
            )
        PAYMENT_TRANSITIONS.labels(
            payment.provider,
            PaymentStatus.NEEDS_REVIEW.value,
            to_status.value,
            Actor.OPERATOR.value,
        ).inc()
        logger.info(
            "payment needs_review → %s, resolved by an operator",
            to_status.value,
            extra={"payment_id": payment_id, "actor": Actor.OPERATOR.value},
        )
        await self._notifier.events_committed([event_id])
        return payment

    # --- internals -------------------------------------------------------------------------
    def _provider(self, provider: Provider) -> PaymentProvider:
        try:
            return self._providers[provider]
        except KeyError:
            raise AppError(
                503, "provider_not_configured", f"{provider.value} is not configured"
            ) from None

    async def _reload(self, payment_id: str) -> Payment:
        async with self._sessions() as session:
            payment = await repository.get(session, payment_id)
        if payment is None:
            raise NotFound(f"No payment {payment_id!r}.")
        return payment
