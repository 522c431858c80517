"""The payment service: the one place a payment is created or changes status.

Reached three ways — the storefront API, provider callbacks and the reconciler — and all three
end in ``transition``, a conditional update that lets exactly one writer move a payment out of
its current status, writing the audit row and the storefront's event in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import BoundWrite, autocommit, execute_write, new_id, retry_once_on_disconnect, utcnow
from app.errors import AppError, Conflict, NotFound
from app.events.models import OutboxEvent
from app.log_config import payment_log_context
from app.metrics import PAYMENT_TRANSITIONS, PAYMENTS_CREATED
from app.payments import repository
from app.payments.domain import (
    ALLOWED_TRANSITIONS,
    EVENT_FOR_STATUS,
    Actor,
    PaymentStatus,
    initiation_over_at,
)
from app.payments.models import Payment
from app.payments.schemas import payment_json
from app.payments.validation import NewPayment
from app.providers import registry
from app.providers.base import (
    InitiationOutcome,
    InitiationResult,
    PaymentProvider,
    PaymentRequest,
    ProviderPaymentStatus,
    StatusResult,
)
from app.providers.errors import ProviderError, ProviderUnavailable
from app.vocabulary import FailureCode, Provider

logger = logging.getLogger(__name__)


class EventNotifier(Protocol):
    """Told, after commit, which events were just created (to schedule their delivery)."""

    async def events_committed(self, event_ids: Sequence[str]) -> None: ...


class CreationHooks(Protocol):
    """Work that must commit with a payment's first and last writes (an idempotency claim and
    its stored response), so a payment costs two transactions, not four."""

    def first_write(self) -> BoundWrite | None:
        """An INSERT to commit with the payment's row; its unique constraint failing means
        "taken" (HookConflict)."""

    def first_transaction_committed(self) -> None: ...

    def last_write(self, payment: Payment) -> BoundWrite:
        """A write to commit with the payment's last one (which ``payment`` shows)."""

    def last_write_committed(self) -> None: ...


InTransaction = Callable[[AsyncConnection, Payment], Awaitable[None]]
_EVENTS: Table = OutboxEvent.__table__  # type: ignore[assignment]
_INSERT_EVENT = _EVENTS.insert()


class HookConflict(Exception):
    """The hooks' first write hit a unique constraint (e.g. an idempotency key already taken);
    nothing was written."""


class _NoNotifier:
    async def events_committed(self, event_ids: Sequence[str]) -> None:
        return None


