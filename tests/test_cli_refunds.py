"""``momo-gateway refunds create --payment PAY_ID [--amount A] [--reason R]`` against the
simulator: the refund JSON on stdout, a clear one-line refusal otherwise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.cli import main
from app.db import create_engine
from app.main import create_app
from app.merchants.service import create_merchant
from app.migrate import upgrade_async
from app.simulator import (
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_DISBURSEMENT_API_KEY,
    DEFAULT_MTN_DISBURSEMENT_API_USER,
    DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
)
from app.simulator.app import create_simulator_app
from app.simulator.config import SimulatorConfig
from app.simulator.server import serve_in_background
from tests.e2e.stack import eventually


@pytest.fixture
async def gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """The simulator on a port; the settings in the environment (as the CLI reads them); the
    gateway in-process with a merchant, for making payments to refund."""
    config = SimulatorConfig(approval_delay_seconds=0.05, refund_delay_seconds=0.05)
    async with serve_in_background(create_simulator_app(config)) as simulator_url:
        env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "REDIS_URL": "",
            "MTN_MOMO_API_URL": simulator_url,
            "MTN_MOMO_API_USER": DEFAULT_MTN_API_USER,
            "MTN_MOMO_API_KEY": DEFAULT_MTN_API_KEY,
            "MTN_MOMO_SUBSCRIPTION_KEY": DEFAULT_MTN_SUBSCRIPTION_KEY,
            "MTN_MOMO_DISBURSEMENT_API_USER": DEFAULT_MTN_DISBURSEMENT_API_USER,
            "MTN_MOMO_DISBURSEMENT_API_KEY": DEFAULT_MTN_DISBURSEMENT_API_KEY,
            "MTN_MOMO_DISBURSEMENT_SUBSCRIPTION_KEY": DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
            "MTN_MOMO_TARGET_ENV": "sandbox",
            "CALLBACK_TOKEN_SECRET": "cli-callback-secret",
            "RECONCILE_MIN_AGE_SECONDS": "0",
            "RECONCILE_INTERVAL_SECONDS": "1",  # the refund is asked about again within seconds
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)  # no stray .env
        engine = create_engine(env["DATABASE_URL"])
        await upgrade_async(engine)
        await engine.dispose()
        application = create_app(background_jobs=False)
        async with LifespanManager(application):
            runtime = application.state.runtime
            merchant = await create_merchant(
                runtime.sessions, name="CLI Shop", callback_url="https://shop.example/events"
            )
            transport = httpx.ASGITransport(app=application)
            headers = {"Authorization": f"Bearer {merchant.api_key}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gw.test", headers=headers
            ) as http:
                yield http, {"runtime": runtime}


async def successful_payment(http: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    created = await http.post(
        "/v1/payments",
        json={"order_id": order_id, "amount": "50000", "phone_number": "0772 123 456"},
    )
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    found: dict[str, Any] = {}

    async def successful() -> bool:
        found.update((await http.post(f"/v1/payments/{payment_id}/refresh")).json())
        return found["status"] == "successful"

    await eventually(successful, what="the payment to succeed")
    return found


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["refunds", "create", *argv])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


async def test_refunds_create_prints_the_refund_and_the_refund_settles(gateway, capsys):
    http, _ = gateway
    payment = await successful_payment(http, "ORD-CLI-1")
    code, out, _ = await cli(
        capsys, "--payment", payment["id"], "--amount", "20000", "--reason", "Out of stock"
    )
    assert code == 0
    refund = json.loads(out)
    assert refund["object"] == "refund"
    assert refund["payment_id"] == payment["id"]
    assert refund["amount"] == "20000"
    assert refund["reason"] == "Out of stock"
    assert refund["status"] == "pending"  # MTN answers by callback and status read

    async def settled() -> bool:
        response = await http.get(f"/v1/refunds/{refund['id']}")
        if response.json()["status"] == "pending":
            await gateway[1]["runtime"].refund_reconciler.reconcile()
            return False
        return response.json()["status"] == "succeeded"

    await eventually(settled, what="the refund to succeed at the simulator")
    paid = (await http.get(f"/v1/payments/{payment['id']}")).json()
    assert paid["amount_refunded"] == "20000"

    # The rest, with no --amount.
    code, out, _ = await cli(capsys, "--payment", payment["id"])
    assert code == 0
    assert json.loads(out)["amount"] == "30000"


async def test_refunds_create_refuses_clearly(gateway, capsys):
    http, _ = gateway
    payment = await successful_payment(http, "ORD-CLI-2")
    pending = await http.post(
        "/v1/payments",
        json={"order_id": "ORD-CLI-3", "amount": "50000", "phone_number": "0772 123 456"},
    )
    cases = [
        (["--payment", "pay_unknown"], "no payment pay_unknown"),
        (["--payment", pending.json()["id"]], "payment_not_refundable"),
        (["--payment", payment["id"], "--amount", "60000"], "refund_exceeds_payment"),
        (["--payment", payment["id"], "--amount", "12.5"], "validation_error"),
        (["--payment", payment["id"], "--reason", "x" * 161], "at most 160 characters"),
    ]
    for argv, expected in cases:
        code, out, err = await cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert out == ""
        assert expected in err, err
        assert "Traceback" not in err
