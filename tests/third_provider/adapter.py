"""Zed Money's adapter: its two HTTP calls and what its answers mean."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from app.config import Settings
from app.money import format_amount, parse_amount
from app.providers.base import (
    InitiationResult,
    PaymentRequest,
    ProviderPaymentStatus,
    StatusResult,
)
from app.providers.errors import ProviderUnavailable
from app.providers.http import RetryPolicy, client_for, response_json, send_with_retries
from app.vocabulary import FailureCode, Provider

if TYPE_CHECKING:
    from tests.third_provider import ZedMoneySettings

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
        body = {
            "ref": request.reference,
            "msisdn": request.msisdn,
            "amount": format_amount(request.amount_minor, request.currency),
            "currency": request.currency,
        }
        http_request = self._client.build_request(
            "POST", "/v2/collect", json=body, headers=self._headers
        )
        try:
            reply = await send_with_retries(
                self._client, http_request, policy=self._policy, provider=self.name,
                operation="zed.request_to_pay",
            )  # fmt: skip
        except ProviderUnavailable as exc:
            return InitiationResult.unknown(str(exc))
        if reply.response.status_code == 202:
            return InitiationResult.accepted()
        return InitiationResult.refused(
            FailureCode.NOT_ALLOWED, f"HTTP {reply.response.status_code}"
        )

    async def get_status(self, reference: str) -> StatusResult:
        http_request = self._client.build_request(
            "GET", f"/v2/collect/{reference}", headers=self._headers
        )
        reply = await send_with_retries(
            self._client, http_request, policy=self._policy, provider=self.name,
            operation="zed.status",
        )  # fmt: skip
        answer: Any = response_json(reply.response)
        if reply.response.status_code != 200 or not isinstance(answer, dict):
            raise ProviderUnavailable(f"zed.status: HTTP {reply.response.status_code}")
        return StatusResult(
            status=_STATES.get(str(answer.get("state")), ProviderPaymentStatus.PENDING),
            amount_minor=parse_amount(str(answer["amount"]), str(answer["currency"])),
            currency=str(answer["currency"]),
            provider_transaction_id=answer.get("receipt"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
