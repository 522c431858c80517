"""The refund service: the one place a refund is created or changes status.

Like payments: write-ahead (the pending refund and its reference commit before the provider is
called), one provider reference for life, every status change a conditional update with its
audit row and its storefront event in the same transaction. Refunds of one payment are decided
one at a time under a lock on the payment, so together they never give back more than it took.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import BoundWrite, execute_write, new_id, retry_once_on_disconnect, utcnow
from app.errors import AppError, Conflict, NotFound, Unprocessable, field_error
from app.events.outbox import insert_refund_event
from app.log_config import payment_log_context
from app.metrics import REFUND_TRANSITIONS, REFUNDS_CREATED
from app.money import AmountError, format_amount, parse_amount
from app.pagination import cursor_row
from app.payments import repository as payments_repository
from app.payments.creation import HookConflict
from app.payments.domain import Actor, PaymentStatus
from app.payments.models import Payment
from app.payments.service import EventNotifier, RecordAudit
from app.providers import registry
from app.providers.base import (
    PaymentProvider,
    ProviderPaymentStatus,
    RefundOutcome,
    RefundProvider,
    RefundRequest,
    RefundResult,
    StatusResult,
)
from app.providers.errors import ProviderError
from app.providers.spec import RefundSupport
from app.refunds import repository
from app.refunds.decision import RefundChange, decide_refund
from app.refunds.domain import (
    ALLOWED_REFUND_TRANSITIONS,
    EVENT_FOR_REFUND_STATUS,
    OPERATOR_REFUND_RESOLUTIONS,
    RefundStatus,
)
from app.refunds.models import Refund
from app.refunds.schemas import refund_json
from app.status_reads import StatusReadLog
from app.vocabulary import FailureCode, Provider

logger = logging.getLogger(__name__)


class RefundHooks(Protocol):
    """Work that commits with a refund's first and last writes (an idempotency claim and its
    stored answer): see ``app.payments.creation.CreationHooks``."""

    def first_write(self) -> BoundWrite | None: ...

    def first_transaction_committed(self) -> None: ...

    def last_write(self, created: Refund) -> BoundWrite: ...

    def last_write_committed(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class NewRefund:
    payment_id: str
    amount: str | int | None  # as the API received it; None = everything still refundable
    reason: str | None
    metadata: dict[str, Any]
    audit_detail: str = "created"  # the first audit row's detail: where the refund came from


class RefundService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        providers: Mapping[Provider, PaymentProvider],
        refund_providers: Mapping[Provider, RefundProvider],
        callback_secret: bytes,
        notifier: EventNotifier,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._settings = settings
        self._providers = providers
        self._refund_providers = refund_providers
        self._callback_secret = callback_secret
        self._notifier = notifier
        self._reads = StatusReadLog(engine)
        self._timeout = timedelta(seconds=settings.payment_timeout_seconds)

    # --- reading ---------------------------------------------------------------------------
    async def get_refund(self, merchant_id: str, refund_id: str) -> Refund:
        async with self._sessions() as session:
            refund = await repository.get_for_merchant(session, merchant_id, refund_id)
        if refund is None:
            raise NotFound(f"No refund {refund_id!r}.")
        return refund

    async def list_refunds(
        self,
        merchant_id: str,
        *,
        limit: int,
        payment_id: str | None = None,
        status: RefundStatus | None = None,
        starting_after: str | None = None,
    ) -> tuple[Sequence[Refund], bool]:
        async with self._sessions() as session:
            after = await cursor_row(
                starting_after,
                lambda cursor: repository.get_for_merchant(session, merchant_id, cursor),
            )
            return await repository.list_page(
                session, merchant_id, limit=limit, payment_id=payment_id, status=status, after=after
            )

    async def refunds_of(self, payment_id: str) -> Sequence[Refund]:
        async with self._sessions() as session:
            return await repository.for_payment(session, payment_id)

    # --- creating --------------------------------------------------------------------------
    async def create_refund(
        self, merchant_id: str, new: NewRefund, hooks: RefundHooks | None = None
    ) -> Refund:
        """Check the rules, write the pending refund ahead, ask the provider, record the
        answer. Raises ``AppError`` (404, 409, 422) for a refund the rules refuse."""
        payment = await self._payment(merchant_id, new.payment_id)
        _require_refundable(payment)
        support, provider = self._refund_provider(payment)
        requested = _requested_amount(new.amount, payment.currency)
        if support.needs_transaction_id and not payment.provider_transaction_id:
            payment = await self._fetch_transaction_id(payment)
        refund = await self._write_ahead(merchant_id, payment, new, requested, support, hooks)
        REFUNDS_CREATED.labels(refund.provider).inc()
        result = await self._request(provider, support, payment, refund)
        recorded = await retry_once_on_disconnect(lambda: self._record(refund, result, hooks))
        logger.info(
            "refund created, provider answer %s",
            result.outcome.value,
            extra={"refund_id": refund.id, "payment_id": payment.id, "provider": refund.provider},
        )
        return recorded

    async def _payment(self, merchant_id: str, payment_id: str) -> Payment:
        async with self._sessions() as session:
            payment = await payments_repository.get_for_merchant(session, merchant_id, payment_id)
        if payment is None:
            raise NotFound(f"No payment {payment_id!r}.")
        return payment

    def _refund_provider(self, payment: Payment) -> tuple[RefundSupport[Any], RefundProvider]:
        spec = registry.spec_for(payment.provider)
        provider = self._refund_providers.get(Provider(payment.provider))
        if spec.refunds is None or provider is None:
            raise Unprocessable(
                "refunds_not_configured",
                f"Refunds through {spec.title} are not configured on this gateway"
                + (
                    "."
                    if spec.refunds is None
                    else ": its refund credentials are not set (see the README, Refunds)."
                ),
            )
        return spec.refunds, provider

    async def _fetch_transaction_id(self, payment: Payment) -> Payment:
        """The provider's id of the payment's transaction, asked again when it was not stored
        (Airtel names the payment to refund only by it)."""
        provider = self._providers.get(Provider(payment.provider))
        answer = None
        if provider is not None:
            try:
                with payment_log_context(payment.id, payment.provider):
                    answer = await provider.get_status(payment.provider_reference)
            except ProviderError:
                answer = None
        transaction_id = (
            answer.provider_transaction_id
            if answer is not None and answer.status is ProviderPaymentStatus.SUCCESSFUL
            else None
        )
        if not transaction_id:
            raise Conflict(
                "payment_not_refundable",
                f"{registry.spec_for(payment.provider).title} has not reported this payment's "
                "transaction id, which its refunds need; try again later.",
            )
        async with self._engine.begin() as connection:
            await repository.set_payment_transaction_id(connection, payment.id, transaction_id)
        return await self._payment(payment.merchant_id, payment.id)

    async def _write_ahead(
        self,
        merchant_id: str,
        payment: Payment,
        new: NewRefund,
        requested: int | None,
        support: RefundSupport[Any],
        hooks: RefundHooks | None,
    ) -> Refund:
        """Under the payment's lock: apply the amount rules against the refunds already made,
        then commit the pending refund, its audit row and the hooks' first write together."""
        now = utcnow()
        async with self._engine.begin() as connection:
            locked = await repository.lock_refundable_payment(connection, merchant_id, payment.id)
            if locked is None:  # it left successful since we read it
                _require_refundable(await self._payment(merchant_id, payment.id))
                raise Conflict("payment_not_refundable", "The payment is no longer refundable.")
            held, count = await repository.held_amount(connection, payment.id)
            amount = _checked_amount(locked, requested, held, count, support)
            refund = Refund(
                id=new_id("re"),
                merchant_id=merchant_id,
                payment_id=payment.id,
                provider=payment.provider,
                status=RefundStatus.PENDING.value,
                amount_minor=amount,
                currency=payment.currency,
                reason=new.reason,
                refund_metadata=new.metadata,
                provider_reference=str(uuid.uuid4()),
                provider_transaction_id=None,
                failure_code=None,
                failure_message=None,
                reported_amount_minor=None,
                reported_currency=None,
                initiation_finished_at=None,
                next_check_at=None,
                check_count=0,
                created_at=now,
                updated_at=now,
                completed_at=None,
            )
            first = hooks.first_write() if hooks is not None else None
            if first is not None:
                try:
                    async with connection.begin_nested():
                        await execute_write(connection, first)
                except IntegrityError:
                    raise HookConflict from None
            await repository.insert_refund(connection, refund)
            await repository.insert_transition(
                connection,
                refund_id=refund.id,
                from_status=None,
                to_status=RefundStatus.PENDING,
                actor=Actor.API.value,
                detail=new.audit_detail,
                at=now,
            )
        if hooks is not None:
            hooks.first_transaction_committed()
        return refund

    async def _request(
        self,
        provider: RefundProvider,
        support: RefundSupport[Any],
        payment: Payment,
        refund: Refund,
    ) -> RefundResult:
        spec = registry.spec_for(payment.provider)
        callback_url = support.refund_callback_url(
            spec.settings_from(self._settings), self._callback_secret, refund.provider_reference
        )
        request = RefundRequest(
            reference=refund.provider_reference,
            payment_reference=payment.provider_reference,
            payment_transaction_id=payment.provider_transaction_id,
            amount_minor=refund.amount_minor,
            currency=refund.currency,
            order_id=payment.order_id,
            note=refund.reason or f"Refund {payment.order_id}",
            callback_url=callback_url,
        )
        try:
            with payment_log_context(payment.id, payment.provider):
                return await provider.request_refund(request)
        except ProviderError as exc:
            message = f"refund call outcome unknown: {type(exc).__name__}"
            logger.warning(message, extra={"refund_id": refund.id, "provider": refund.provider})
        except Exception:
            # Money may or may not have moved: never fail the refund on our own error.
            logger.exception("refund call raised", extra={"refund_id": refund.id})
        return RefundResult.unknown("no answer from the provider")

    async def _record(
        self, refund: Refund, result: RefundResult, hooks: RefundHooks | None
    ) -> Refund:
        """Record how the refund call went, with the hooks' last write."""
        now = utcnow()
        finished = {
            "initiation_finished_at": now,
            "next_check_at": now + timedelta(seconds=self._settings.reconcile_min_age_seconds),
        }
        last = hooks.last_write if hooks is not None else None
        change = _change_for(result)
        if change is not None:
            changed = await self.transition(refund.id, change, also=finished, also_write=last)
            if changed is not None:
                if hooks is not None:
                    hooks.last_write_committed()
                return changed
        # Accepted or unknown, or a callback settled it first: the call is over either way.
        async with self._engine.begin() as connection:
            recorded = await repository.update_returning(connection, refund.id, finished)
            if last is not None:
                await execute_write(connection, last(recorded))
        if hooks is not None:
            hooks.last_write_committed()
        return recorded

    # --- settling --------------------------------------------------------------------------
    async def check_with_provider(self, refund: Refund | str, actor: Actor) -> Refund:
        """Ask the provider about a pending refund and apply the answer; a provider with no
        refund status to read only has the timeout applied. Raises ``ProviderError``."""
        if isinstance(refund, str):
            refund = await self._reload(refund)
        spec = registry.spec_for(refund.provider)
        answer = None
        if spec.refunds is not None and spec.refunds.status_readable:
            provider = self._refund_providers.get(Provider(refund.provider))
            if provider is None:
                raise AppError(
                    503, "provider_not_configured", f"{spec.title} refunds are not configured"
                )
            with payment_log_context(refund.payment_id, refund.provider):
                try:
                    answer = await provider.get_refund_status(refund.provider_reference)
                except ProviderError as exc:
                    await self._record_read(refund, actor, None, type(exc).__name__)
                    raise
            await self._record_read(refund, actor, answer)
        change = decide_refund(refund, answer, actor=actor, now=utcnow(), timeout=self._timeout)
        if change is not None and await self._resolved_by_operator(refund):
            # A person settled it after checking with the provider: a second review of the
            # same question would only undo their decision.
            logger.warning(
                "provider disagrees with an operator's resolution (%s); left as resolved",
                change.detail,
                extra={"refund_id": refund.id, "provider": refund.provider},
            )
            change = None
        if change is None:
            return await self._reload(refund.id)
        changed = await self.transition(refund.id, change, from_status=RefundStatus(refund.status))
        return changed if changed is not None else await self._reload(refund.id)

    async def _resolved_by_operator(self, refund: Refund) -> bool:
        if refund.status == RefundStatus.PENDING.value:
            return False
        async with self._sessions() as session:
            return await repository.resolved_by_operator(session, refund.id)

    async def transition(
        self,
        refund_id: str,
        change: RefundChange,
        *,
        from_status: RefundStatus = RefundStatus.PENDING,
        also: Mapping[str, Any] | None = None,
        also_write: Callable[[Refund], BoundWrite] | None = None,
    ) -> Refund | None:
        """Move a refund from ``from_status`` if nobody beat us to it: one transaction holds the
        conditional update, the audit row, the event, the payment's refunded total and
        ``also_write``. None, changing nothing, when the refund had left ``from_status``."""
        if change.to_status not in ALLOWED_REFUND_TRANSITIONS[from_status]:
            raise ValueError(f"{from_status} → {change.to_status} is not a refund transition")
        now = utcnow()
        values = change.refund_values(now)
        if also:
            values.update(also)
        async with self._engine.begin() as connection:
            refund = await repository.conditional_update(connection, refund_id, from_status, values)
            if refund is None:
                return None
            await repository.insert_transition(
                connection,
                refund_id=refund_id,
                from_status=from_status,
                to_status=change.to_status,
                actor=change.actor.value,
                detail=change.detail,
                at=now,
            )
            if RefundStatus.SUCCEEDED in (from_status, change.to_status):
                await repository.recount_refunded(connection, refund.payment_id)
            event_id = await insert_refund_event(
                connection,
                merchant_id=refund.merchant_id,
                payment_id=refund.payment_id,
                refund_id=refund.id,
                event_type=EVENT_FOR_REFUND_STATUS[change.to_status],
                data=refund_json(refund),
                at=now,
            )
            if also_write is not None:
                await execute_write(connection, also_write(refund))
        REFUND_TRANSITIONS.labels(
            refund.provider, from_status.value, change.to_status.value, change.actor.value
        ).inc()
        logger.info(
            "refund %s → %s",
            from_status.value,
            change.to_status.value,
            extra={"refund_id": refund_id, "payment_id": refund.payment_id},
        )
        await self._notifier.events_committed([event_id])
        return refund

    async def _record_read(
        self, refund: Refund, actor: Actor, answer: StatusResult | None, error: str | None = None
    ) -> None:
        try:
            await self._reads.record(
                provider=refund.provider,
                actor=actor.value,
                answer=answer,
                payment_id=refund.payment_id,
                refund_id=refund.id,
                error=error,
            )
        except Exception:
            # The timeline's record of a read is worth less than acting on it.
            logger.exception("could not record a status read", extra={"refund_id": refund.id})

    async def resolve(
        self,
        refund_id: str,
        to_status: RefundStatus,
        *,
        note: str,
        operator_id: str,
        record_audit: RecordAudit,
    ) -> Refund | None:
        """An operator settles a refund in needs_review (see ``PaymentService.resolve``): the
        payment's refunded total follows. None when it was not (or no longer) in needs_review."""
        if to_status not in OPERATOR_REFUND_RESOLUTIONS:
            raise ValueError(f"needs_review → {to_status} is not a refund resolution")
        now = utcnow()
        values: dict[str, Any] = {"status": to_status.value, "updated_at": now, "completed_at": now}
        if to_status is RefundStatus.SUCCEEDED:
            values.update(failure_code=None, failure_message=None)
        else:
            values["failure_message"] = f"Resolved as failed by an operator: {note}"[:255]
        async with self._engine.begin() as connection:
            refund = await repository.conditional_update(
                connection, refund_id, RefundStatus.NEEDS_REVIEW, values
            )
            if refund is None:
                return None
            action_id = await record_audit(connection)
            await repository.insert_transition(
                connection,
                refund_id=refund_id,
                from_status=RefundStatus.NEEDS_REVIEW,
                to_status=to_status,
                actor=Actor.OPERATOR.value,
                detail=note,
                at=now,
                operator_id=operator_id,
            )
            await repository.recount_refunded(connection, refund.payment_id)
            event_id = await insert_refund_event(
                connection,
                merchant_id=refund.merchant_id,
                payment_id=refund.payment_id,
                refund_id=refund.id,
                event_type=EVENT_FOR_REFUND_STATUS[to_status],
                data=refund_json(refund),
                at=now,
                operator_action_id=action_id,
            )
        REFUND_TRANSITIONS.labels(
            refund.provider,
            RefundStatus.NEEDS_REVIEW.value,
            to_status.value,
            Actor.OPERATOR.value,
        ).inc()
        logger.info(
            "refund needs_review → %s, resolved by an operator",
            to_status.value,
            extra={"refund_id": refund_id, "payment_id": refund.payment_id},
        )
        await self._notifier.events_committed([event_id])
        return refund

    async def check_soon(self, refund_id: str) -> None:
        async with self._sessions.begin() as session:
            await repository.check_soon(session, refund_id, utcnow())

    async def _reload(self, refund_id: str) -> Refund:
        async with self._sessions() as session:
            refund = await repository.get(session, refund_id)
        if refund is None:
            raise NotFound(f"No refund {refund_id!r}.")
        return refund


