"""An adapter's warnings and errors name the payment they are about, so an operator can go from
"request-to-pay outcome unknown" to the payment without matching timestamps."""

from __future__ import annotations

import io
import json

import pytest

from app.simulator.config import Endpoint, Faults, SimulatorConfig
from tests.e2e.stack import running_stack

ALWAYS_500 = Faults(error_rate=1, error_status=500)


def provider_problems(stream: io.StringIO) -> list[dict[str, str]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [
        line
        for line in lines
        if line["logger"].startswith("app.providers") and line["level"] in ("warning", "error")
    ]


@pytest.mark.parametrize(
    ("phone", "provider", "endpoints"),
    [
        (
            "0772123456",
            "mtn_momo",
            (Endpoint.MTN_REQUEST_TO_PAY, Endpoint.MTN_REQUEST_TO_PAY_STATUS),
        ),
        ("0700123456", "airtel_money", (Endpoint.AIRTEL_PAYMENT, Endpoint.AIRTEL_ENQUIRY)),
    ],
)
async def test_provider_warnings_carry_the_payment_id(
    clean_db, json_logs, phone, provider, endpoints
):
    simulator = SimulatorConfig(
        approval_delay_seconds=0.05, endpoint_faults=dict.fromkeys(endpoints, ALWAYS_500)
    )
    async with running_stack(clean_db, simulator=simulator) as stack:
        payment = await stack.pay(phone, f"LOGCTX-{provider}")
        assert payment["status"] == "pending"  # the provider's 500s leave the outcome unknown
        refresh = await stack.gateway.post(f"/v1/payments/{payment['id']}/refresh")
        assert refresh.status_code == 503

    problems = provider_problems(json_logs)
    messages = [line["message"] for line in problems]
    assert any("request-to-pay" in m or "push" in m for m in messages), messages
    assert any("status" in m or "enquiry" in m for m in messages), messages
    assert [(line.get("payment_id"), line.get("provider")) for line in problems] == [
        (payment["id"], provider)
    ] * len(problems)
