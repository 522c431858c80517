"""Receiving a provider callback: verify, record, dedupe, then let the provider decide.

Checks run in a fixed order — IP allowlist, signature, per-payment token — and each refusal is
recorded and logged with its reason. A callback that passes is a hint only: the payment changes
solely on what the provider's status endpoint says (verify-by-fetch), through the same state
machine as every other path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.callback_tokens import token_is_valid
from app.config import Settings
from app.db import utcnow
from app.identifiers import is_identifier
from app.metrics import CALLBACKS
from app.payments import repository
from app.payments.domain import Actor, PaymentStatus
from app.payments.models import Payment
from app.payments.service import PaymentService
from app.providers import registry
from app.providers.errors import ProviderError
from app.refunds import repository as refunds_repository
from app.refunds.domain import RefundStatus
from app.refunds.models import Refund
from app.refunds.service import RefundService
from app.vocabulary import CallbackHint, CallbackRejection, MalformedCallback, Provider
from app.webhooks.inbox import Inbox, dedupe_key
from app.webhooks.verification import client_ip, ip_allowed

logger = logging.getLogger(__name__)

PROCESSED = {"status": "success", "message": "Webhook processed"}
ALREADY_PROCESSED = {"status": "success", "message": "Already processed"}
RECEIVED = {"status": "success", "message": "Webhook received; the status check continues"}


class CallbackOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IP_DENIED = "ip_denied"
    BAD_SIGNATURE = "bad_signature"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - an outcome name
    MALFORMED = "malformed"
    UNKNOWN_PAYMENT = "unknown_payment"
    MISMATCH = "mismatch"
    DEFERRED = "deferred"


class CallbackSubject(StrEnum):
    """What a callback route is about: a payment's outcome or a refund's."""

    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True, kw_only=True)
class InboundCallback:
    provider: Provider
    raw_body: bytes
    headers: Mapping[str, str]  # lower-case names
    peer: str | None
    path_reference: str | None = None
    path_token: str | None = None
    subject: CallbackSubject = CallbackSubject.PAYMENT


@dataclass(frozen=True)
class CallbackReply:
    outcome: CallbackOutcome
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)
    problem_code: str | None = None  # set for refusals: rendered as problem+json


def _refusal(outcome: CallbackOutcome, status: int, code: str, detail: str) -> CallbackReply:
    return CallbackReply(outcome, status, {"detail": detail}, problem_code=code)


class CallbackService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        payments: PaymentService,
        refunds: RefundService,
        callback_secret: bytes,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._payments = payments
        self._refunds = refunds
        self._callback_secret = callback_secret
        self._inbox = Inbox(engine, sessions)
        self._background: set[asyncio.Task[CallbackOutcome]] = set()

    async def receive(self, callback: InboundCallback) -> CallbackReply:
        reply = await self._receive(callback)
        CALLBACKS.labels(callback.provider.value, reply.outcome.value).inc()
        return reply

    async def _receive(self, callback: InboundCallback) -> CallbackReply:
        source = client_ip(
            callback.peer,
            callback.headers.get("x-forwarded-for"),
            self._settings.trusted_proxy_networks,
        )
        source_ip = str(source) if source is not None else None

        async def refuse(reply: CallbackReply, payment_id: str | None = None) -> CallbackReply:
            logger.warning(
                "%s callback refused: %s",
                callback.provider.value,
                reply.outcome.value,
                extra={"provider": callback.provider.value, "source_ip": source_ip},
            )
            await self._inbox.record(
                provider=callback.provider,
                raw_body=callback.raw_body,
                headers=callback.headers,
                source_ip=source_ip,
                outcome=reply.outcome.value,
                payment_id=payment_id,
            )
            return reply

        rejection = self._authenticate(callback, source)
        if rejection is not None:
            outcome, detail = _REFUSALS[rejection]
            return await refuse(_refusal(outcome, rejection.status_code, rejection.value, detail))

        try:
            hint = self._parse(callback)
        except MalformedCallback as exc:
            return await refuse(
                _refusal(CallbackOutcome.MALFORMED, 400, "malformed_json", str(exc))
            )

        if callback.subject is CallbackSubject.REFUND:
            return await self._receive_refund(callback, hint, source_ip, refuse)

        payment = await self._find_payment(callback, hint)
        if payment is None:
            return await refuse(
                _refusal(CallbackOutcome.UNKNOWN_PAYMENT, 404, "not_found", "No such payment here.")
            )

        callback_id = await self._inbox.record(
            provider=callback.provider,
            raw_body=callback.raw_body,
            headers=callback.headers,
            source_ip=source_ip,
            outcome=CallbackOutcome.ACCEPTED.value,
            payment_id=payment.id,
            key=dedupe_key(callback.provider, payment.id, callback.raw_body),
        )
        if callback_id is None:
            return CallbackReply(CallbackOutcome.DUPLICATE, 200, ALREADY_PROCESSED)

        logger.info(
            "%s callback accepted (claims %s)",
            callback.provider.value,
            hint.claimed_status,
            extra={"payment_id": payment.id, "provider": callback.provider.value},
        )
        return await self._verify_by_fetch(
            lambda: self._check(payment, callback_id), lambda: self._check_soon(payment.id)
        )

    async def _receive_refund(
        self,
        callback: InboundCallback,
        hint: CallbackHint,
        source_ip: str | None,
        refuse: Callable[[CallbackReply], Awaitable[CallbackReply]],
    ) -> CallbackReply:
        """A refund's callback, on its per-refund URL: the path names the refund, the body is a
        hint, and the refund changes only on the provider's refund status."""
        refund = await self._find_refund(callback)
        if refund is None:
            return await refuse(
                _refusal(CallbackOutcome.UNKNOWN_PAYMENT, 404, "not_found", "No such refund here.")
            )
        callback_id = await self._inbox.record(
            provider=callback.provider,
            raw_body=callback.raw_body,
            headers=callback.headers,
            source_ip=source_ip,
            outcome=CallbackOutcome.ACCEPTED.value,
            payment_id=refund.payment_id,
            refund_id=refund.id,
            key=dedupe_key(callback.provider, refund.id, callback.raw_body),
        )
        if callback_id is None:
            return CallbackReply(CallbackOutcome.DUPLICATE, 200, ALREADY_PROCESSED)
        logger.info(
            "%s refund callback accepted (claims %s)",
            callback.provider.value,
            hint.claimed_status,
            extra={"refund_id": refund.id, "provider": callback.provider.value},
        )
        return await self._verify_by_fetch(
            lambda: self._check_refund(refund, callback_id),
            lambda: self._refunds.check_soon(refund.id),
        )

    async def _find_refund(self, callback: InboundCallback) -> Refund | None:
        reference = callback.path_reference
        if reference is None or not is_identifier(reference):
            return None
        async with self._sessions() as session:
            return await refunds_repository.get_by_provider_reference(
                session, callback.provider.value, reference
            )

    async def _check_refund(self, found: Refund, callback_id: int) -> CallbackOutcome:
        try:
            refund = await self._refunds.check_with_provider(found, Actor.CALLBACK)
        except Exception as exc:
            log = logger.warning if isinstance(exc, ProviderError) else logger.exception
            log(
                "refund callback check deferred: %s",
                type(exc).__name__,
                extra={"refund_id": found.id},
            )
            await self._inbox.set_outcome(
                callback_id, CallbackOutcome.DEFERRED.value, release_key=True
            )
            await self._refunds.check_soon(found.id)
            return CallbackOutcome.DEFERRED
        if refund.status == RefundStatus.NEEDS_REVIEW.value:
            await self._inbox.set_outcome(callback_id, CallbackOutcome.MISMATCH.value)
            return CallbackOutcome.MISMATCH
        return CallbackOutcome.ACCEPTED

    # --- checks ----------------------------------------------------------------------------
    def _authenticate(self, callback: InboundCallback, source: Any) -> CallbackRejection | None:
        spec = registry.spec_for(callback.provider)
        provider_settings = spec.settings_from(self._settings)
        if not ip_allowed(source, provider_settings.allowed_networks):
            return CallbackRejection.IP_DENIED
        rejection = spec.check_signature(provider_settings, callback.raw_body, callback.headers)
        if rejection is not None:
            return rejection
        if callback.path_reference is not None and not token_is_valid(
            self._callback_secret, callback.path_reference, callback.path_token or ""
        ):
            return CallbackRejection.TOKEN_INVALID
        return None

    @staticmethod
    def _parse(callback: InboundCallback) -> CallbackHint:
        return registry.spec_for(callback.provider).parse_callback(callback.raw_body)

    async def _find_payment(self, callback: InboundCallback, hint: CallbackHint) -> Payment | None:
        if callback.path_reference is not None and not is_identifier(callback.path_reference):
            return None
        reference = callback.path_reference or hint.reference
        async with self._sessions() as session:
            if reference is not None:
                payment = await repository.get_by_provider_reference(
                    session, callback.provider, reference
                )
                if payment is not None:
                    return payment
                if callback.path_reference is not None:
                    return None
            spec = registry.spec_for(callback.provider)
            if spec.callback_may_name_only_the_order and hint.order_id is not None:
                # The original guide's bodies name the order (externalId). Only an
                # unambiguous match is taken; the provider's answer still decides.
                return await repository.sole_payment_for_order(
                    session, callback.provider, hint.order_id
                )
        return None

    # --- verify-by-fetch ---------------------------------------------------------------------
    async def _verify_by_fetch(
        self,
        check: Callable[[], Coroutine[Any, Any, CallbackOutcome]],
        check_soon: Callable[[], Awaitable[None]],
    ) -> CallbackReply:
        """Run ``check`` (ask the provider, apply its answer) within the callback deadline; past
        it, answer now, let the check finish in the background and ``check_soon`` (the
        reconciler looks first) in case this process dies before it does."""
        task = asyncio.create_task(check())
        # MTN is said to wait about 2 s: past the deadline the check goes on in the background.
        deadline = self._settings.callback_verify_deadline_seconds
        done, _ = await asyncio.wait({task}, timeout=deadline)
        if task in done:
            outcome = task.result()
            if outcome is CallbackOutcome.DEFERRED:
                return CallbackReply(outcome, 200, RECEIVED)
            return CallbackReply(outcome, 200, PROCESSED)
        # Slow provider: answer now, let the check finish here, and make the reconciler look
        # at this payment first should this process die before it does.
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        await check_soon()
        return CallbackReply(CallbackOutcome.DEFERRED, 200, RECEIVED)

    async def _check(self, found: Payment, callback_id: int) -> CallbackOutcome:
        payment_id = found.id
        try:
            payment = await self._payments.check_with_provider(found, Actor.CALLBACK)
        except Exception as exc:
            # Whatever went wrong, the callback is on record and the reconciler will ask again.
            log = logger.warning if isinstance(exc, ProviderError) else logger.exception
            log(
                "callback check deferred: %s",
                type(exc).__name__,
                extra={"payment_id": payment_id},
            )
            await self._inbox.set_outcome(
                callback_id, CallbackOutcome.DEFERRED.value, release_key=True
            )
            await self._check_soon(payment_id)
            return CallbackOutcome.DEFERRED
        outcome = (
            CallbackOutcome.MISMATCH
            if payment.status == PaymentStatus.NEEDS_REVIEW.value
            else CallbackOutcome.ACCEPTED
        )
        if outcome is not CallbackOutcome.ACCEPTED:
            await self._inbox.set_outcome(callback_id, outcome.value)
        return outcome

    async def _check_soon(self, payment_id: str) -> None:
        async with self._sessions.begin() as session:
            await repository.update_fields(session, payment_id, {"next_check_at": utcnow()})

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


_REFUSALS = {
    CallbackRejection.IP_DENIED: (
        CallbackOutcome.IP_DENIED,
        "This address may not send callbacks.",
    ),
    CallbackRejection.MISSING_SIGNATURE: (
        CallbackOutcome.BAD_SIGNATURE,
        "The callback is not signed.",
    ),
    CallbackRejection.BAD_SIGNATURE: (
        CallbackOutcome.BAD_SIGNATURE,
        "The callback signature does not verify.",
    ),
    CallbackRejection.TOKEN_INVALID: (
        CallbackOutcome.TOKEN_INVALID,
        "The callback token is not valid for this payment.",
    ),
}
