"""MTN MoMo Collection: request-to-pay, its status, and the account checks around it.

Behaviour only (paths, headers, which answers are final); the JSON lives in ``wire.py``, and what
an answer means for the money is decided by the rules every adapter shares (``RULES``).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

from app.config import Settings
from app.money import AmountError
from app.providers import outcomes
from app.providers.base import InitiationResult, PaymentRequest, StatusResult
from app.providers.errors import ProviderNotConfigured
from app.providers.http import (
    RetryPolicy,
    client_for,
    is_transient_status,
    response_json,
    send_with_retries,
)
from app.providers.mtn_momo import answers, wire
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
    credentials_hint="check MTN credentials and settings",
)

REQUEST_TO_PAY_PATH = "/collection/v1_0/requesttopay"
BALANCE_PATH = "/collection/v1_0/account/balance"


def _reference_already_exists(response: httpx.Response) -> InitiationResult | None:
    if response.status_code != 409:
        return None
    # Our reference already exists: an earlier attempt landed. Same request, not a new one.
    logger.info("mtn request-to-pay: reference already exists, treated as accepted")
    return InitiationResult.accepted()


def _final_refusal(response: httpx.Response) -> outcomes.Refusal | None:
    code = answers.error_code(response)
    failure = wire.final_initiation_refusal(code)
    if failure is None:
        return None
    return outcomes.Refusal(
        failure, answers.describe(response), configuration=code in wire.MTN_CONFIGURATION_ERRORS
    )


def _is_transient_initiation(response: httpx.Response) -> bool:
    if not is_transient_status(response):
        return False
    # A 500 carrying a final business or configuration code is MTN's way of saying "no".
    return wire.final_initiation_refusal(answers.error_code(response)) is None


class MtnMomoCollection(MtnProduct):
    """The MTN MoMo Collection product as a ``PaymentProvider``."""

    product = "collection"
    token_operation = "mtn.token"  # noqa: S105 (an operation name, not a secret)
    rules = RULES

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        token_cache: TokenCache,
        retry_policy: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> MtnMomoCollection:
        mtn = settings.provider_settings(MtnMomoSettings)
        if not (mtn.api_user and mtn.api_key and mtn.subscription_key):
            raise ProviderNotConfigured("MTN MoMo credentials are not set")
        return cls(
            client=client or client_for(settings, mtn.api_url),
            api_user=mtn.api_user,
            api_key=mtn.api_key,
            subscription_key=mtn.subscription_key,
            target_environment=mtn.target_env,
            currency=mtn.currency,
            token_cache=token_cache,
            retry_policy=retry_policy,
        )

    # --- PaymentProvider ------------------------------------------------------------------
    async def request_payment(self, request: PaymentRequest) -> InitiationResult:
        refused = RULES.check_currency(request, self.currency)
        if refused is not None:
            return refused
        try:
            body = wire.request_to_pay_body(request)
        except AmountError as exc:
            return InitiationResult.refused(FailureCode.INVALID_AMOUNT, str(exc))
        headers = self._headers()
        headers["X-Reference-Id"] = request.reference
        headers["Content-Type"] = "application/json"
        if request.callback_url:
            headers["X-Callback-Url"] = request.callback_url
        http_request = self._client.build_request(
            "POST",
            REQUEST_TO_PAY_PATH,
            headers=headers,
            json=body.model_dump(by_alias=True),
        )
        sending = send_with_retries(
            self._client,
            http_request,
            policy=self._policy,
            provider=self.name,
            operation="mtn.request_to_pay",
            auth=self._auth,
            is_transient=_is_transient_initiation,
        )
        return await RULES.initiate(
            sending,
            log_name="mtn request-to-pay",
            describe=answers.describe,
            provider_answer=_reference_already_exists,
            final_refusal=_final_refusal,
        )

    async def get_status(self, reference: str) -> StatusResult:
        operation = "mtn.status"
        response = await self._query(
            f"{REQUEST_TO_PAY_PATH}/{quote(reference, safe='')}", operation=operation
        )
        not_found = outcomes.not_found_status(
            response, describe=answers.describe, names_another_error=answers.names_another_error
        )
        if not_found is not None:
            return not_found
        self._require_success(response, operation=operation)
        raw = response_json(response)
        payload = outcomes.parse_answer(wire.MtnRequestToPayStatus, raw, operation=operation)
        result = wire.status_result(payload, raw)
        if payload.status.strip().upper() not in {"PENDING", "SUCCESSFUL", "FAILED"}:
            logger.warning("mtn.status: unknown status %r, kept pending", payload.status)
        return result

    # --- account checks ------------------------------------------------------------------
    async def is_account_active(self, msisdn: str) -> bool:
        """Whether MTN has an active wallet for ``msisdn`` (2567XXXXXXXX).

        MTN answers false "if the account holder is not active or not found"; some
        deployments answer 404 for an unknown number instead.
        """
        operation = "mtn.account_active"
        path = f"/collection/v1_0/accountholder/msisdn/{quote(msisdn, safe='')}/active"
        response = await self._query(path, operation=operation)
        if response.status_code == 404:
            return False
        self._require_success(response, operation=operation)
        payload = response_json(response)
        active = outcomes.parse_answer(wire.MtnAccountHolderActive, payload, operation=operation)
        return active.result

    async def get_balance(self) -> tuple[str, str]:
        """``(available balance, currency)`` of the collection account, as MTN writes them."""
        operation = "mtn.balance"
        response = await self._query(BALANCE_PATH, operation=operation)
        self._require_success(response, operation=operation)
        payload = response_json(response)
        balance = outcomes.parse_answer(wire.MtnBalance, payload, operation=operation)
        return balance.available_balance, balance.currency

    # --- plumbing --------------------------------------------------------------------------
