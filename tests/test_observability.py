"""What an operator relies on: request ids in logs, no secrets in logs, metrics, readiness."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from app import log_config
from app.log_config import redact
from app.simulator.config import (
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
)
from tests.conftest import make_settings, running_app
from tests.e2e.stack import running_stack
from tests.payments.test_create_payment import VALID


async def test_request_id_is_honoured_echoed_and_in_every_log_line(client, auth, json_logs):
    response = await client.post(
        "/v1/payments", json=VALID, headers={**auth, "X-Request-ID": "checkout-42.a"}
    )
    assert response.headers["X-Request-ID"] == "checkout-42.a"
    lines = [line for line in json_logs.getvalue().splitlines() if "checkout-42.a" in line]
    messages = " | ".join(lines)
    assert "payment created" in messages
    assert "POST /v1/payments 201" in messages


async def test_a_missing_or_unsafe_request_id_is_replaced(client):
    generated = await client.get("/healthz")
    assert len(generated.headers["X-Request-ID"]) == 32
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "x\r\ninjected: 1"})
    assert unsafe.headers["X-Request-ID"] != "x\r\ninjected: 1"


async def test_a_full_payment_flow_logs_no_secret_and_no_phone_number(clean_db, json_logs):
    async with running_stack(
        clean_db, mtn_momo_webhook_secret=None, callback_token_secret="cb-token-secret-value"
    ) as stack:
        mtn = await stack.pay("0772123456", "LOG-MTN")
        airtel = await stack.pay("0700123456", "LOG-AIRTEL")
        await stack.settles(mtn["id"], "successful")
        await stack.settles(airtel["id"], "successful")
        await stack.gateway.post(
            "/v1/payments",
            json={**VALID, "phone_number": "0772 999 888", "order_id": "LOG-BAD", "amount": "1"},
        )
        merchant = stack.merchant

    text = json_logs.getvalue()
    assert "payment pending → successful" in text  # the flow really was logged
    for secret in [
        merchant.api_key,
        merchant.webhook_secret,
        DEFAULT_MTN_API_KEY,
        DEFAULT_MTN_SUBSCRIPTION_KEY,
        DEFAULT_AIRTEL_CLIENT_SECRET,
        "cb-token-secret-value",
        "Bearer ",
        "Basic ",
    ]:
        assert secret not in text, secret
    for phone in ["256772123456", "0772123456", "256700123456", "700123456", "0772999888"]:
        assert phone not in text, phone


def test_redaction_masks_phones_and_credentials():
    line = redact(
        "call 256772123456 / 0772123456, Authorization: Bearer eyJabc, client_secret=s3, "
        '"access_token": "tokvalue123", key mgw_abcdef, whsec_c2VjcmV0'
    )
    assert "2567*****456" in line
    for leaked in [
        "256772123456",
        "0772123456",
        "eyJabc",
        "s3,",
        "tokvalue123",
        "mgw_abcdef",
        "c2VjcmV0",
    ]:
        assert leaked not in line


def _redact_everything(text: str) -> str:
    """The redaction without its quick checks: every substitution on every line."""
    for pattern, replacement in log_config._SECRETS:
        text = pattern.sub(replacement, text)
    return log_config._PHONE.sub(
        lambda m: (
            f"{m.group(1)[:4]}*****{m.group(3)}"
            if m.group(1)
            else f"{m.group(4)[:2]}*****{m.group(6)}"
        ),
        text,
    )


_FRAGMENTS = st.sampled_from(
    [
        "Bearer ",
        "basic ",
        "whsec_",
        "mgw_",
        "token=",
        '"access_token": "',
        "Secret: ",
        "API_KEY=",
        "256772123456",
        "0772123456",
        "1234567890",
        "abc",
        " ",
        '"',
        ",",
    ]
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENTS | st.text(max_size=6), max_size=12).map("".join))
def test_the_quick_checks_never_skip_a_redaction(text: str) -> None:
    assert redact(text) == _redact_everything(text)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


async def test_metrics_parse_and_move_after_a_payment(client, auth):
    key = ("momo_payments_created_total", (("provider", "mtn_momo"),))
    before = _samples((await client.get("/metrics")).text)
    created = await client.post("/v1/payments", json=VALID, headers=auth)
    assert created.status_code == 201
    after_text = (await client.get("/metrics")).text
    after = _samples(after_text)

    assert after[key] == before.get(key, 0) + 1
    assert after[("momo_pending_payments", (("provider", "mtn_momo"),))] >= 1
    route_key = (
        "momo_http_requests_total",
        (("method", "POST"), ("route", "/v1/payments"), ("status", "201")),
    )
    assert after[route_key] == before.get(route_key, 0) + 1
    assert "pay_" not in after_text  # no ids in labels


async def test_readyz_names_redis_when_it_is_unreachable(clean_db, fake_providers):
    settings = make_settings(clean_db, redis_url="redis://127.0.0.1:1/0")
    async with running_app(settings, fake_providers) as (_, http):
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "unreachable"}
    assert "redis" in response.json()["detail"]


async def test_readyz_names_the_database_when_it_is_unreachable(fake_providers):
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    async with running_app(settings, fake_providers) as (_, http):
        response = await http.get("/readyz")
        assert (await http.get("/healthz")).status_code == 200
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"
