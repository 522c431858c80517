"""The operator's CLI on PostgreSQL, through ``main()``: operators, resolutions, merchant
rotation and switch-off, redelivery, each printing JSON and written to the audit log."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from app.cli import main
from app.db import utcnow
from app.events.delivery import EventDelivery
from app.merchants.models import Merchant
from app.merchants.service import create_merchant
from app.payments.decision import Change
from app.payments.domain import Actor, PaymentStatus
from app.refunds.decision import RefundChange
from app.refunds.domain import RefundStatus
from app.vocabulary import Provider
from tests.conftest import count_rows, make_settings, running_app
from tests.e2e.stack import eventually
from tests.fakes import FakeProvider, FakeRefundProvider
from tests.payments.test_create_payment import VALID

NOTE = "Checked with MTN support: the payer was charged once."


@pytest.fixture
async def gateway(clean_pg: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The API in-process on PostgreSQL with fake providers; DATABASE_URL set for the CLI."""
    monkeypatch.setenv("DATABASE_URL", clean_pg)
    monkeypatch.setenv("REDIS_URL", "")
    providers = {
        Provider.MTN_MOMO: FakeProvider(Provider.MTN_MOMO),
        Provider.AIRTEL_MONEY: FakeProvider(Provider.AIRTEL_MONEY),
    }
    refunds = {Provider.MTN_MOMO: FakeRefundProvider(Provider.MTN_MOMO)}
    async with running_app(make_settings(clean_pg), providers, refunds) as (application, http):
        yield application.state.runtime, http


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run the CLI as an operator would; its JSON output parsed (None when it printed none)."""
    code = await asyncio.to_thread(main, list(argv))
    printed = capsys.readouterr()
    return code, json.loads(printed.out) if printed.out.strip() else None, printed.err


async def admin(capsys: pytest.CaptureFixture[str], email: str = "ops@shop.example") -> str:
    code, created, _ = await cli(capsys, "operators", "create", "--email", email, "--role", "admin")
    assert code == 0
    return str(created["email"])


async def test_operators_are_created_listed_disabled_and_reset(gateway, capsys, monkeypatch):
    runtime, _ = gateway
    code, created, err = await cli(
        capsys, "operators", "create", "--email", "Ops@Shop.example", "--role", "admin"
    )
    assert code == 0
    assert set(created) == {"id", "email", "role", "password"}
    assert created["email"] == "ops@shop.example"
    assert len(created["password"]) >= 12
    assert "cannot be shown again" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-chosen-password\n"))
    code, viewer, _ = await cli(
        capsys, "operators", "create", "--email", "view@shop.example", "--password-stdin"
    )
    assert code == 0
    assert viewer["role"] == "viewer"
    assert viewer["password"] == "a-long-chosen-password"
    code, _, err = await cli(capsys, "operators", "create", "--email", "ops@shop.example")
    assert code == 2
    assert "already exists" in err

    code, listed, _ = await cli(capsys, "operators", "list")
    assert code == 0
    assert {o["email"] for o in listed} == {"ops@shop.example", "view@shop.example"}
    assert all({"password", "password_hash"}.isdisjoint(o) for o in listed)
    code, disabled, _ = await cli(capsys, "operators", "disable", "view@shop.example")
    assert code == 0
    assert disabled["disabled"] is True
    code, reset, _ = await cli(capsys, "operators", "reset-password", "ops@shop.example")
    assert code == 0
    assert reset["password"] != created["password"]
    actions = await count_rows(runtime, "operator_actions", "source = 'cli'")
    assert actions == 4  # two creations, a disable, a reset
    async with runtime.engine.connect() as connection:
        hashes = (await connection.execute(text("SELECT password_hash FROM operators"))).scalars()
        assert all(h.startswith("$argon2id$") for h in hashes)


async def needs_review(runtime, http, auth, order_id: str) -> str:
    created = await http.post("/v1/payments", json={**VALID, "order_id": order_id}, headers=auth)
    payment_id = str(created.json()["id"])
    moved = await runtime.payments.transition(
        payment_id,
        Change(to_status=PaymentStatus.NEEDS_REVIEW, actor=Actor.CALLBACK, detail="amount"),
    )
    assert moved is not None
    return payment_id


async def test_payments_are_shown_listed_and_resolved(gateway, capsys):
    runtime, http = gateway
    merchant = await create_merchant(runtime.sessions, name="Shop", callback_url="https://s.ex/e")
    auth = {"Authorization": f"Bearer {merchant.api_key}"}
    email = await admin(capsys)
    payment_id = await needs_review(runtime, http, auth, "ORD-CLI-R1")

    code, listed, _ = await cli(capsys, "payments", "list", "--status", "needs_review")
    assert code == 0
    assert [p["id"] for p in listed] == [payment_id]
    assert listed[0]["merchant_id"] == merchant.id

    code, _, err = await cli(
        capsys,
        "payments",
        "resolve",
        payment_id,
        "--status",
        "successful",
        "--note",
        "short",
        "--operator",
        email,
    )
    assert code == 2
    assert "at least 10 characters" in err
    code, _, err = await cli(
        capsys,
        "payments",
        "resolve",
        payment_id,
        "--status",
        "successful",
        "--note",
        NOTE,
        "--operator",
        "nobody@shop.example",
    )
    assert code == 2
    assert "no operator" in err

    code, resolved, _ = await cli(
        capsys,
        "payments",
        "resolve",
        payment_id,
        "--status",
        "failed",
        "--note",
        NOTE,
        "--operator",
        email,
    )
    assert code == 0
    assert resolved["status"] == "failed"
    assert [e["type"] for e in resolved["events"]] == ["payment.needs_review", "payment.failed"]
    code, _, err = await cli(
        capsys,
        "payments",
        "resolve",
        payment_id,
        "--status",
        "successful",
        "--note",
        NOTE,
        "--operator",
        email,
    )
    assert code == 2
    assert "is failed" in err
    # The order is free again.
    again = await http.post("/v1/payments", json={**VALID, "order_id": "ORD-CLI-R1"}, headers=auth)
    assert again.status_code == 201

    code, shown, _ = await cli(capsys, "payments", "show", payment_id, "--timeline")
    assert code == 0
    summaries = [entry["summary"] for entry in shown["timeline"]]
    assert "needs_review → failed" in summaries
    assert any(entry["kind"] == "operator_action" for entry in shown["timeline"])
    code, _, err = await cli(capsys, "payments", "show", "pay_unknown")
    assert code == 2
    assert "no payment" in err


async def test_merchant_keys_rotate_with_a_grace_and_a_disabled_merchant_is_refused(
    gateway, capsys
):
    runtime, http = gateway
    shop = await create_merchant(runtime.sessions, name="Shop", callback_url="https://s.ex/e")
    other = await create_merchant(runtime.sessions, name="Other", callback_url="https://o.ex/e")
    old = {"Authorization": f"Bearer {shop.api_key}"}

    code, rotated, _ = await cli(capsys, "merchants", "rotate-key", shop.id)
    assert code == 0
    assert set(rotated) == {"id", "api_key", "previous_key_expires_at"}
    new = {"Authorization": f"Bearer {rotated['api_key']}"}
    assert (await http.get("/v1/payments", headers=new)).status_code == 200
    assert (await http.get("/v1/payments", headers=old)).status_code == 200  # during the grace

    # The grace ended a second ago: the old key is refused.
    async with runtime.sessions.begin() as session:
        merchant = await session.get(Merchant, shop.id)
        merchant.previous_key_expires_at = utcnow() - timedelta(seconds=1)

    async def old_key_refused() -> bool:
        return (await http.get("/v1/payments", headers=old)).status_code == 401

    await eventually(old_key_refused, timeout=10, what="the old key refused after its grace")

    for bad in ("-1", str(31 * 24 * 3600)):
        code, _, err = await cli(capsys, "merchants", "rotate-key", shop.id, "--grace-seconds", bad)
        assert code == 2, err
    code, _, err = await cli(capsys, "merchants", "rotate-key", "mer_unknown")
    assert code == 2
    assert "no merchant" in err

    code, at_once, _ = await cli(capsys, "merchants", "rotate-key", shop.id, "--grace-seconds", "0")
    assert at_once["previous_key_expires_at"] is None
    newest = {"Authorization": f"Bearer {at_once['api_key']}"}

    async def previous_refused() -> bool:
        return (await http.get("/v1/payments", headers=new)).status_code == 401

    await eventually(previous_refused, timeout=10, what="grace 0 to stop the old key at once")

    code, disabled, _ = await cli(capsys, "merchants", "disable", shop.id)
    assert code == 0
    assert disabled["disabled"] is True

    async def refused_as_disabled() -> bool:
        answer = await http.get("/v1/payments", headers=newest)
        return answer.status_code == 401 and answer.json()["code"] == "merchant_disabled"

    await eventually(refused_as_disabled, timeout=10, what="the disabled merchant's key refused")
    other_auth = {"Authorization": f"Bearer {other.api_key}"}
    assert (await http.post("/v1/payments", json=VALID, headers=other_auth)).status_code == 201

    code, enabled, _ = await cli(capsys, "merchants", "enable", shop.id)
    assert enabled["disabled"] is False

    async def accepted_again() -> bool:
        return (await http.get("/v1/payments", headers=newest)).status_code == 200

    await eventually(accepted_again, timeout=10, what="the key accepted after enable")
    code, listed, _ = await cli(capsys, "merchants", "list")
    assert {m["id"] for m in listed} == {shop.id, other.id}
    assert all("api_key" not in m and "webhook_secret" not in m for m in listed)
    code, updated, _ = await cli(
        capsys, "merchants", "update", shop.id, "--callback-url", "https://shop.example/new"
    )
    assert code == 0
    assert updated["callback_url"] == "https://shop.example/new"
    rotations = await count_rows(
        runtime, "operator_actions", "target_id = :m AND source = 'cli'", m=shop.id
    )
    assert rotations == 5  # two rotations, disable, enable, callback URL


async def test_a_delivery_during_a_secret_rotation_verifies_with_either_secret(gateway, capsys):
    runtime, http = gateway
    shop = await create_merchant(runtime.sessions, name="Shop", callback_url="https://s.ex/e")
    auth = {"Authorization": f"Bearer {shop.api_key}"}
    payment_id = await needs_review(runtime, http, auth, "ORD-CLI-S1")

    code, rotated, _ = await cli(capsys, "merchants", "rotate-secret", shop.id)
    assert code == 0
    assert set(rotated) == {"id", "webhook_secret", "previous_secret_expires_at"}
    received: list[httpx.Request] = []

    def storefront(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    client = httpx.AsyncClient(transport=httpx.MockTransport(storefront))
    delivery = EventDelivery(sessions=runtime.sessions, settings=runtime.settings, client=client)
    async with runtime.engine.connect() as connection:
        event_id = (
            await connection.execute(
                text("SELECT id FROM events WHERE payment_id = :p"), {"p": payment_id}
            )
        ).scalar_one()
    result = await delivery.deliver(event_id)
    assert result.delivered
    (request,) = received
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    headers = dict(request.headers)
    for secret in (shop.webhook_secret, rotated["webhook_secret"]):
        Webhook(secret).verify(request.content, headers)  # raises if it does not verify

    code, redelivered, _ = await cli(capsys, "events", "redeliver", event_id)
    assert code == 0
    assert redelivered["id"] == event_id
    assert redelivered["delivery"]["status"] == "pending"
    await client.aclose()


async def test_a_refund_in_review_is_resolved_from_the_cli(gateway, capsys):
    runtime, http = gateway
    shop = await create_merchant(runtime.sessions, name="Shop", callback_url="https://s.ex/e")
    auth = {"Authorization": f"Bearer {shop.api_key}"}
    email = await admin(capsys)
    payment_id = await needs_review(runtime, http, auth, "ORD-CLI-F1")
    await cli(
        capsys,
        "payments",
        "resolve",
        payment_id,
        "--status",
        "successful",
        "--note",
        NOTE,
        "--operator",
        email,
    )
    refund = await http.post(
        "/v1/refunds", json={"payment_id": payment_id, "amount": "1000"}, headers=auth
    )
    assert refund.status_code == 201, refund.text
    refund_id = refund.json()["id"]
    moved = await runtime.refunds.transition(
        refund_id,
        RefundChange(to_status=RefundStatus.NEEDS_REVIEW, actor=Actor.RECONCILER, detail="late"),
    )
    assert moved is not None
    code, resolved, _ = await cli(
        capsys,
        "refunds",
        "resolve",
        refund_id,
        "--status",
        "succeeded",
        "--note",
        NOTE,
        "--operator",
        email,
    )
    assert code == 0
    assert resolved["status"] == "succeeded"
    payment = (await http.get(f"/v1/payments/{payment_id}", headers=auth)).json()
    assert payment["amount_refunded"] == "1000"
    code, _, err = await cli(
        capsys,
        "refunds",
        "resolve",
        refund_id,
        "--status",
        "failed",
        "--note",
        NOTE,
        "--operator",
        email,
    )
    assert code == 2
    assert "is succeeded" in err
