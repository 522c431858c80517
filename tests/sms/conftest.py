"""SMS receipts on both backends, Africa's Talking faked at the wire with respx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from app.config import Settings
from app.merchants.service import NewMerchantCredentials, update_sms_receipts
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.runtime import Runtime
from app.vocabulary import Provider
from tests.conftest import make_settings
from tests.fakes import FakeProvider

AT_URL = "https://africastalking.test"
SEND_URL = f"{AT_URL}/version1/messaging"
AT_API_KEY = "at-secret-api-key-123"
CALLBACK_TOKEN = "at-callback-token-456"
PAYER = "256772123456"
MASKED_PAYER = "2567*****456"


def recipients(status_code: int, status: str, message_id: str | None = None) -> dict[str, Any]:
    recipient: dict[str, Any] = {"statusCode": status_code, "number": "+" + PAYER, "status": status}
    if message_id is not None:
        recipient["messageId"] = message_id
    return {"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [recipient]}}


ACCEPTED = recipients(101, "Success", "ATXid_0001")


@pytest.fixture
def settings(clean_db: str) -> Settings:
    return make_settings(
        clean_db,
        africastalking_api_url=AT_URL,
        africastalking_username="sandbox",
        africastalking_api_key=AT_API_KEY,
        africastalking_callback_token=CALLBACK_TOKEN,
    )


@pytest.fixture
def africastalking() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.post("https://shop.example/hooks").respond(204)
        yield router


@pytest.fixture
async def sms_on(runtime: Runtime, merchant: NewMerchantCredentials) -> NewMerchantCredentials:
    await update_sms_receipts(runtime.sessions, merchant.id, enabled=True)
    return merchant


async def successful_payment(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    providers: dict[Provider, FakeProvider],
    *,
    order_id: str = "ORD-1001",
    phone: str = "0772 123 456",
    transaction_id: str | None = "MP210603.1234.L06941",
) -> dict[str, Any]:
    created = await client.post(
        "/v1/payments",
        headers=auth,
        json={"order_id": order_id, "amount": "50000", "currency": "UGX", "phone_number": phone},
    )
    assert created.status_code == 201, created.text
    providers[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=50000,
        currency="UGX",
        provider_transaction_id=transaction_id,
    )
    refreshed = await client.post(f"/v1/payments/{created.json()['id']}/refresh", headers=auth)
    assert refreshed.json()["status"] == "successful"
    payment: dict[str, Any] = refreshed.json()
    return payment