@dataclass(frozen=True, kw_only=True)
class Change:
    """A status change to attempt, and what to record with it."""

    to_status: PaymentStatus
    actor: Actor
    detail: str | None = None
    failure_code: FailureCode | None = None
    failure_message: str | None = None
    provider_transaction_id: str | None = None
    reported_amount_minor: int | None = None
    reported_currency: str | None = None


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
        self._autocommit_engine = autocommit(engine)
        # PostgreSQL runs several writes as one statement (data-modifying CTEs); SQLite cannot.
        self._one_statement_writes = engine.dialect.name == "postgresql"
        self._sessions = sessions
        self._settings = settings
        self._providers = providers
        self._callback_secret = callback_secret
        self._notifier = notifier or _NoNotifier()

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
            after = None
            if starting_after is not None:
                after = await repository.get_for_merchant(session, merchant_id, starting_after)
                if after is None:
                    raise AppError(
                        400, "invalid_cursor", f"starting_after {starting_after!r} is unknown"
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
        now = utcnow()
        payment = Payment(
            id=new_id("pay"),
            merchant_id=merchant_id,
            order_id=new.order_id,
            provider=new.provider.value,
            status=PaymentStatus.PENDING.value,
            amount_minor=new.amount_minor,
            currency=new.currency,
            phone_number=new.msisdn,
            description=new.description,
            payment_metadata=new.metadata,
            provider_reference=str(uuid.uuid4()),
            created_at=now,
            updated_at=now,
            check_count=0,
        )
        try:
            await self._write_ahead(payment, hooks.first_write() if hooks else None)
            if hooks is not None:
                hooks.first_transaction_committed()
        except IntegrityError:
            async with self._sessions() as session:
                live = await repository.live_payment_for_order(session, merchant_id, new.order_id)
            if live is None:
                raise
            raise Conflict(
                "order_already_has_payment",
                f"Order {new.order_id!r} already has a {live.status} payment.",
                payment_id=live.id,
            ) from None

        PAYMENTS_CREATED.labels(payment.provider).inc()
        result = await self._initiate(provider, payment)
        recorded = await self._record_initiation(payment, result, hooks)
        # One line per initiation: it is on the hot path.
        logger.info(
            "payment created, request-to-pay %s",
            result.outcome.value,
            extra={"payment_id": payment.id, "provider": payment.provider},
        )
        return recorded

    async def _write_ahead(self, payment: Payment, also: BoundWrite | None) -> None:
        """Commit the new payment, its audit row and ``also`` together. Raises HookConflict
        when ``also`` hits its unique constraint, IntegrityError when the payment does."""
        audit = repository.transition_values(
            payment_id=payment.id,
            from_status=None,
            to_status=PaymentStatus.PENDING,
            actor=Actor.API,
            detail="created",
            at=payment.created_at,
        )
        if self._one_statement_writes:
            try:
                async with self._autocommit_engine.connect() as connection:
                    await repository.insert_all_at_once(connection, payment, audit, also)
                return
            except IntegrityError:
                pass  # Which row was refused? Writing them one by one below tells.
        async with self._engine.begin() as connection:
            if also is not None:
                try:
                    await connection.execute(also.statement, also.params)
                except IntegrityError:
                    raise HookConflict from None
            await repository.insert_payment(connection, payment)
            await repository.insert_transition(connection, audit)

    async def _initiate(self, provider: PaymentProvider, payment: Payment) -> InitiationResult:
        spec = registry.spec_for(payment.provider)
        callback_url = spec.payment_callback_url(
            spec.settings_from(self._settings), self._callback_secret, payment.provider_reference
        )
        request = PaymentRequest(
            reference=payment.provider_reference,
            order_id=payment.order_id,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            msisdn=payment.phone_number,
            description=payment.description,
            callback_url=callback_url,
        )
        try:
            with payment_log_context(payment.id, payment.provider):
                return await provider.request_payment(request)
        except ProviderError as exc:
            logger.warning(
                "request-to-pay outcome unknown: %s",
                type(exc).__name__,
                extra={"payment_id": payment.id, "provider": payment.provider},
            )
        except Exception:
            # Money may or may not move: never fail the payment on our own error.
            logger.exception(
                "request-to-pay raised",
                extra={"payment_id": payment.id, "provider": payment.provider},
            )
        return InitiationResult(outcome=InitiationOutcome.UNKNOWN)

    async def _record_initiation(
        self, payment: Payment, result: InitiationResult, hooks: CreationHooks | None
    ) -> Payment:
        now = utcnow()
        first_check = now + timedelta(seconds=self._settings.reconcile_min_age_seconds)
        finished = {"initiation_finished_at": now, "next_check_at": first_check}
        if result.outcome is InitiationOutcome.REFUSED:
            refusal = Change(
                to_status=PaymentStatus.FAILED,
                actor=Actor.API,
                detail="refused at initiation",
                failure_code=result.failure_code or FailureCode.PROVIDER_ERROR,
                failure_message=result.failure_message,
            )
            then: InTransaction | None = None
            if hooks is not None:
                last_write = hooks.last_write

                async def then(connection: AsyncConnection, refused: Payment) -> None:
                    await execute_write(connection, last_write(refused))

            # A conditional update: running it twice cannot fail the payment twice.
            refused = await retry_once_on_disconnect(
                lambda: self._transition(
                    payment.id,
                    refusal,
                    from_status=PaymentStatus.PENDING,
                    also=finished,
                    then=then,
                )
            )
            if refused is not None:
                if hooks is not None:
                    hooks.last_write_committed()
                return refused
            if hooks is None:
                return await self._reload(payment.id)
            # A callback settled it first (the transition found it no longer pending).
            return await self._finish_initiation(payment, finished, hooks)
        return await retry_once_on_disconnect(
            lambda: self._finish_initiation(payment, finished, hooks)
        )

    async def _finish_initiation(
        self, payment: Payment, finished: dict[str, Any], hooks: CreationHooks | None
    ) -> Payment:
        """Record that the request-to-pay is over, with the hooks' last write."""
        if self._one_statement_writes:
            recorded = await self._finish_if_unchanged(payment, finished, hooks)
            if recorded is not None:
                return recorded
        async with self._engine.begin() as connection:
            recorded = await repository.update_returning(connection, payment.id, finished)
            if hooks is not None:
                await execute_write(connection, hooks.last_write(recorded))
        if hooks is not None:
            hooks.last_write_committed()
        return recorded

    async def _finish_if_unchanged(
        self, payment: Payment, finished: dict[str, Any], hooks: CreationHooks | None
    ) -> Payment | None:
        """PostgreSQL, and the payment still pending (nearly always): it is then exactly what
        we created plus ``finished``, so it needs no reading back, and one autocommitted
        statement records both writes instead of a transaction of four round trips.
        None: something changed the payment meanwhile (nothing was written)."""
        expected = repository.updated_copy(payment, finished)
        also = hooks.last_write(expected) if hooks is not None else None
        async with self._autocommit_engine.connect() as connection:
            done = await repository.finish_initiation_if_pending(
                connection, payment.id, finished, also
            )
        if not done:
            return None
        if hooks is not None:
            hooks.last_write_committed()
        return expected

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
            result = await provider.get_status(payment.provider_reference)
        return await self.apply_status(payment, result, actor)

    async def apply_status(self, payment: Payment, result: StatusResult, actor: Actor) -> Payment:
        change = self._decide(payment, result, actor)
        if change is None:
            return await self._reload(payment.id)
        changed = await self._transition(
            payment.id, change, from_status=PaymentStatus(payment.status)
        )
        if changed is not None:
            return changed
        # Someone moved the payment first: judge the same answer against the row as it is now
        # (e.g. a failure reported after another writer recorded success is a contradiction).
        current = await self._reload(payment.id)
        change = self._decide(current, result, actor)
        if change is not None:
            changed = await self._transition(
                current.id, change, from_status=PaymentStatus(current.status)
            )
            if changed is not None:
                return changed
            current = await self._reload(payment.id)
        return current

    def _decide(self, payment: Payment, result: StatusResult, actor: Actor) -> Change | None:
        """What the provider's answer means for this payment, or None for "nothing yet"."""
        status = PaymentStatus(payment.status)
        now = utcnow()

        if result.status is ProviderPaymentStatus.PENDING:
            timeout = timedelta(seconds=self._settings.payment_timeout_seconds)
            if status is PaymentStatus.PENDING and now - payment.created_at > timeout:
                return Change(
                    to_status=PaymentStatus.EXPIRED,
                    actor=actor,
                    detail="still pending at the provider past the payment timeout",
                    failure_message="The payer did not complete the payment in time.",
                )
            return None

        if result.status is ProviderPaymentStatus.NOT_FOUND:
            # Only a reference whose initiation is over, and old enough for the provider to
            # have recorded it, is "never accepted"; a slow first attempt may still land.
            grace = timedelta(seconds=self._settings.reconcile_min_age_seconds)
            over_at = initiation_over_at(payment.created_at, payment.initiation_finished_at)
            if status is PaymentStatus.PENDING and now >= over_at and now - over_at >= grace:
                return Change(
                    to_status=PaymentStatus.FAILED,
                    actor=actor,
                    detail="provider does not know the reference",
                    failure_code=FailureCode.NOT_FOUND_AT_PROVIDER,
                    failure_message="The provider has no record of this payment.",
                )
            return None

        mismatch = self._amount_mismatch(payment, result)
        if mismatch is not None:
            logger.error(
                "provider reports another amount: %s",
                mismatch,
                extra={"payment_id": payment.id, "provider": payment.provider},
            )
            if status in (PaymentStatus.NEEDS_REVIEW,):
                return None
            return Change(
                to_status=PaymentStatus.NEEDS_REVIEW,
                actor=actor,
                detail=mismatch,
                failure_message=f"Provider reported {result.status.value}: {mismatch}"[:255],
                reported_amount_minor=result.amount_minor,
                reported_currency=result.currency,
                provider_transaction_id=result.provider_transaction_id,
            )

        if result.status is ProviderPaymentStatus.SUCCESSFUL:
            if status is PaymentStatus.PENDING:
                return Change(
                    to_status=PaymentStatus.SUCCESSFUL,
                    actor=actor,
                    provider_transaction_id=result.provider_transaction_id,
                )
            if status in (PaymentStatus.FAILED, PaymentStatus.EXPIRED):
                return self._contradiction(payment, result, actor)
            return None

        # FAILED at the provider
        if status is PaymentStatus.PENDING:
            return Change(
                to_status=PaymentStatus.FAILED,
                actor=actor,
                failure_code=result.failure_code or FailureCode.PROVIDER_ERROR,
                failure_message=result.failure_message,
            )
        if status is PaymentStatus.SUCCESSFUL:
            return self._contradiction(payment, result, actor)
        return None

    @staticmethod
    def _amount_mismatch(payment: Payment, result: StatusResult) -> str | None:
        if result.amount_minor is not None and result.amount_minor != payment.amount_minor:
            return f"amount {result.amount_minor} != {payment.amount_minor} (minor units)"
        if result.currency is not None and result.currency != payment.currency:
            return f"currency {result.currency} != {payment.currency}"
        return None

    @staticmethod
    def _contradiction(payment: Payment, result: StatusResult, actor: Actor) -> Change:
        detail = f"provider now says {result.status.value}, we recorded {payment.status}"
        logger.error(detail, extra={"payment_id": payment.id, "provider": payment.provider})
        return Change(
            to_status=PaymentStatus.NEEDS_REVIEW,
            actor=actor,
            detail=detail,
            failure_message=detail,
            provider_transaction_id=result.provider_transaction_id,
        )

    async def transition(
        self,
        payment_id: str,
        change: Change,
        *,
        from_status: PaymentStatus = PaymentStatus.PENDING,
        also: dict[str, Any] | None = None,
        then: InTransaction | None = None,
    ) -> bool:
        """Move a payment from ``from_status`` to ``change.to_status`` if nobody beat us to it.

        One transaction: the conditional update, the audit row, and (for a terminal status)
        the outbox event. Returns False, changing nothing, when the payment was no longer in
        ``from_status`` — terminal states absorb repeats this way.
        """
        changed = await self._transition(
            payment_id, change, from_status=from_status, also=also, then=then
        )
        return changed is not None

    async def _transition(
        self,
        payment_id: str,
        change: Change,
        *,
        from_status: PaymentStatus,
        also: dict[str, Any] | None = None,
        then: InTransaction | None = None,
    ) -> Payment | None:
        """``transition``, returning the payment as it now is (None: not changed)."""
        if change.to_status not in ALLOWED_TRANSITIONS[from_status]:
            raise ValueError(f"{from_status} → {change.to_status} is not a transition")
        now = utcnow()
        values: dict[str, Any] = {
            "status": change.to_status.value,
            "updated_at": now,
            "completed_at": now,
            **(also or {}),
        }
        for field in (
            "failure_code",
            "failure_message",
            "provider_transaction_id",
            "reported_amount_minor",
            "reported_currency",
        ):
            value = getattr(change, field)
            if value is not None:
                values[field] = value.value if isinstance(value, FailureCode) else value
        if "failure_message" in values:
            values["failure_message"] = str(values["failure_message"])[:255]

        event_id = new_id("evt")
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
            event_type = EVENT_FOR_STATUS[change.to_status].value
            await connection.execute(
                _INSERT_EVENT,
                {
                    "id": event_id,
                    "merchant_id": payment.merchant_id,
                    "payment_id": payment.id,
                    "type": event_type,
                    "payload": {
                        "id": event_id,
                        "type": event_type,
                        "created_at": now.isoformat().replace("+00:00", "Z"),
                        "data": payment_json(payment),
                    },
                    "delivery_status": "pending",
                    "attempt_count": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
            if then is not None:
                await then(connection, payment)
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