# --- the rules -------------------------------------------------------------------------------


def _require_refundable(payment: Payment) -> None:
    if payment.status != PaymentStatus.SUCCESSFUL.value:
        raise Conflict(
            "payment_not_refundable",
            f"Only a successful payment can be refunded; this one is {payment.status}.",
            payment_id=payment.id,
        )


def _requested_amount(amount: str | int | None, currency: str) -> int | None:
    if amount is None:
        return None
    try:
        return parse_amount(amount, currency)
    except AmountError as exc:
        raise field_error("validation_error", "amount", str(exc)) from None


def _checked_amount(
    payment: Payment,
    requested: int | None,
    held: int,
    count: int,
    support: RefundSupport[Any],
) -> int:
    """The refund's amount once the rules allow it: under the payment's lock, ``held`` and
    ``count`` are what the payment's other refunds hold (pending, succeeded, needs_review)."""
    remaining = payment.amount_minor - held
    if not support.partial and (count > 0 or (requested not in (None, payment.amount_minor))):
        title = registry.spec_for(payment.provider).title
        raise Unprocessable(
            "partial_refund_not_supported",
            f"{title} refunds only the full amount "
            f"({_money(payment.amount_minor, payment.currency)}), once"
            + ("; this payment already has a refund." if count > 0 else "."),
        )
    amount = remaining if requested is None else requested
    if amount <= 0 or amount > remaining:
        raise Unprocessable(
            "refund_exceeds_payment",
            f"{_money(remaining, payment.currency)} of this payment's "
            f"{_money(payment.amount_minor, payment.currency)} is still refundable.",
        )
    return amount


def _money(minor: int, currency: str) -> str:
    return f"{currency} {format_amount(minor, currency)}"


def _change_for(result: RefundResult) -> RefundChange | None:
    """The status change the refund call's own answer calls for (None: wait for the result)."""
    if result.outcome is RefundOutcome.SUCCEEDED:
        return RefundChange(
            to_status=RefundStatus.SUCCEEDED,
            actor=Actor.API,
            detail="the provider's reply",
            provider_transaction_id=result.provider_transaction_id,
        )
    if result.outcome is RefundOutcome.REFUSED:
        return RefundChange(
            to_status=RefundStatus.FAILED,
            actor=Actor.API,
            detail="refused at request",
            failure_code=result.failure_code or FailureCode.PROVIDER_ERROR,
            failure_message=result.failure_message,
        )
    return None
