"""MTN MoMo Collection: request-to-pay, its status, and the account checks around it.

Behaviour only (paths, headers, which answers are final); the JSON lives in ``wire.py``.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from app.config import Settings
from app.money import AmountError
from app.providers.base import (
    InitiationResult,
    PaymentRequest,
    ProviderPaymentStatus,
    StatusResult,
)
from app.providers.errors import ProviderNotConfigured, ProviderRejected, ProviderUnavailable
from app.providers.http import (
    Reply,
    RetryPolicy,
    client_for,
    is_transient_status,
    response_json,
    send_with_retries,
)
from app.providers.mtn_momo import wire
from app.providers.mtn_momo.settings import MtnMomoSettings
from app.providers.tokens import (
    AccessToken,
    CachedTokenAuth,
    TokenCache,
    credentials_fingerprint,
)
from app.vocabulary import FailureCode, Provider

logger = logging.getLogger(__name__)

TOKEN_PATH = "/collection/token/"  # noqa: S105 (a path, not a secret)
REQUEST_TO_PAY_PATH = "/collection/v1_0/requesttopay"
BALANCE_PATH = "/collection/v1_0/account/balance"


def _error_code(response: httpx.Response) -> str | None:
    error = wire.parse_error(response_json(response))
    return error.code.strip().upper() if error and error.code else None


def _describe(response: httpx.Response) -> str:
    error = wire.parse_error(response_json(response))
    if error is None:
        return f"HTTP {response.status_code}"
    detail = f"{error.code}: {error.message}" if error.message else str(error.code)
    return f"HTTP {response.status_code} {detail}"


def _is_transient_initiation(response: httpx.Response) -> bool:
    if not is_transient_status(response):
        return False
    # A 500 carrying a final business or configuration code is MTN's way of saying "no".
    return wire.final_initiation_refusal(_error_code(response)) is None


def _is_transient_token(response: httpx.Response) -> bool:
    # Bad credentials have been seen as 500 {"error": "login_failed"}: no retry fixes those.
    payload = response_json(response)
    if isinstance(payload, dict) and payload.get("error") == "login_failed":
        return False
    return is_transient_status(response)


def _is_transient_query(response: httpx.Response) -> bool:
    if not is_transient_status(response):
        return False
    return _error_code(response) not in wire.MTN_CONFIGURATION_ERRORS


class MtnMomoCollection:
    """The MTN MoMo Collection product as a ``PaymentProvider``."""

    name: Provider = Provider.MTN_MOMO

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        api_user: str,
        api_key: SecretStr,
        subscription_key: SecretStr,
        target_environment: str,
        currency: str,
        token_cache: TokenCache,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._api_user = api_user
        self._api_key = api_key
        self._subscription_key = subscription_key
        self._target_environment = target_environment
        self.currency = currency
        self._policy = retry_policy or RetryPolicy()
        fingerprint = credentials_fingerprint(
            str(client.base_url),
            api_user,
            api_key.get_secret_value(),
            subscription_key.get_secret_value(),
        )
        self._auth = CachedTokenAuth(
            cache=token_cache, key=f"mtn_momo:collection:{fingerprint}", fetch=self._fetch_token
        )

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

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- PaymentProvider ------------------------------------------------------------------
    async def request_payment(self, request: PaymentRequest) -> InitiationResult:
        if request.currency != self.currency:
            return InitiationResult.refused(
                FailureCode.INVALID_REQUEST,
                f"MTN MoMo is configured for {self.currency}, not {request.currency}",
            )
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
        try:
            reply = await send_with_retries(
                self._client,
                http_request,
                policy=self._policy,
                provider=self.name,
                operation="mtn.request_to_pay",
                auth=self._auth,
                is_transient=_is_transient_initiation,
            )
        except ProviderUnavailable as exc:
            logger.warning("mtn request-to-pay outcome unknown: %s", exc)
            return InitiationResult.unknown(str(exc))
        except ProviderRejected as exc:
            logger.error("mtn refused our credentials: %s", exc)
            return InitiationResult.refused(
                FailureCode.PROVIDER_ERROR, f"MTN refused the credentials: {exc}"
            )
        return self._initiation_result(reply)

    def _initiation_result(self, reply: Reply) -> InitiationResult:
        response = reply.response
        status = response.status_code
        if 200 <= status < 300:
            return InitiationResult.accepted()
        if status == 409:
            # Our reference already exists: an earlier attempt landed. Same request, not a new one.
            logger.info("mtn request-to-pay: reference already exists, treated as accepted")
            return InitiationResult.accepted()
        message = _describe(response)
        if status in (401, 403):
            if reply.attempts > 1:
                logger.warning("mtn request-to-pay: %s after a retry; outcome unknown", message)
                return InitiationResult.unknown(message)
            logger.error("mtn request-to-pay refused our credentials (%s)", message)
            return InitiationResult.refused(FailureCode.PROVIDER_ERROR, message)
        code = _error_code(response)
        refusal = wire.final_initiation_refusal(code)
        if refusal is not None:
            if code in wire.MTN_CONFIGURATION_ERRORS:
                logger.error("mtn request-to-pay refused: %s (configuration problem)", message)
            else:
                logger.info("mtn request-to-pay refused: %s", message)
            return InitiationResult.refused(refusal, message)
        if 400 <= status < 500:
            if status != 400:
                logger.error("mtn request-to-pay: unexpected %s; check MTN_MOMO_API_URL", message)
            return InitiationResult.refused(FailureCode.INVALID_REQUEST, message)
        logger.warning("mtn request-to-pay: unexpected %s; outcome unknown", message)
        return InitiationResult.unknown(message)

    async def get_status(self, reference: str) -> StatusResult:
        response = await self._query(
            f"{REQUEST_TO_PAY_PATH}/{quote(reference, safe='')}", operation="mtn.status"
        )
        raw = response_json(response)
        if response.status_code == 404:
            code = _error_code(response)
            # A 404 naming some other error code is not MTN saying it has no record of the
            # reference: failing the payment on it would be a guess.
            if code is None or code in wire.MTN_NOT_FOUND_CODES:
                return StatusResult(
                    status=ProviderPaymentStatus.NOT_FOUND,
                    failure_code=FailureCode.NOT_FOUND_AT_PROVIDER,
                    failure_message=_describe(response),
                    raw=raw if isinstance(raw, dict) else {},
                )
        self._require_success(response, operation="mtn.status")
        try:
            payload = wire.MtnRequestToPayStatus.model_validate(raw)
        except ValidationError:
            raise ProviderUnavailable("mtn.status: unreadable answer") from None
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
        path = f"/collection/v1_0/accountholder/msisdn/{quote(msisdn, safe='')}/active"
        response = await self._query(path, operation="mtn.account_active")
        if response.status_code == 404:
            return False
        self._require_success(response, operation="mtn.account_active")
        try:
            return wire.MtnAccountHolderActive.model_validate(response_json(response)).result
        except ValidationError:
            raise ProviderUnavailable("mtn.account_active: unreadable answer") from None

    async def get_balance(self) -> tuple[str, str]:
        """``(available balance, currency)`` of the collection account, as MTN writes them."""
        response = await self._query(BALANCE_PATH, operation="mtn.balance")
        self._require_success(response, operation="mtn.balance")
        try:
            balance = wire.MtnBalance.model_validate(response_json(response))
        except ValidationError:
            raise ProviderUnavailable("mtn.balance: unreadable answer") from None
        return balance.available_balance, balance.currency

    # --- plumbing --------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {
            "X-Target-Environment": self._target_environment,
            "Ocp-Apim-Subscription-Key": self._subscription_key.get_secret_value(),
        }

    async def _query(self, path: str, *, operation: str) -> httpx.Response:
        """GET with retries. Any failure to get an answer is ``ProviderUnavailable``: a read
        never settles a payment, so the caller only needs to know "no answer"."""
        request = self._client.build_request("GET", path, headers=self._headers())
        try:
            reply = await send_with_retries(
                self._client,
                request,
                policy=self._policy,
                provider=self.name,
                operation=operation,
                auth=self._auth,
                is_transient=_is_transient_query,
            )
        except ProviderRejected as exc:
            logger.error("%s: MTN refused our credentials: %s", operation, exc)
            raise ProviderUnavailable(f"{operation}: credentials refused") from exc
        return reply.response

    @staticmethod
    def _require_success(response: httpx.Response, *, operation: str) -> None:
        if 200 <= response.status_code < 300:
            return
        message = _describe(response)
        if response.status_code in (401, 403) or _error_code(response) in (
            wire.MTN_CONFIGURATION_ERRORS
        ):
            logger.error("%s: %s (check MTN credentials and settings)", operation, message)
        else:
            logger.warning("%s: unexpected %s", operation, message)
        raise ProviderUnavailable(f"{operation}: {message}")

    async def _fetch_token(self) -> AccessToken:
        request = self._client.build_request(
            "POST",
            TOKEN_PATH,
            headers={"Ocp-Apim-Subscription-Key": self._subscription_key.get_secret_value()},
        )
        reply = await send_with_retries(
            self._client,
            request,
            policy=self._policy,
            provider=self.name,
            operation="mtn.token",
            auth=httpx.BasicAuth(self._api_user, self._api_key.get_secret_value()),
            is_transient=_is_transient_token,
        )
        response = reply.response
        if not 200 <= response.status_code < 300:
            # The body may echo what we sent; only the status goes into the error.
            raise ProviderRejected(
                f"MTN token request refused (HTTP {response.status_code})",
                status_code=response.status_code,
                code=FailureCode.PROVIDER_ERROR,
            )
        try:
            token = wire.MtnToken.model_validate(response_json(response))
        except ValidationError:
            raise ProviderUnavailable("mtn.token: unreadable answer") from None
        return AccessToken.from_response(token.access_token, token.expires_in)
