"""The app with in-memory providers for payments and refunds, and payments ready to refund."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.runtime import Runtime
from app.vocabulary import Provider
from tests.fakes import FakeProvider, FakeRefundProvider
from tests.payments.test_create_payment import VALID

AIRTEL_PHONE = "0752 123 456"


@pytest.fixture
def fake_refunds() -> dict[Provider, FakeRefundProvider]:
    return {
        Provider.MTN_MOMO: FakeRefundProvider(Provider.MTN_MOMO),
        Provider.AIRTEL_MONEY: FakeRefundProvider(Provider.AIRTEL_MONEY),
    }


@pytest.fixture
async def app(
    settings: Any,
    fake_providers: dict[Provider, FakeProvider],
    fake_refunds: dict[Provider, FakeRefundProvider],
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings, providers=fake_providers, refund_providers=fake_refunds, background_jobs=False
    )
    async with LifespanManager(application):
        yield application


class Payments:
    """Makes successful payments through the API (the fake provider confirms them)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        providers: dict[Provider, FakeProvider],
    ) -> None:
        self._client = client
        self._auth = auth
        self._providers = providers
        self._count = 0

    async def successful(
        self,
        provider: Provider = Provider.MTN_MOMO,
        amount: str = "50000",
        transaction_id: str | None = "txn-1",
    ) -> dict[str, Any]:
        self._count += 1
        phone = VALID["phone_number"] if provider == Provider.MTN_MOMO else AIRTEL_PHONE
        created = await self._client.post(
            "/v1/payments",
            json={
                **VALID,
                "order_id": f"ORD-R{self._count}",
                "amount": amount,
                "provider": provider.value,
                "phone_number": phone,
            },
            headers=self._auth,
        )
        assert created.status_code == 201, created.text
        payment = created.json()
        self._providers[provider].status = StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL,
            amount_minor=int(amount),
            currency="UGX",
            provider_transaction_id=transaction_id,
        )
        refreshed = await self._client.post(
            f"/v1/payments/{payment['id']}/refresh", headers=self._auth
        )
        assert refreshed.json()["status"] == "successful", refreshed.text
        self._providers[provider].status = None
        result: dict[str, Any] = refreshed.json()
        return result


@pytest.fixture
def payments(
    client: httpx.AsyncClient, auth: dict[str, str], fake_providers: dict[Provider, FakeProvider]
) -> Payments:
    return Payments(client, auth, fake_providers)


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime
