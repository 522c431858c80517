"""Creating a payment: write-ahead, the request-to-pay, then recording how the request went.

The pending payment and its reference are committed before the provider is called, so nothing
the provider accepts can go unrecorded. On PostgreSQL each of the two writes is one statement
(data-modifying CTEs) outside an explicit transaction; SQLite writes them one by one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import BoundWrite, execute_write, new_id, retry_once_on_disconnect, utcnow
from app.errors import Conflict, NotFound
from app.log_config import payment_log_context
from app.metrics import PAYMENTS_CREATED
from app.payments import repository
from app.payments.decision import Change
from app.payments.domain import Actor, PaymentStatus
from app.payments.models import Payment
from app.payments.validation import NewPayment
from app.providers import registry
from app.providers.base import (
    InitiationOutcome,
    InitiationResult,
    PaymentProvider,
    PaymentRequest,
)
from app.providers.errors import ProviderError
from app.vocabulary import FailureCode

logger = logging.getLogger(__name__)


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


class HookConflict(Exception):
    """The hooks' first write hit a unique constraint (e.g. an idempotency key already taken);
    nothing was written."""


class ChangeStatus(Protocol):
    """``PaymentService.transition``: a refusal fails the payment as every status change does
    (audit row, event, metrics)."""

    async def __call__(
        self,
        payment_id: str,
        change: Change,
        *,
        from_status: PaymentStatus = ...,
        also: Mapping[str, Any] | None = ...,
        also_write: Callable[[Payment], BoundWrite] | None = ...,
    ) -> Payment | None: ...


class PaymentCreation:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        callback_secret: bytes,
        transition: ChangeStatus,
    ) -> None:
        self._engine = engine
        # PostgreSQL runs several writes as one statement (data-modifying CTEs); SQLite cannot.
        self._one_statement_writes = engine.dialect.name == "postgresql"
        self._sessions = sessions
        self._settings = settings
        self._callback_secret = callback_secret
        self._transition = transition

    async def create(
        self,
        provider: PaymentProvider,
        merchant_id: str,
        new: NewPayment,
        hooks: CreationHooks | None,
    ) -> Payment:
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
            amount_refunded_minor=0,
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
                await repository.insert_all_at_once(self._engine, payment, audit, also)
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
            # A conditional update: running it twice cannot fail the payment twice.
            refused = await retry_once_on_disconnect(
                lambda: self._transition(
                    payment.id,
                    refusal,
                    from_status=PaymentStatus.PENDING,
                    also=finished,
                    also_write=hooks.last_write if hooks is not None else None,
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
        None: something changed the payment meanwhile (nothing was written).

        ``payment`` (ours, in no session) is given ``finished`` first, for the hooks to render
        the response from: a fresh copy cost more than the statement. When this returns None
        the caller records the initiation from the row instead and drops ``payment``."""
        for name, value in finished.items():
            setattr(payment, name, value)
        expected = payment
        also = hooks.last_write(expected) if hooks is not None else None
        done = await repository.finish_initiation_if_pending(
            self._engine, payment.id, finished, also
        )
        if not done:
            return None
        if hooks is not None:
            hooks.last_write_committed()
        return expected

    async def _reload(self, payment_id: str) -> Payment:
        async with self._sessions() as session:
            payment = await repository.get(session, payment_id)
        if payment is None:
            raise NotFound(f"No payment {payment_id!r}.")
        return payment
