"""Africa's Talking's SMS API: one form POST per message, its answer read defensively.

Not the ``africastalking`` SDK: it is synchronous, keeps global state and long had no timeout.
The request carries the API key (a header) and the whole number (the body): neither is logged
here, and nothing here logs request or response bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from app.providers.spec import CALLBACK_PREFIX

SEND_PATH = "/version1/messaging"
# Where Africa's Talking posts delivery reports to the gateway. Reports are unsigned: the token
# (AFRICASTALKING_CALLBACK_TOKEN) is what tells a real one from a forgery.
DELIVERY_REPORT_PATH = CALLBACK_PREFIX + "/africastalking/{token}"
# Longer than this and the sender's lease (app.sms.service.CLAIM_LEASE) would be at risk.
SEND_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
ACCEPTED_CODES = frozenset({100, 101, 102})  # Processed, Sent, Queued
REFUSED_CODES = frozenset(range(401, 410))  # RiskHold … DoNotDisturbRejection: final


class SendOutcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  # for good: sending again cannot help
    RETRY = "retry"


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    status_code: int | None = None  # the recipient's statusCode, when one was read
    message_id: str | None = None
    status: str | None = None  # the recipient's status, e.g. InsufficientBalance
    reason: str | None = None  # why a retry: short, no numbers in it


def build_sms_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=SEND_TIMEOUT,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=5),
    )


class AfricasTalking:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str,
        username: str,
        api_key: str,
        sender_id: str | None = None,
    ) -> None:
        self._client = client
        self._url = api_url.rstrip("/") + SEND_PATH
        self._username = username
        self._api_key = api_key
        self._sender_id = sender_id

    async def send(self, to_number: str, message: str) -> SendResult:
        """Send ``message`` to ``to_number`` (``2567…``). Never raises for anything the network
        or Africa's Talking does: every failure is a result."""
        form = {"username": self._username, "to": "+" + to_number, "message": message}
        if self._sender_id:
            form["from"] = self._sender_id
        try:
            response = await self._client.post(
                self._url,
                data=form,
                headers={"apiKey": self._api_key, "Accept": "application/json"},
            )
        except httpx.TimeoutException:
            return SendResult(SendOutcome.RETRY, reason="timeout")
        except httpx.HTTPError as exc:
            return SendResult(SendOutcome.RETRY, reason=type(exc).__name__)
        return read_answer(response)


def read_answer(response: httpx.Response) -> SendResult:
    """Success is a 201 whose first recipient carries its own statusCode; anything else is no
    usable answer, worth trying again."""
    if response.status_code != 201:
        return SendResult(SendOutcome.RETRY, reason=f"HTTP {response.status_code}")
    recipient = _first_recipient(response)
    if recipient is None:
        return SendResult(SendOutcome.RETRY, reason="unreadable answer")
    code = recipient.get("statusCode")
    status = recipient.get("status")
    status_text = status[:40] if isinstance(status, str) else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        return SendResult(SendOutcome.RETRY, reason="unreadable answer")
    if code in ACCEPTED_CODES:
        message_id = recipient.get("messageId")
        if not isinstance(message_id, str) or not message_id or len(message_id) > 100:
            return SendResult(SendOutcome.RETRY, status_code=code, reason="no messageId")
        return SendResult(
            SendOutcome.ACCEPTED, status_code=code, message_id=message_id, status=status_text
        )
    if code in REFUSED_CODES:
        return SendResult(SendOutcome.REFUSED, status_code=code, status=status_text)
    # 500 to 502 and anything unknown: Africa's Talking's side, maybe better later.
    return SendResult(
        SendOutcome.RETRY, status_code=code, status=status_text, reason=f"statusCode {code}"
    )


def _first_recipient(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    data = body.get("SMSMessageData") if isinstance(body, dict) else None
    recipients = data.get("Recipients") if isinstance(data, dict) else None
    if not isinstance(recipients, list) or not recipients:
        return None
    first = recipients[0]
    return first if isinstance(first, dict) else None
