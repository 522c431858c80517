"""Africa's Talking delivery reports: the form POST telling the sender that an SMS reached a phone.

Like the payment callbacks, a report that cannot be delivered is logged, never raised. Africa's
Talking signs nothing, so the receiver's URL carries a secret token: logs name only its host.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

# MTN Uganda's mobile network code, as Africa's Talking reports it for 2567… numbers.
MTN_UGANDA_NETWORK_CODE = "64110"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReportAttempt:
    message_id: str
    status_code: int | None
    error: str | None
    at: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def delivery_report_form(message_id: str, phone_number: str) -> dict[str, str]:
    """The fields Africa's Talking posts for a message that reached the phone."""
    return {
        "id": message_id,
        "status": "Success",
        "phoneNumber": phone_number,
        "networkCode": MTN_UGANDA_NETWORK_CODE,
    }


class DeliveryReportSender:
    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def attach(self, client: httpx.AsyncClient | None) -> None:
        self._client = client

    async def send(
        self, url: str, *, message_id: str, phone_number: str, timeout_seconds: float
    ) -> DeliveryReportAttempt:
        status_code: int | None = None
        error: str | None = None
        if self._client is None:
            error = "the simulator was started without its lifespan; no HTTP client"
        else:
            try:
                response = await self._client.post(
                    url,
                    data=delivery_report_form(message_id, phone_number),
                    timeout=timeout_seconds,
                )
                status_code = response.status_code
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = type(exc).__name__
        attempt = DeliveryReportAttempt(message_id, status_code, error, time.time())
        if not attempt.delivered:
            logger.warning(
                "simulator SMS delivery report for %s to %s failed: %s",
                message_id,
                urlsplit(url).netloc or "an invalid URL",
                error or f"HTTP {status_code}",
            )
        return attempt
