"""Zed Money's adapter: its two HTTP calls and what its answers mean.

What an unreachable Zed, a refused merchant token or an unexpected status means for the money
is not decided here: ``RULES`` (``app.providers.outcomes``) holds the rules every adapter shares.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from app.config import Settings
from app.money import format_amount, parse_amount
from app.providers import outcomes
from app.providers.base import (
    InitiationResult,
    PaymentRequest,
    ProviderPaymentStatus,
    StatusResult,
)
from app.providers.errors import ProviderUnavailable
from app.providers.http import RetryPolicy, client_for, response_json, send_with_retries
from app.vocabulary import Provider

if TYPE_CHECKING:
    from tests.third_provider import ZedMoneySettings

RULES = outcomes.OutcomeRules(
    title="Zed Money",
    company="Zed",
    logger=logging.getLogger(__name__),
    address_hint="check ZED_MONEY_API_URL",
    credentials_hint="check ZED_MONEY_MERCHANT_TOKEN",
)

_STATES = {
    "WAITING": ProviderPaymentStatus.PENDING,
    "DONE": ProviderPaymentStatus.SUCCESSFUL,
    "DECLINED": ProviderPaymentStatus.FAILED,
}


class ZedMoneyCollection:
    name = Provider("zed_money")

    def __init__(
        self, client: httpx.AsyncClient, token: str, currency: str, policy: RetryPolicy | None
    ) -> None:
        self._client = client
        self._headers = {"Authorization": f"Token {token}"}
        self.currency = currency
        self._policy = policy or RetryPolicy()

    @classmethod
    def from_settings(
        cls, zed: ZedMoneySettings, settings: Settings, *, retry_policy: RetryPolicy | None
    ) -> ZedMoneyCollection:
        assert zed.merchant_token is not None
        return cls(
            client_for(settings, zed.api_url), zed.merchant_token, zed.currency, retry_policy
        )

    async def request_payment(self, request: PaymentRequest) -> InitiationResult:
        refused = RULES.check_currency(request, self.currency)
        if refused is not None:
            return refused
        body = {
            "ref": request.reference,
            "msisdn": request.msisdn,
            "amount": format_amount(request.amount_minor, request.currency),
            "currency": request.currency,
        }
        http_request = self._client.build_request(
            "POST", "/v2/collect", json=body, headers=self._headers
        )
        sending = send_with_retries(
            self._client, http_request, policy=self._policy, provider=self.name,
            operation="zed.request_to_pay",
        )  # fmt: skip
        return await RULES.initiate(sending, log_name="zed collect")

    async def get_status(self, reference: str) -> StatusResult:
        http_request = self._client.build_request(
            "GET", f"/v2/collect/{reference}", headers=self._headers
        )
        sending = send_with_retries(
            self._client, http_request, policy=self._policy, provider=self.name,
            operation="zed.status",
        )  # fmt: skip
        response = await RULES.read_or_unavailable(sending, operation="zed.status")
        not_found = outcomes.not_found_status(response)
        if not_found is not None:
            return not_found
        RULES.require_success(response, operation="zed.status")
        answer: Any = response_json(response)
        if not isinstance(answer, dict):
            raise ProviderUnavailable("zed.status: unreadable answer")
        return StatusResult(
            status=_STATES.get(str(answer.get("state")), ProviderPaymentStatus.PENDING),
            amount_minor=parse_amount(str(answer["amount"]), str(answer["currency"])),
            currency=str(answer["currency"]),
            provider_transaction_id=answer.get("receipt"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
