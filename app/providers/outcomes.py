"""What a provider's answer means for the money: the rules every adapter shares.

An adapter knows its provider's paths, headers and codes; it does not decide on its own what an
unreachable provider, a refused credential or an unexpected status means for a payment. Those
rules are here, once, and they lean one way: when an answer cannot prove that a request was *not*
taken, the outcome is unknown (the payment stays pending and the reconciler asks again), never
refused.

    initiation: unreachable after retries             → unknown
                token refused on the first attempt    → refused provider_error
                the provider's own word in the body   → what it says (the adapter reads it)
                2xx                                   → accepted
                401/403 on the first attempt          → refused provider_error
                401/403 after a retry                 → unknown (an earlier attempt may have landed)
                a code the provider says is final     → refused with that code
                any other 4xx                         → refused invalid_request
                anything else (5xx, 3xx)              → unknown
    reads:      unreachable, credentials refused,
                anything but a usable 2xx             → ProviderUnavailable (a read settles nothing)
                404 naming no other error             → NOT_FOUND
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.providers.base import (
    InitiationResult,
    PaymentRequest,
    ProviderPaymentStatus,
    RefundRequest,
    RefundResult,
    StatusResult,
)
from app.providers.errors import ProviderRejected, ProviderUnavailable
from app.providers.http import Reply, response_json
from app.vocabulary import FailureCode

Model = TypeVar("Model", bound=BaseModel)
Describe = Callable[[httpx.Response], str]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A provider's definitive "no" to a request: sending it again changes nothing."""

    code: FailureCode
    message: str
    # Our account or settings are wrong rather than the payer's request: an operator must act.
    configuration: bool = False


ProviderAnswer = Callable[[httpx.Response], InitiationResult | None]
FinalRefusal = Callable[[httpx.Response], Refusal | None]


def describe_status(response: httpx.Response) -> str:
    """``"HTTP 503"``: the description of an answer whose body says nothing we can use."""
    return f"HTTP {response.status_code}"


def _no_answer(response: httpx.Response) -> InitiationResult | None:
    return None


def _no_refusal(response: httpx.Response) -> Refusal | None:
    return None


def _names_nothing(response: httpx.Response) -> bool:
    return False


def is_success(response: httpx.Response) -> bool:
    return 200 <= response.status_code < 300


def not_found_status(
    response: httpx.Response,
    *,
    describe: Describe = describe_status,
    names_another_error: Callable[[httpx.Response], bool] = _names_nothing,
) -> StatusResult | None:
    """``NOT_FOUND`` when a status read is answered 404, else None.

    A 404 whose body names some other error is not the provider saying it has no record of the
    reference: failing the payment on it would be a guess, so it is not ``NOT_FOUND``.
    """
    if response.status_code != 404 or names_another_error(response):
        return None
    raw = response_json(response)
    return StatusResult(
        status=ProviderPaymentStatus.NOT_FOUND,
        failure_code=FailureCode.NOT_FOUND_AT_PROVIDER,
        failure_message=describe(response),
        raw=raw if isinstance(raw, dict) else {},
    )


def parse_answer(model: type[Model], payload: object, *, operation: str) -> Model:
    """``payload`` read as ``model``; an answer we cannot read is no answer at all."""
    try:
        return model.model_validate(payload)
    except ValidationError:
        raise ProviderUnavailable(f"{operation}: unreadable answer") from None


