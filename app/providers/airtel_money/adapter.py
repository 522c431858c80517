"""Airtel Money collections: the USSD push and the transaction enquiry.

Behaviour only (paths, headers, which answers are final); the JSON and the response-code table
live in ``wire.py``, and what an answer means for the money is decided by the rules every adapter
shares (``RULES``). Airtel's host and path prefix (``/simulate`` on some Uganda hosts) are
configuration.
"""

from __future__ import annotations

import logging
from typing import Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from app.config import Settings
from app.money import AmountError
from app.providers import outcomes
from app.providers.airtel_money import wire
from app.providers.airtel_money.settings import AirtelMoneySettings
from app.providers.base import InitiationResult, PaymentRequest, StatusResult
from app.providers.errors import ProviderNotConfigured
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

RULES = outcomes.OutcomeRules(
    title="Airtel Money",
    company="Airtel",
    logger=logger,
    address_hint="check the URL and prefix",
    credentials_hint="check Airtel credentials, settings and allowed IPs",
)
PUSH = "airtel push"


def _answer(response: httpx.Response) -> wire.AirtelAnswer | None:
    return wire.decisive_code(wire.parse_envelope(response_json(response)))


def is_transient(response: httpx.Response) -> bool:
    """Whether an answer is worth sending the same request again (a push or a refund).

    An HTTP 5xx is retried (with the same transaction.id, or the same refund body) unless its
    body is Airtel's word on the request: a refusal, "that id already exists" (an earlier attempt
    landed), or the wallet's own DP "ambiguous/in process", after which the docs forbid pushing
    again. A legacy gateway "processing" code (ESB/ROUTER) on a 5xx says nothing about the
    wallet; sending again is safe, since a push that did land answers as a duplicate and Airtel
    refuses a second refund of one transaction.
    """
    if not is_transient_status(response):
        return False
    answer = _answer(response)
    if answer is None:
        return True
    return answer.entry.kind is wire.AirtelCodeKind.PENDING and not answer.code.startswith("DP")


def _push_answer(response: httpx.Response) -> InitiationResult | None:
    """What Airtel says about the push in its body, whatever the HTTP status: its codes decide,
    and a 2xx without one is accepted only when it says ``success``."""
    answer = _answer(response)
    if answer is not None:
        return _coded_push_answer(answer)
    if not outcomes.is_success(response):
        return None
    status = response.status_code
    envelope = wire.parse_envelope(response_json(response))
    if envelope is not None and envelope.status is not None and envelope.status.success:
        return InitiationResult.accepted()
    logger.warning("airtel push: HTTP %d without a known code; outcome unknown", status)
    return InitiationResult.unknown(f"HTTP {status} without a known code")


def _coded_push_answer(answer: wire.AirtelAnswer) -> InitiationResult:
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
    refusal = outcomes.Refusal(
        answer.entry.failure_code or FailureCode.PROVIDER_ERROR,
        answer.describe(),
        configuration=answer.entry.configuration,
    )
    return RULES.refused(refusal, log_name=PUSH)


def _log_unknown_status(envelope: wire.AirtelEnvelope) -> None:
    transaction = envelope.data.transaction if envelope.data else None
    status = (transaction.status or "").strip().upper() if transaction else ""
    if status and status not in wire.KNOWN_ENQUIRY_STATUSES:
        logger.warning("airtel.enquiry: unknown status %r, kept pending", status)


def normalise_prefix(prefix: str) -> str:
    """``"simulate/"`` or ``"/simulate"`` → ``"/simulate"``; empty stays empty."""
    stripped = prefix.strip().strip("/")
    return f"/{stripped}" if stripped else ""


class AirtelApi:
    """What every Airtel call shares: the credentials, one cached token for the push, the
    enquiry and the refund alike, the country and currency headers, and Airtel's retry rules."""

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
        key = token_cache_key(
            str(client.base_url), self._prefix, client_id, client_secret.get_secret_value()
        )
        self._auth = CachedTokenAuth(cache=token_cache, key=key, fetch=self._fetch_token)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        token_cache: TokenCache,
        retry_policy: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> Self:
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

    async def _send(self, request: httpx.Request, operation: str) -> Reply:
        """An authenticated call, retried by Airtel's own rules (see ``is_transient``)."""
        return await send_with_retries(
            self._client,
            request,
            policy=self._policy,
            provider=self.name,
            operation=operation,
            auth=self._auth,
            is_transient=is_transient,
        )

    def _headers(self) -> dict[str, str]:
        return {"X-Country": self._country, "X-Currency": self.currency, "Accept": "*/*"}

    async def _fetch_token(self) -> AccessToken:
        return await fetch_token(
            self._client,
            self._prefix,
            self._client_id,
            self._client_secret,
            policy=self._policy,
        )


class AirtelMoneyCollection(AirtelApi):
    """Airtel Money collections as a ``PaymentProvider``."""

    # --- PaymentProvider ------------------------------------------------------------------
    async def request_payment(self, request: PaymentRequest) -> InitiationResult:
        refused = RULES.check_currency(request, self.currency)
        if refused is not None:
            return refused
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
        return await RULES.initiate(
            self._send(http_request, "airtel.push"), log_name=PUSH, provider_answer=_push_answer
        )

    async def get_status(self, reference: str) -> StatusResult:
        operation = "airtel.enquiry"
        path = f"{self._prefix}/standard/v1/payments/{quote(reference, safe='')}"
        request = self._client.build_request("GET", path, headers=self._headers())
        response = await RULES.read_or_unavailable(
            self._send(request, operation), operation=operation
        )
        raw = response_json(response)
        envelope = wire.parse_envelope(raw)
        if envelope is not None and isinstance(raw, dict):
            result = wire.enquiry_result(envelope, raw)
            if result is not None:
                _log_unknown_status(envelope)
                return result
        answer = wire.decisive_code(envelope)
        if answer is None:
            not_found = outcomes.not_found_status(response)
            if not_found is not None:
                return not_found
        raise RULES.no_usable_answer(
            response,
            operation=operation,
            detail=answer.describe() if answer else outcomes.describe_status(response),
            configuration=answer is not None and answer.entry.configuration,
        )


def token_cache_key(base_url: str, prefix: str, client_id: str, client_secret: str) -> str:
    """The cache key of the token for these credentials: the push, the enquiry and the refund
    all use it, so one token request serves them all."""
    fingerprint = credentials_fingerprint(base_url, prefix, client_id, client_secret)
    return f"airtel_money:{fingerprint}"


async def fetch_token(
    client: httpx.AsyncClient,
    prefix: str,
    client_id: str,
    client_secret: SecretStr,
    *,
    policy: RetryPolicy,
) -> AccessToken:
    """Airtel's OAuth client-credentials token for these credentials."""
    request = client.build_request(
        "POST",
        f"{prefix}/auth/oauth2/token",
        headers={"Content-Type": "application/json", "Accept": "*/*"},
        json={
            "client_id": client_id,
            "client_secret": client_secret.get_secret_value(),
            "grant_type": "client_credentials",
        },
    )
    reply = await send_with_retries(
        client, request, policy=policy, provider=Provider.AIRTEL_MONEY, operation="airtel.token"
    )
    RULES.require_token_granted(reply.response)
    payload = response_json(reply.response)
    token = outcomes.parse_answer(wire.AirtelToken, payload, operation="airtel.token")
    return AccessToken.from_response(token.access_token, token.expires_in)
