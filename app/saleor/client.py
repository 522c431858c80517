"""Calls from the gateway to a Saleor instance: its GraphQL API (with the app's token) and its
public keys. Whatever Saleor answers is checked before it is believed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

SALEOR_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_ANSWER_BYTES = 1 << 20  # a JWKS or a mutation's answer is a few kilobytes
USER_AGENT = "momo-gateway-saleor-app/1"

APP_ID_QUERY = "query AppId { app { id } }"

REPORT_MUTATION = """
mutation ReportTransactionEvent(
  $id: ID!, $type: TransactionEventTypeEnum!, $amount: PositiveDecimal,
  $pspReference: String!, $time: DateTime, $message: String,
  $availableActions: [TransactionActionEnum!]
) {
  transactionEventReport(
    id: $id, type: $type, amount: $amount, pspReference: $pspReference, time: $time,
    message: $message, availableActions: $availableActions
  ) {
    alreadyProcessed
    transactionEvent { id }
    errors { field message code }
  }
}
""".strip()


class SaleorCallFailed(Exception):
    """Saleor could not be reached or gave an answer that is not what its API promises."""


def build_saleor_client() -> httpx.AsyncClient:
    # No redirects: the token goes only to the URL the installation registered.
    return httpx.AsyncClient(
        timeout=SALEOR_TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT}
    )


def jwks_url(saleor_api_url: str) -> str:
    """Saleor publishes its keys at its origin: ``https://shop/graphql/`` →
    ``https://shop/.well-known/jwks.json``."""
    parts = urlsplit(saleor_api_url)
    return urlunsplit((parts.scheme, parts.netloc, "/.well-known/jwks.json", "", ""))


@dataclass(frozen=True)
class EventReport:
    transaction_id: str
    type: str  # CHARGE_SUCCESS, CHARGE_FAILURE, REFUND_SUCCESS, REFUND_FAILURE
    amount: str
    psp_reference: str
    time: str
    message: str
    available_actions: tuple[str, ...]


@dataclass(frozen=True)
class ReportOutcome:
    status_code: int | None
    error: str | None  # None: Saleor recorded the event (or already had it)
    already_processed: bool = False
    skipped: bool = False  # nothing to tell Saleor about this event


class SaleorClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def app_id(self, saleor_api_url: str, token: str) -> str:
        """The id Saleor gives the app that holds ``token``: proof that the token works."""
        answer = await self._graphql(saleor_api_url, token, APP_ID_QUERY, {})
        app = (answer.get("data") or {}).get("app") if isinstance(answer, dict) else None
        app_id = app.get("id") if isinstance(app, dict) else None
        if not isinstance(app_id, str) or not 0 < len(app_id) <= 255:
            raise SaleorCallFailed("Saleor did not say which app the token belongs to")
        return app_id

    async def jwks(self, saleor_api_url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(jwks_url(saleor_api_url))
        except httpx.HTTPError as exc:
            raise SaleorCallFailed(f"JWKS unreachable: {type(exc).__name__}") from None
        keys = _json_answer(response).get("keys")
        if response.status_code != 200 or not isinstance(keys, list) or not keys:
            raise SaleorCallFailed(f"no JWKS at {jwks_url(saleor_api_url)}")
        return {"keys": [key for key in keys if isinstance(key, dict)]}

    async def report(self, saleor_api_url: str, token: str, report: EventReport) -> ReportOutcome:
        variables = {
            "id": report.transaction_id,
            "type": report.type,
            "amount": report.amount,
            "pspReference": report.psp_reference,
            "time": report.time,
            "message": report.message,
            "availableActions": list(report.available_actions),
        }
        try:
            response = await self._post(saleor_api_url, token, REPORT_MUTATION, variables)
        except httpx.TimeoutException:
            return ReportOutcome(None, "timeout")
        except httpx.HTTPError as exc:
            return ReportOutcome(None, f"{type(exc).__name__}: {exc}"[:255])
        if response.status_code != 200:
            return ReportOutcome(response.status_code, f"HTTP {response.status_code}")
        try:
            answer = _json_answer(response)
        except SaleorCallFailed as exc:
            return ReportOutcome(response.status_code, str(exc))
        return ReportOutcome(response.status_code, *_report_result(answer))

    async def _graphql(
        self, saleor_api_url: str, token: str, query: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            response = await self._post(saleor_api_url, token, query, variables)
        except httpx.HTTPError as exc:
            raise SaleorCallFailed(f"Saleor unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise SaleorCallFailed(f"Saleor answered HTTP {response.status_code}")
        return _json_answer(response)

    async def _post(
        self, saleor_api_url: str, token: str, query: str, variables: dict[str, Any]
    ) -> httpx.Response:
        """One GraphQL request as the installed app (its token, never sent anywhere else)."""
        return await self._http.post(
            saleor_api_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )


def _json_answer(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_ANSWER_BYTES:
        raise SaleorCallFailed("Saleor's answer is too large")
    try:
        answer = json.loads(response.content)
    except ValueError:
        raise SaleorCallFailed("Saleor's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise SaleorCallFailed("Saleor's answer is not a JSON object")
    return answer


def _report_result(answer: dict[str, Any]) -> tuple[str | None, bool]:
    """(error, already_processed) from a ``transactionEventReport`` answer."""
    if answer.get("errors"):
        return _messages("GraphQL error", answer["errors"]), False
    result = (answer.get("data") or {}).get("transactionEventReport")
    if not isinstance(result, dict):
        return "no transactionEventReport in Saleor's answer", False
    if result.get("errors"):
        return _messages("Saleor refused the report", result["errors"]), False
    if result.get("alreadyProcessed") is True:
        return None, True
    if not isinstance(result.get("transactionEvent"), dict):
        return "Saleor recorded no transaction event", False
    return None, False


def _messages(prefix: str, errors: Any) -> str:
    items = errors if isinstance(errors, list) else [errors]
    texts = []
    for item in items[:3]:
        if isinstance(item, dict):
            code, message = item.get("code"), item.get("message")
            texts.append(" ".join(str(part) for part in (code, message) if part))
    return f"{prefix}: {'; '.join(texts) or 'unspecified'}"[:255]