@dataclass(frozen=True, kw_only=True)
class OutcomeRules:
    """The shared rules, speaking for one provider in its failure messages and log lines.

    An adapter builds one at import and hands it each answer; what stays in the adapter is only
    what its provider's answers say on their own (``provider_answer``, ``final_refusal``).
    """

    title: str  # the product, as a payment's failure message names it: "MTN MoMo"
    company: str  # who holds our credentials: "MTN"
    logger: logging.Logger  # the adapter's, so that its lines are filed under it
    address_hint: str  # what to check when the provider answers as if the URL were wrong
    credentials_hint: str  # what to check when it refuses our credentials

    def check_currency(self, request: PaymentRequest, currency: str) -> InitiationResult | None:
        """A refusal when ``request`` is in another currency than the adapter's, else None.

        The provider would take the amount in its own currency: 1,000 KES is not 1,000 UGX.
        """
        message = self._other_currency(request.currency, currency)
        if message is None:
            return None
        return InitiationResult.refused(FailureCode.INVALID_REQUEST, message)

    def check_refund_currency(self, request: RefundRequest, currency: str) -> RefundResult | None:
        """The same for a refund: the provider would pay the amount out in its own currency."""
        message = self._other_currency(request.currency, currency)
        if message is None:
            return None
        return RefundResult.refused(FailureCode.INVALID_REQUEST, message)

    def _other_currency(self, asked: str, configured: str) -> str | None:
        if asked == configured:
            return None
        return f"{self.title} is configured for {configured}, not {asked}"

    # --- initiation ----------------------------------------------------------------------------
    async def initiate(
        self,
        sending: Awaitable[Reply],
        *,
        log_name: str,
        describe: Describe = describe_status,
        provider_answer: ProviderAnswer = _no_answer,
        final_refusal: FinalRefusal = _no_refusal,
    ) -> InitiationResult:
        """The outcome of a request-to-pay being sent (``sending``: ``send_with_retries(…)``).

        ``log_name`` names the call in log lines ("mtn request-to-pay"); the other arguments are
        those of ``initiation_outcome``.
        """
        try:
            reply = await sending
        except ProviderUnavailable as exc:
            self.logger.warning("%s outcome unknown: %s", log_name, exc)
            return InitiationResult.unknown(str(exc))
        except ProviderRejected as exc:
            # The token call refused us, so the request itself was never sent.
            self.logger.error("%s: %s refused our credentials: %s", log_name, self.company, exc)
            return InitiationResult.refused(
                FailureCode.PROVIDER_ERROR, f"{self.company} refused the credentials: {exc}"
            )
        return self.initiation_outcome(
            reply,
            log_name=log_name,
            describe=describe,
            provider_answer=provider_answer,
            final_refusal=final_refusal,
        )

    def initiation_outcome(
        self,
        reply: Reply,
        *,
        log_name: str,
        describe: Describe = describe_status,
        provider_answer: ProviderAnswer = _no_answer,
        final_refusal: FinalRefusal = _no_refusal,
    ) -> InitiationResult:
        """What the provider's final answer to a request-to-pay means.

        ``provider_answer`` is the provider's own word on this very request, read from the body
        whatever the HTTP status (a duplicate reference, a code that means accepted or refused);
        it wins when it says anything. ``final_refusal`` names the codes the provider means as a
        definitive "no"; it is asked only after the credentials rule, so a refused credential
        after a retry stays unknown whatever the body says. ``describe`` words the answer for the
        failure message and the logs.
        """
        response = reply.response
        answered = provider_answer(response)
        if answered is not None:
            return answered
        status = response.status_code
        if is_success(response):
            return InitiationResult.accepted()
        if status in (401, 403):
            message = describe(response)
            if reply.attempts > 1:
                # A refusal on a retry says nothing about the earlier attempt, which may have
                # reached the provider and been taken.
                self.logger.warning("%s: %s after a retry; outcome unknown", log_name, message)
                return InitiationResult.unknown(message)
            self.logger.error(
                "%s refused our credentials (%s); %s", log_name, message, self.credentials_hint
            )
            return InitiationResult.refused(FailureCode.PROVIDER_ERROR, message)
        refusal = final_refusal(response)
        if refusal is not None:
            return self.refused(refusal, log_name=log_name)
        message = describe(response)
        if 400 <= status < 500:
            if status != 400:
                self.logger.error("%s: unexpected %s; %s", log_name, message, self.address_hint)
            return InitiationResult.refused(FailureCode.INVALID_REQUEST, message)
        self.logger.warning("%s: unexpected %s; outcome unknown", log_name, message)
        return InitiationResult.unknown(message)

    def refused(self, refusal: Refusal, *, log_name: str) -> InitiationResult:
        """A definitive refusal, logged at ERROR when an operator must fix something."""
        if refusal.configuration:
            self.logger.error("%s refused: %s (configuration problem)", log_name, refusal.message)
        else:
            self.logger.info("%s refused: %s", log_name, refusal.message)
        return InitiationResult.refused(refusal.code, refusal.message)

    # --- reads ---------------------------------------------------------------------------------
    async def read_or_unavailable(
        self, sending: Awaitable[Reply], *, operation: str
    ) -> httpx.Response:
        """The answer to a read (a status, a balance). Credentials refused at the token call are
        ``ProviderUnavailable`` too: a read never settles a payment, so the caller only needs to
        know "no answer"."""
        try:
            reply = await sending
        except ProviderRejected as exc:
            self.logger.error("%s: %s refused our credentials: %s", operation, self.company, exc)
            raise ProviderUnavailable(f"{operation}: credentials refused") from exc
        return reply.response

    def require_success(
        self,
        response: httpx.Response,
        *,
        operation: str,
        describe: Describe = describe_status,
        configuration: Callable[[httpx.Response], bool] = _names_nothing,
    ) -> None:
        """Return on a 2xx, else raise ``ProviderUnavailable`` (see ``no_usable_answer``).

        ``configuration`` tells the answers that say our account or settings are wrong.
        """
        if is_success(response):
            return
        raise self.no_usable_answer(
            response,
            operation=operation,
            detail=describe(response),
            configuration=configuration(response),
        )

    def no_usable_answer(
        self, response: httpx.Response, *, operation: str, detail: str, configuration: bool
    ) -> ProviderUnavailable:
        """The error to raise for a read answered with nothing usable, once logged: at ERROR when
        our credentials or settings are to blame, since no retry will fix those."""
        if response.status_code in (401, 403) or configuration:
            self.logger.error("%s: %s (%s)", operation, detail, self.credentials_hint)
        else:
            self.logger.warning("%s: no usable answer (%s)", operation, detail)
        return ProviderUnavailable(f"{operation}: {detail}")

    # --- tokens --------------------------------------------------------------------------------
    def require_token_granted(self, response: httpx.Response) -> None:
        """Raise ``ProviderRejected`` (``provider_error``) unless the token call answered 2xx:
        ``initiate`` turns it into a refusal, ``read_or_unavailable`` into no answer."""
        if is_success(response):
            return
        # The body may echo the credentials we sent: only the status goes into the error.
        raise ProviderRejected(
            f"{self.company} token request refused (HTTP {response.status_code})",
            status_code=response.status_code,
            code=FailureCode.PROVIDER_ERROR,
        )
