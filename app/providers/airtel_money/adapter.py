"""Airtel Money collections: the USSD push and the transaction enquiry.

Behaviour only (paths, headers, which answers are final); the JSON and the response-code table
live in ``wire.py``. Airtel's host and path prefix (``/simulate`` on some Uganda hosts) are
configuration.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from app.config import Settings
from app.money import AmountError
from app.providers.airtel_money import wire
from app.providers.airtel_money.settings import AirtelMoneySettings
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
from app.providers.tokens import (
    AccessToken,
    CachedTokenAuth,
    TokenCache,
    credentials_fingerprint,
)
from app.vocabulary import FailureCode, Provider

logger = logging.getLogger(__name__)


def _answer(response: httpx.Response) -> wire.AirtelAnswer | None:
    return wire.decisive_code(wire.parse_envelope(response_json(response)))


def _is_transient(response: httpx.Response) -> bool:
    # An HTTP 5xx is retried (with the same transaction.id) unless its body is Airtel's word on
    # the payment: a refusal, "that id already exists" (an earlier attempt landed), or the
    # wallet's own DP "ambiguous/in process", after which the docs forbid pushing again. A
    # legacy gateway "processing" code (ESB/ROUTER) on a 5xx says nothing about the wallet;
    # pushing the same id again is safe, since a push that did land answers as a duplicate.
    if not is_transient_status(response):
        return False
    answer = _answer(response)
    if answer is None:
        return True
    return answer.entry.kind is wire.AirtelCodeKind.PENDING and not answer.code.startswith("DP")


def normalise_prefix(prefix: str) -> str:
    """``"simulate/"`` or ``"/simulate"`` → ``"/simulate"``; empty stays empty."""
    stripped = prefix.strip().strip("/")
    return f"/{stripped}" if stripped else ""


class AirtelMoneyCollection:
    """Airtel Money collections as a ``PaymentProvider``."""

    name: Provider = Provider.AIRTEL_MONEY

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        client_id: str,
        client_secret: SecretStr,
        country: str,
        currency: str,
        token_cache: TokenCache,
        path_prefix: str = "",
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._client_id = client_id
        self._client_secret = client_secret
        self._country = country
        self.currency = currency
        self._prefix = normalise_prefix(path_prefix)
        self._policy = retry_policy or RetryPolicy()
        fingerprint = credentials_fingerprint(
            str(client.base_url), self._prefix, client_id, client_secret.get_secret_value()
        )
        self._auth = CachedTokenAuth(
            cache=token_cache, key=f"airtel_money:{fingerprint}", fetch=self._fetch_token
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        token_cache: TokenCache,
        retry_policy: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> AirtelMoneyCollection:
        airtel = settings.provider_settings(AirtelMoneySettings)
        if not (airtel.client_id and airtel.client_secret):
            raise ProviderNotConfigured("Airtel Money credentials are not set")
        return cls(
            client=client or client_for(settings, airtel.api_url),
            client_id=airtel.client_id,
            client_secret=airtel.client_secret,
            country=airtel.country,
            currency=airtel.currency,
            path_prefix=airtel.path_prefix,
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
                f"Airtel Money is configured for {self.currency}, not {request.currency}",
            )
        msisdn = wire.national_msisdn(request.msisdn)
        if msisdn is None:
            return InitiationResult.refused(
                FailureCode.INVALID_REQUEST, "not a Uganda mobile number"
            )
        try:
            body = wire.payment_body(
                request, country=self._country, currency=self.currency, msisdn=msisdn
            )
        except AmountError as exc:
            return InitiationResult.refused(FailureCode.INVALID_AMOUNT, str(exc))
        http_request = self._client.build_request(
            "POST",
            f"{self._prefix}/merchant/v1/payments/",
            headers={**self._headers(), "Content-Type": "application/json"},
            json=body.model_dump(),
        )
        try:
            reply = await self._send(http_request, "airtel.push")
        except ProviderUnavailable as exc:
            logger.warning("airtel push outcome unknown: %s", exc)
            return InitiationResult.unknown(str(exc))
        except ProviderRejected as exc:
            logger.error("airtel refused our credentials: %s", exc)
            return InitiationResult.refused(
                FailureCode.PROVIDER_ERROR, f"Airtel refused the credentials: {exc}"
            )
        return self._push_result(reply)

    async def _send(self, request: httpx.Request, operation: str) -> Reply:
        """An authenticated call, retried by Airtel's own rules (see ``_is_transient``)."""
        return await send_with_retries(
            self._client,
            request,
            policy=self._policy,
            provider=self.name,
            operation=operation,
            auth=self._auth,
            is_transient=_is_transient,
        )

    def _push_result(self, reply: Reply) -> InitiationResult:
        response = reply.response
        answer = _answer(response)
        if answer is not None:
            return self._push_answer(answer)
        status = response.status_code
        if 200 <= status < 300:
            envelope = wire.parse_envelope(response_json(response))
            if envelope is not None and envelope.status is not None and envelope.status.success:
                return InitiationResult.accepted()
            logger.warning("airtel push: HTTP %d without a known code; outcome unknown", status)
            return InitiationResult.unknown(f"HTTP {status} without a known code")
        if status in (401, 403):
            if reply.attempts > 1:
                logger.warning("airtel push: HTTP %d after a retry; outcome unknown", status)
                return InitiationResult.unknown(f"HTTP {status}")
            logger.error("airtel push: HTTP %d, check credentials and allowed IPs", status)
            return InitiationResult.refused(FailureCode.PROVIDER_ERROR, f"HTTP {status}")
        if 400 <= status < 500:
            if status != 400:
                logger.error("airtel push: unexpected HTTP %d; check the URL and prefix", status)
            return InitiationResult.refused(FailureCode.INVALID_REQUEST, f"HTTP {status}")
        logger.warning("airtel push: unexpected HTTP %d; outcome unknown", status)
        return InitiationResult.unknown(f"HTTP {status}")

    @staticmethod
    def _push_answer(answer: wire.AirtelAnswer) -> InitiationResult:
        kind = answer.entry.kind
        if kind is wire.AirtelCodeKind.DUPLICATE:
            # Our transaction.id is already at Airtel: an earlier attempt landed. Never push
            # again under a new id; the enquiry tells how it ends.
            logger.info("airtel push: transaction id already exists, treated as accepted")
            return InitiationResult.accepted()
        if kind is wire.AirtelCodeKind.SUCCESS or answer.code == wire.IN_PROCESS:
            return InitiationResult.accepted()
        if kind is wire.AirtelCodeKind.PENDING or answer.code in wire.AMBIGUOUS_AT_PUSH:
            logger.info("airtel push: %s; outcome unknown until enquiry", answer.code)
            return InitiationResult.unknown(answer.describe())
        code = answer.entry.failure_code or FailureCode.PROVIDER_ERROR
        if answer.entry.configuration:
            logger.error("airtel push refused: %s (configuration problem)", answer.describe())
        else:
            logger.info("airtel push refused: %s", answer.code)
        return InitiationResult.refused(code, answer.describe())

    async def get_status(self, reference: str) -> StatusResult:
        path = f"{self._prefix}/standard/v1/payments/{quote(reference, safe='')}"
        request = self._client.build_request("GET", path, headers=self._headers())
        try:
            reply = await self._send(request, "airtel.enquiry")
        except ProviderRejected as exc:
            logger.error("airtel.enquiry: Airtel refused our credentials: %s", exc)
            raise ProviderUnavailable("airtel.enquiry: credentials refused") from exc
        response = reply.response
        raw = response_json(response)
        envelope = wire.parse_envelope(raw)
        if envelope is not None and isinstance(raw, dict):
            result = wire.enquiry_result(envelope, raw)
            if result is not None:
                self._log_unknown_status(envelope)
                return result
        answer = wire.decisive_code(envelope)
        if response.status_code == 404 and answer is None:
            return StatusResult(
                status=ProviderPaymentStatus.NOT_FOUND,
                failure_code=FailureCode.NOT_FOUND_AT_PROVIDER,
                failure_message="HTTP 404",
                raw=raw if isinstance(raw, dict) else {},
            )
        detail = answer.describe() if answer else f"HTTP {response.status_code}"
        if response.status_code in (401, 403) or (answer and answer.entry.configuration):
            logger.error("airtel.enquiry: %s (check Airtel credentials and settings)", detail)
        else:
            logger.warning("airtel.enquiry: no usable answer (%s)", detail)
        raise ProviderUnavailable(f"airtel.enquiry: {detail}")

    @staticmethod
    def _log_unknown_status(envelope: wire.AirtelEnvelope) -> None:
        transaction = envelope.data.transaction if envelope.data else None
        status = (transaction.status or "").strip().upper() if transaction else ""
        if status and status not in wire.KNOWN_ENQUIRY_STATUSES:
            logger.warning("airtel.enquiry: unknown status %r, kept pending", status)

    # --- plumbing --------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"X-Country": self._country, "X-Currency": self.currency, "Accept": "*/*"}

    async def _fetch_token(self) -> AccessToken:
        request = self._client.build_request(
            "POST",
            f"{self._prefix}/auth/oauth2/token",
            headers={"Content-Type": "application/json", "Accept": "*/*"},
            json={
                "client_id": self._client_id,
                "client_secret": self._client_secret.get_secret_value(),
                "grant_type": "client_credentials",
            },
        )
        reply = await send_with_retries(
            self._client,
            request,
            policy=self._policy,
            provider=self.name,
            operation="airtel.token",
        )
        response = reply.response
        if not 200 <= response.status_code < 300:
            raise ProviderRejected(
                f"Airtel token request refused (HTTP {response.status_code})",
                status_code=response.status_code,
                code=FailureCode.PROVIDER_ERROR,
            )
        try:
            token = wire.AirtelToken.model_validate(response_json(response))
        except ValidationError:
            raise ProviderUnavailable("airtel.token: unreadable answer") from None
        return AccessToken.from_response(token.access_token, token.expires_in)
