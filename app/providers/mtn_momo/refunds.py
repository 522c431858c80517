"""MTN MoMo Disbursement, as refunds use it: the refund, its status, and the product's token.

Disbursement is a product of its own at MTN, with its own API user, key, subscription key and
token; only the host, the target environment and the currency are the collection's. Behaviour
only here (paths, headers, which answers are final); the JSON lives in ``refund_wire.py``, and
what an answer means for the money is decided by the rules every adapter shares (``RULES``).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

from app.config import Settings
from app.money import AmountError
from app.providers import outcomes
from app.providers.base import (
    InitiationOutcome,
    InitiationResult,
    RefundRequest,
    RefundResult,
    StatusResult,
)
from app.providers.errors import ProviderNotConfigured
from app.providers.http import (
    RetryPolicy,
    client_for,
    is_transient_status,
    response_json,
    send_with_retries,
)
from app.providers.mtn_momo import answers, refund_wire
from app.providers.mtn_momo.product import MtnProduct
from app.providers.mtn_momo.settings import MtnMomoSettings
from app.providers.tokens import (
    TokenCache,
)
from app.vocabulary import FailureCode

logger = logging.getLogger(__name__)

RULES = outcomes.OutcomeRules(
    title="MTN MoMo",
    company="MTN",
    logger=logger,
    address_hint="check MTN_MOMO_API_URL",
    # MTN answers 403 FORBIDDEN IP to Disbursement calls from an address it has not allowed.
    credentials_hint="check the MTN_MOMO_DISBURSEMENT_* credentials and that MTN allows this "
    "server's IP address for Disbursement",
)

REFUND_PATH = "/disbursement/v2_0/refund"
# MTN has one status endpoint for v1 and v2 refunds alike.
REFUND_STATUS_PATH = "/disbursement/v1_0/refund"

LOG_NAME = "mtn refund"


def _reference_already_exists(response: httpx.Response) -> InitiationResult | None:
    if response.status_code != 409:
        return None
    # Our refund's reference already exists: an earlier attempt landed. Same refund, not a new
    # one, and the status read will say how it ends.
    logger.info("%s: reference already exists, treated as accepted", LOG_NAME)
    return InitiationResult.accepted()


def _final_refusal(response: httpx.Response) -> outcomes.Refusal | None:
    code = answers.error_code(response)
    failure = refund_wire.final_refund_refusal(code)
    if failure is None:
        return None
    return outcomes.Refusal(
        failure, answers.describe(response), configuration=refund_wire.is_operator_error(code)
    )


def _is_transient_refund(response: httpx.Response) -> bool:
    if not is_transient_status(response):
        return False
    # A 500 carrying a final business or configuration code is MTN's way of saying "no".
    return refund_wire.final_refund_refusal(answers.error_code(response)) is None


def _as_refund_result(result: InitiationResult) -> RefundResult:
    """The shared rules speak of payments; a refund's answer means the same thing."""
    if result.outcome is InitiationOutcome.ACCEPTED:
        return RefundResult.accepted()
    if result.outcome is InitiationOutcome.REFUSED:
        code = result.failure_code or FailureCode.PROVIDER_ERROR
        return RefundResult.refused(code, result.failure_message or "refused")
    return RefundResult.unknown(result.failure_message or "outcome unknown")


class MtnMomoDisbursement(MtnProduct):
    """The MTN MoMo Disbursement product as a ``RefundProvider``."""

    product = "disbursement"
    token_operation = "mtn.disbursement_token"  # noqa: S105 (an operation name)
    rules = RULES

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        token_cache: TokenCache,
        retry_policy: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> MtnMomoDisbursement:
        mtn = settings.provider_settings(MtnMomoSettings)
        user = mtn.disbursement_api_user
        key = mtn.disbursement_api_key
        subscription_key = mtn.disbursement_subscription_key
        # The second test is the first spelled out, so that the types narrow.
        if not mtn.refunds_configured or not (user and key and subscription_key):
            raise ProviderNotConfigured("MTN MoMo disbursement credentials are not set")
        return cls(
            client=client or client_for(settings, mtn.api_url),
            api_user=user,
            api_key=key,
            subscription_key=subscription_key,
            target_environment=mtn.target_env,
            currency=mtn.currency,
            token_cache=token_cache,
            retry_policy=retry_policy,
        )

    # --- RefundProvider ---------------------------------------------------------------------
    async def request_refund(self, request: RefundRequest) -> RefundResult:
        refused = RULES.check_refund_currency(request, self.currency)
        if refused is not None:
            return refused
        try:
            body = refund_wire.refund_body(request)
        except AmountError as exc:
            return RefundResult.refused(FailureCode.INVALID_AMOUNT, str(exc))
        http_request = self._client.build_request(
            "POST",
            REFUND_PATH,
            headers=self._refund_headers(request),
            json=body.model_dump(by_alias=True),
        )
        sending = send_with_retries(
            self._client,
            http_request,
            policy=self._policy,
            provider=self.name,
            operation="mtn.refund",
            auth=self._auth,
            is_transient=_is_transient_refund,
        )
        result = await RULES.initiate(
            sending,
            log_name=LOG_NAME,
            describe=answers.describe,
            provider_answer=_reference_already_exists,
            final_refusal=_final_refusal,
        )
        return _as_refund_result(result)

    async def get_refund_status(self, reference: str) -> StatusResult:
        operation = "mtn.refund_status"
        response = await self._query(
            f"{REFUND_STATUS_PATH}/{quote(reference, safe='')}", operation=operation
        )
        not_found = outcomes.not_found_status(
            response, describe=answers.describe, names_another_error=answers.names_another_error
        )
        if not_found is not None:
            return not_found
        self._require_success(response, operation=operation)
        raw = response_json(response)
        payload = outcomes.parse_answer(refund_wire.MtnRefundStatus, raw, operation=operation)
        if not refund_wire.is_known_status(payload):
            logger.warning("%s: unknown status %r, kept pending", operation, payload.status)
        return refund_wire.refund_status_result(payload, raw)

    # --- plumbing --------------------------------------------------------------------------

    def _refund_headers(self, request: RefundRequest) -> dict[str, str]:
        headers = self._headers()
        # The refund's own reference, the same on every attempt: a retry that lands twice is
        # answered 409, never paid out twice.
        headers["X-Reference-Id"] = request.reference
        headers["Content-Type"] = "application/json"
        if request.callback_url:
            headers["X-Callback-Url"] = request.callback_url
        return headers
