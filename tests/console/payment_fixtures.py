"""Payments for the console's payments pages: rows inserted as the gateway leaves them (many, at
known times, cheaply), and payments brought to needs_review through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert

from app.db import new_id
from app.payments.decision import Change
from app.payments.domain import Actor, PaymentStatus
from app.payments.models import Payment
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.runtime import Runtime
from app.vocabulary import Provider
from tests.fakes import FakeRefundProvider

PHONE = "256772123456"


@dataclass(frozen=True)
class Row:
    id: str
    order_id: str
    created_at: datetime
    provider_reference: str


def payment_row(
    merchant_id: str,
    *,
    at: datetime,
    order_id: str | None = None,
    status: str = "successful",
    provider: str = "mtn_momo",
    phone: str = PHONE,
    amount: int = 50_000,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    """One payments row's values, as the gateway would have written them."""
    return {
        "id": new_id("pay"),
        "merchant_id": merchant_id,
        "order_id": order_id or f"ORD-{uuid.uuid4().hex[:10]}",
        "provider": provider,
        "status": status,
        "amount_minor": amount,
        "currency": "UGX",
        "phone_number": phone,
        "description": "Order",
        "payment_metadata": {},
        "provider_reference": str(uuid.uuid4()),
        "provider_transaction_id": transaction_id,
        "check_count": 0,
        "amount_refunded_minor": 0,
        "created_at": at,
        "updated_at": at,
        "completed_at": at if status != "pending" else None,
    }


async def insert_payments(runtime: Runtime, rows: list[dict[str, Any]]) -> list[Row]:
    """Insert rows in one statement (hundreds cost what one does)."""
    async with runtime.sessions.begin() as session:
        await session.execute(insert(Payment), rows)
    return [
        Row(row["id"], row["order_id"], row["created_at"], row["provider_reference"])
        for row in rows
    ]


async def many_payments(
    runtime: Runtime, merchant_id: str, count: int, *, newest: datetime, **values: Any
) -> list[Row]:
    """``count`` payments a minute apart, the newest at ``newest``; returned newest first."""
    rows = [
        payment_row(merchant_id, at=newest - timedelta(minutes=index), **values)
        for index in range(count)
    ]
    return await insert_payments(runtime, rows)


async def needs_review_payment(
    runtime: Runtime, client: httpx.AsyncClient, auth: dict[str, str], order_id: str
) -> dict[str, Any]:
    """A payment made through the API, then contradicted by its provider: needs_review."""
    created = await client.post(
        "/v1/payments",
        json={
            "order_id": order_id,
            "amount": "50000",
            "currency": "UGX",
            "phone_number": "0772 123 456",
            "provider": "mtn_momo",
            "description": f"Order {order_id}",
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    moved = await runtime.payments.transition(
        created.json()["id"],
        Change(
            to_status=PaymentStatus.NEEDS_REVIEW,
            actor=Actor.CALLBACK,
            detail="amount 40000 != 50000",
            failure_message="Provider reported successful: amount 40000 != 50000 (minor units)",
        ),
    )
    assert moved is not None
    payment: dict[str, Any] = created.json()
    return payment


async def refund_in_review(
    runtime: Runtime,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    payment_id: str,
    fake_refunds: dict[Provider, FakeRefundProvider],
) -> str:
    """A refund of 20,000 the provider then reports as 25,000: needs_review."""
    created = await client.post(
        "/v1/refunds", json={"payment_id": payment_id, "amount": "20000"}, headers=auth
    )
    assert created.status_code == 201, created.text
    fake_refunds[Provider.MTN_MOMO].status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL, amount_minor=25000, currency="UGX"
    )
    await runtime.refund_reconciler.reconcile()
    fake_refunds[Provider.MTN_MOMO].status = None
    refund_id: str = created.json()["id"]
    shown = await client.get(f"/v1/refunds/{refund_id}", headers=auth)
    assert shown.json()["status"] == "needs_review"
    return refund_id
