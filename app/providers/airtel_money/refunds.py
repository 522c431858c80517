"""Airtel Money refunds: ``POST {prefix}/standard/v1/payments/refund``, the full amount, once.

Refunds use the collection credentials and share the collection adapter's cached token (same
cache key). The reply is synchronous and is the refund's only answer: Airtel has no refund status
endpoint. A refund whose answer is lost therefore waits for a person and is never sent again.

The outcome leans towards safety in two ways:

* ``succeeded`` needs a 2xx whose transaction says ``SUCCESS`` and whose status block agrees
  (``refund_wire.success_confirmed``).
* Airtel refuses a second refund of the same transaction. So after a retry, a refusal may only
  mean that an earlier attempt already refunded. A "no" is believed only when it answers the
  first attempt. Later, it is ``unknown``, so a refund that may have moved money is never
  recorded as failed.

    transaction SUCCESS, a success code (or no code and success: true), 2xx  → succeeded
    transaction SUCCESS otherwise (a pending or failing code, a non-2xx)     → unknown
    a failure or not-found code                       first attempt → refused with its code
    ESB000041 (already exists)                        first attempt → refused not_allowed
    401/403, any other 4xx without a code             first attempt → refused (as payments)
    any refusal above after a retry                                  → unknown
    a pending code, a 2xx without a code, 3xx, 5xx, timeouts         → unknown
    the token endpoint refuses our credentials                       → refused provider_error
"""

from __future__ import annotations

import logging

import httpx

from app.providers import outcomes
from app.providers.airtel_money import refund_wire, wire
from app.providers.airtel_money.adapter import RULES, AirtelApi
from app.providers.base import RefundRequest, RefundResult, StatusResult
from app.providers.errors import ProviderRejected, ProviderUnavailable
from app.providers.http import (
    Reply,
    response_json,
)
from app.vocabulary import FailureCode

logger = logging.getLogger(__name__)

REFUND = "airtel refund"
OPERATION = "airtel.refund"


def _decide(reply: Reply) -> RefundResult:
    """What Airtel's final answer to the refund means for the money."""
    response = reply.response
    envelope = wire.parse_envelope(response_json(response))
    refunded = refund_wire.reported_refunded(envelope)
    if envelope is not None and refunded is not None:
        if outcomes.is_success(response) and refund_wire.success_confirmed(envelope):
            logger.info("%s: refunded", REFUND)
            return RefundResult.succeeded(refunded.airtel_money_id)
        # The transaction says SUCCESS while the rest disagrees: it may be done, it may not.
        detail = _describe(response, wire.decisive_code(envelope))
        return _unknown(f"SUCCESS with {detail} (HTTP {response.status_code})")
    answer = wire.decisive_code(envelope)
    if answer is not None:
        return _coded(answer, reply.attempts)
    return _uncoded(response, reply.attempts)


def _coded(answer: wire.AirtelAnswer, attempts: int) -> RefundResult:
    kind = answer.entry.kind
    if kind is wire.AirtelCodeKind.DUPLICATE:
        refusal = outcomes.Refusal(
            FailureCode.NOT_ALLOWED, f"already refunded: {answer.describe()}"
        )
        return _refused(refusal, attempts=attempts)
    if kind in (wire.AirtelCodeKind.FAILED, wire.AirtelCodeKind.NOT_FOUND):
        refusal = outcomes.Refusal(
            answer.entry.failure_code or FailureCode.PROVIDER_ERROR,
            answer.describe(),
            configuration=answer.entry.configuration,
        )
        return _refused(refusal, attempts=attempts, hint=RULES.credentials_hint)
    # Pending ("ambiguous", "in process"), or a success code without a SUCCESS transaction.
    return _unknown(answer.describe())


def _uncoded(response: httpx.Response, attempts: int) -> RefundResult:
    """An answer without a known code: only the HTTP status speaks, as it does for payments."""
    status = response.status_code
    message = outcomes.describe_status(response)
    if status in (401, 403):
        refusal = outcomes.Refusal(FailureCode.PROVIDER_ERROR, message, configuration=True)
        return _refused(refusal, attempts=attempts, hint=RULES.credentials_hint)
    if 400 <= status < 500:
        refusal = outcomes.Refusal(
            FailureCode.INVALID_REQUEST, message, configuration=status != 400
        )
        return _refused(refusal, attempts=attempts, hint=RULES.address_hint)
    if outcomes.is_success(response):
        message = f"{message} without a known code"
    return _unknown(message)


def _refused(refusal: outcomes.Refusal, *, attempts: int, hint: str = "") -> RefundResult:
    """Airtel's "no", believed only when it answers the first attempt.

    After a retry, the earlier attempt may have reached Airtel and refunded. The "no" may then
    be Airtel refusing the repeat.
    """
    if attempts > 1:
        return _unknown(
            f"an earlier attempt may have refunded; attempt {attempts} answered {refusal.message}"
        )
    if refusal.configuration:
        logger.error("%s refused: %s (configuration problem; %s)", REFUND, refusal.message, hint)
    else:
        logger.info("%s refused: %s", REFUND, refusal.message)
    return RefundResult.refused(refusal.code, refusal.message)


def _unknown(message: str) -> RefundResult:
    logger.warning("%s: outcome unknown (%s); a person must check the refund", REFUND, message)
    return RefundResult.unknown(message)


def _describe(response: httpx.Response, answer: wire.AirtelAnswer | None) -> str:
    return answer.describe() if answer is not None else outcomes.describe_status(response)


class AirtelMoneyRefunds(AirtelApi):
    """Airtel Money refunds as a ``RefundProvider``: the collection credentials and token."""

    # --- RefundProvider --------------------------------------------------------------------
    async def request_refund(self, request: RefundRequest) -> RefundResult:
        refused = RULES.check_refund_currency(request, self.currency)
        if refused is not None:
            return refused
        transaction_id = request.payment_transaction_id
        if transaction_id is None or not transaction_id.strip():
            # Airtel names the payment to refund only by its own id for it.
            return RefundResult.refused(
                FailureCode.INVALID_REQUEST, "the payment has no Airtel transaction id"
            )
        return await self._refund(transaction_id)

    async def get_refund_status(self, reference: str) -> StatusResult:
        raise ProviderUnavailable("Airtel Money has no refund status endpoint")

    # --- plumbing --------------------------------------------------------------------------
    async def _refund(self, transaction_id: str) -> RefundResult:
        """Send the refund (retried with the same body) and decide what the reply means."""
        body = refund_wire.refund_body(transaction_id)
        http_request = self._client.build_request(
            "POST",
            f"{self._prefix}/standard/v1/payments/refund",
            headers={**self._headers(), "Content-Type": "application/json"},
            json=body.model_dump(),
        )
        try:
            reply = await self._send(http_request, OPERATION)
        except ProviderUnavailable as exc:
            return _unknown(str(exc))
        except ProviderRejected as exc:
            # The token call refused us, so the refund itself was never sent.
            logger.error("%s: Airtel refused our credentials: %s", REFUND, exc)
            return RefundResult.refused(
                FailureCode.PROVIDER_ERROR, f"Airtel refused the credentials: {exc}"
            )
        return _decide(reply)
