"""Airtel Money refunds on the wire (respx): the exact request, what each answer means for the
money, retries, and the token shared with the collection adapter."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from app.providers.airtel_money.refunds import AirtelMoneyRefunds
from app.providers.base import InitiationOutcome, RefundOutcome, RefundRequest, RefundResult
from app.providers.errors import ProviderNotConfigured, ProviderUnavailable
from app.providers.http import RetryPolicy
from app.providers.tokens import InMemoryTokenCache
from app.vocabulary import FailureCode
from tests.providers.conftest import (
    AIRTEL_CLIENT_SECRET,
    AIRTEL_PREFIX,
    AIRTEL_URL,
    FakeClock,
    build_airtel,
    payment_request,
    settings,
)

BASE = f"{AIRTEL_URL}{AIRTEL_PREFIX}"
REFUND_URL = f"{BASE}/standard/v1/payments/refund"
TOKEN_URL = f"{BASE}/auth/oauth2/token"
PUSH_URL = f"{BASE}/merchant/v1/payments/"
AIRTEL_MONEY_ID = "CI240612.1514.A00029"
F = FailureCode

# Airtel's refund sample, verbatim from the doc copies: "success": false beside SUCCESS.
DOC_SUCCESS: dict[str, Any] = {
    "data": {"transaction": {"airtel_money_id": "CI2****29", "status": "SUCCESS"}},
    "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010", "success": False},
}
SUCCESS: dict[str, Any] = {
    "data": {"transaction": {"airtel_money_id": AIRTEL_MONEY_ID, "status": "SUCCESS"}},
    "status": {
        "code": "200",
        "message": "SUCCESS",
        "result_code": "ESB000010",
        "response_code": "DP00800001001",
        "success": True,
    },
}
PUSH_ACCEPTED: dict[str, Any] = {
    "data": {"transaction": {"id": "ASDJBEJB4KRN5", "status": "SUCCESS"}},
    "status": {
        "code": "200",
        "message": "SUCCESS",
        "result_code": "ESB000010",
        "response_code": "DP00800001006",
        "success": True,
    },
}


def refusal(
    message: str, *, result_code: str | None = None, response_code: str | None = None
) -> Any:
    """A refusal as Airtel (and the simulator) sends it: HTTP 200, ``"success": false``."""
    status: dict[str, Any] = {"code": "200", "message": message, "success": False}
    if result_code:
        status["result_code"] = result_code
    if response_code:
        status["response_code"] = response_code
    return {"data": {}, "status": status}


NOT_FOUND = refusal("Transaction not found", result_code="ESB000045", response_code="DP00800001025")
DO_NOT_HONOR = refusal("Do not honor", result_code="ESB000011", response_code="DP00800001009")
ALREADY_REFUNDED = refusal(
    "Refund already processed for this transaction",
    result_code="ESB000041",
    response_code="DP00800001009",
)


def refund_request(**overrides: Any) -> RefundRequest:
    values: dict[str, Any] = {
        "reference": "re-5b8f0e4c",
        "payment_reference": "5b8f0e4c-7a0b-4d5e-9c61-0f2b1d9a7e33",
        "payment_transaction_id": AIRTEL_MONEY_ID,
        "amount_minor": 50000,
        "currency": "UGX",
        "order_id": "ORD-1001",
        "note": "Item out of stock",
    }
    values.update(overrides)
    return RefundRequest(**values)


def build_refunds(
    cache: InMemoryTokenCache, policy: RetryPolicy, **overrides: Any
) -> AirtelMoneyRefunds:
    return AirtelMoneyRefunds.from_settings(
        settings(**overrides), token_cache=cache, retry_policy=policy
    )


@pytest.fixture
async def refunds(
    token_cache: InMemoryTokenCache, retry_policy: RetryPolicy
) -> AsyncIterator[AirtelMoneyRefunds]:
    adapter = build_refunds(token_cache, retry_policy)
    yield adapter
    await adapter.aclose()


def sent_bodies(route: respx.Route) -> list[Any]:
    return [json.loads(call.request.content) for call in route.calls]


def outcome_of(result: RefundResult) -> tuple[RefundOutcome, FailureCode | None]:
    return result.outcome, result.failure_code


# --- the request -------------------------------------------------------------------------------


async def test_refund_wire_format(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds
) -> None:
    route = api.post(REFUND_URL).respond(200, json=SUCCESS)
    await refunds.request_refund(refund_request())
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == f"{AIRTEL_URL}/simulate/standard/v1/payments/refund"
    assert request.headers["Authorization"] == "Bearer airtel-token-1"
    assert request.headers["X-Country"] == "UG"
    assert request.headers["X-Currency"] == "UGX"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "*/*"
    # No amount: Airtel refunds the whole collection.
    assert json.loads(request.content) == {"transaction": {"airtel_money_id": AIRTEL_MONEY_ID}}


async def test_without_a_path_prefix_the_refund_path_starts_at_the_root(
    api: respx.MockRouter, clock: FakeClock
) -> None:
    api.post(f"{AIRTEL_URL}/auth/oauth2/token").respond(200, json={"access_token": "t"})
    route = api.post(f"{AIRTEL_URL}/standard/v1/payments/refund").respond(200, json=SUCCESS)
    adapter = build_refunds(
        InMemoryTokenCache(clock=clock), RetryPolicy.zero_wait(), airtel_money_path_prefix=""
    )
    result = await adapter.request_refund(refund_request())
    await adapter.aclose()
    assert result.outcome is RefundOutcome.SUCCEEDED
    assert route.call_count == 1


def test_without_credentials_refunds_are_not_configured() -> None:
    with pytest.raises(ProviderNotConfigured):
        AirtelMoneyRefunds.from_settings(
            settings(airtel_money_client_secret=None), token_cache=InMemoryTokenCache()
        )


# --- success -----------------------------------------------------------------------------------


async def test_the_doc_sample_with_success_false_is_a_success(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds
) -> None:
    route = api.post(REFUND_URL).respond(200, json=DOC_SUCCESS)
    result = await refunds.request_refund(refund_request())
    assert result == RefundResult.succeeded("CI2****29")
    assert route.call_count == 1


@pytest.mark.parametrize(
    "status",
    [
        {"code": "200", "response_code": "DP00800001001", "success": True},
        {"code": "200", "message": "SUCCESS", "success": True},
        {"result_code": "ESB000010", "response_code": "DP00800001001", "success": "true"},
    ],
    ids=["dp-success-code", "flag-only", "flag-as-text"],
)
async def test_a_success_confirmed_by_code_or_flag_succeeds(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    status: dict[str, Any],
) -> None:
    body = {"data": {"transaction": {"airtel_money_id": "CI9", "status": "success"}}}
    api.post(REFUND_URL).respond(200, json={**body, "status": status})
    result = await refunds.request_refund(refund_request())
    assert result == RefundResult.succeeded("CI9")


async def test_a_success_without_an_id_succeeds_without_one(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds
) -> None:
    body = {"data": {"transaction": {"status": "SUCCESS"}}, "status": SUCCESS["status"]}
    api.post(REFUND_URL).respond(200, json=body)
    assert await refunds.request_refund(refund_request()) == RefundResult.succeeded(None)


@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        # The push's "accepted, in process" answer: SUCCESS beside DP…1006 is not money back.
        (200, PUSH_ACCEPTED),
        # One library's refund fixture: "Success." with DP…1006.
        (
            200,
            {
                "data": {"transaction": {"airtel_money_id": "CI1", "status": "Success."}},
                "status": {"response_code": "DP00800001006", "success": True},
            },
        ),
        (200, {"data": {"transaction": {"status": "SUCCESS"}}, "status": {"success": False}}),
        (200, {**SUCCESS, "status": {**SUCCESS["status"], "response_code": "DP00800001009"}}),
        (500, DOC_SUCCESS),
        # A success code without a transaction that says SUCCESS.
        (200, {"data": {}, "status": {"response_code": "DP00800001001", "success": True}}),
    ],
    ids=["in-process", "success-dot", "no-code-flag-false", "failure-code", "http-500", "no-txn"],
)
async def test_a_success_that_is_not_confirmed_is_unknown(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    http_status: int,
    body: dict[str, Any],
) -> None:
    route = api.post(REFUND_URL).respond(http_status, json=body)
    result = await refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.UNKNOWN
    assert route.call_count == 1


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "failure", "message"),
    [
        (NOT_FOUND, F.NOT_FOUND_AT_PROVIDER, "DP00800001025: Transaction not found"),
        (refusal("No transaction found", result_code="ESB000045"), F.NOT_FOUND_AT_PROVIDER, None),
        (DO_NOT_HONOR, F.NOT_ALLOWED, "DP00800001009: Do not honor"),
        (refusal("Not enough balance", response_code="DP00800001007"), F.INSUFFICIENT_FUNDS, None),
        (
            ALREADY_REFUNDED,
            F.NOT_ALLOWED,
            "already refunded: ESB000041: Refund already processed for this transaction",
        ),
    ],
    ids=["not-found-dp", "not-found-esb", "do-not-honor", "insufficient-funds", "already"],
)
async def test_a_refusal_to_the_first_attempt_fails_the_refund(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    body: dict[str, Any],
    failure: FailureCode,
    message: str | None,
) -> None:
    route = api.post(REFUND_URL).respond(200, json=body)
    result = await refunds.request_refund(refund_request())
    assert outcome_of(result) == (RefundOutcome.REFUSED, failure)
    if message is not None:
        assert result.failure_message == message
    assert route.call_count == 1


async def test_a_configuration_refusal_is_logged_at_error(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.post(REFUND_URL).respond(200, json=refusal("Invalid currency", result_code="ESB000035"))
    with caplog.at_level(logging.INFO):
        result = await refunds.request_refund(refund_request())
    assert outcome_of(result) == (RefundOutcome.REFUSED, F.INVALID_REQUEST)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("ESB000035" in r.getMessage() for r in errors)


@pytest.mark.parametrize("http_status", [400, 500])
async def test_a_refusal_in_a_4xx_or_5xx_body_is_final_and_not_retried(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds, http_status: int
) -> None:
    route = api.post(REFUND_URL).respond(http_status, json=DO_NOT_HONOR)
    result = await refunds.request_refund(refund_request())
    assert outcome_of(result) == (RefundOutcome.REFUSED, F.NOT_ALLOWED)
    assert route.call_count == 1


async def test_403_on_the_first_attempt_is_refused_as_provider_error(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds
) -> None:
    invalid = {"error_description": "forbidden", "error": "invalid_token"}
    route = api.post(REFUND_URL).respond(403, json=invalid)
    result = await refunds.request_refund(refund_request())
    assert outcome_of(result) == (RefundOutcome.REFUSED, F.PROVIDER_ERROR)
    assert route.call_count == 1


async def test_credentials_refused_at_the_token_endpoint_refuse_without_sending(
    api: respx.MockRouter, refunds: AirtelMoneyRefunds, caplog: pytest.LogCaptureFixture
) -> None:
    api.post(TOKEN_URL).respond(
        400, json={"error_description": "Invalid client authentication", "error": "invalid_client"}
    )
    route = api.post(REFUND_URL).respond(200, json=SUCCESS)
    with caplog.at_level(logging.DEBUG):
        result = await refunds.request_refund(refund_request())
    assert outcome_of(result) == (RefundOutcome.REFUSED, F.PROVIDER_ERROR)
    assert route.call_count == 0
    assert AIRTEL_CLIENT_SECRET not in caplog.text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"payment_transaction_id": None}, "the payment has no Airtel transaction id"),
        ({"payment_transaction_id": " "}, "the payment has no Airtel transaction id"),
        ({"currency": "KES"}, "Airtel Money is configured for UGX, not KES"),
    ],
    ids=["no-id", "blank-id", "currency"],
)
async def test_refunds_airtel_cannot_take_are_refused_without_a_call(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    overrides: dict[str, Any],
    message: str,
) -> None:
    route = api.post(REFUND_URL).respond(200, json=SUCCESS)
    result = await refunds.request_refund(refund_request(**overrides))
    assert result == RefundResult.refused(F.INVALID_REQUEST, message)
    assert route.call_count == 0
    assert airtel_token.call_count == 0


# --- retries and the money-safety rule ---------------------------------------------------------


async def test_a_5xx_then_success_succeeds_after_two_attempts_with_the_same_body(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds
) -> None:
    route = api.post(REFUND_URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json=SUCCESS)]
    )
    result = await refunds.request_refund(refund_request())
    assert result == RefundResult.succeeded(AIRTEL_MONEY_ID)
    expected = {"transaction": {"airtel_money_id": AIRTEL_MONEY_ID}}
    assert sent_bodies(route) == [expected, expected]


@pytest.mark.parametrize(
    "second",
    [
        httpx.Response(200, json=DO_NOT_HONOR),
        httpx.Response(200, json=NOT_FOUND),
        httpx.Response(200, json=ALREADY_REFUNDED),
        httpx.Response(500, json=refusal("exists", result_code="ESB000041")),
        httpx.Response(403, json={"error": "invalid_token"}),
        httpx.Response(400, json={"error": "bad request"}),
    ],
    ids=["do-not-honor", "not-found", "already", "esb000041-on-5xx", "403", "400"],
)
@pytest.mark.parametrize(
    "first", [httpx.Response(502), httpx.ReadTimeout("lost")], ids=["502", "timeout"]
)
async def test_a_refusal_after_a_retry_is_unknown_never_failed(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    first: httpx.Response | Exception,
    second: httpx.Response,
) -> None:
    # The first attempt may have reached Airtel and refunded; the "no" may be Airtel refusing
    # the repeat. Recording it as failed would say no money moved when it may have.
    route = api.post(REFUND_URL).mock(side_effect=[first, second])
    result = await refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.UNKNOWN
    assert result.failure_code is None
    assert result.failure_message is not None
    assert result.failure_message.startswith("an earlier attempt may have refunded")
    assert route.call_count == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(503, text="<html>busy</html>"),
        httpx.Response(408, json={"status_message": "I/O Exception"}),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("down"),
    ],
    ids=["500", "503-html", "408", "timeout", "connect"],
)
async def test_no_answer_after_every_retry_is_unknown(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    failure: httpx.Response | Exception,
) -> None:
    route = api.post(REFUND_URL)
    if isinstance(failure, Exception):
        route.mock(side_effect=failure)
    else:
        route.mock(return_value=failure)
    result = await refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.UNKNOWN
    assert route.call_count == 3
    assert {call.request.content for call in route.calls} == {route.calls[0].request.content}


@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (200, refusal("Ambiguous", response_code="DP00800001000")),
        (200, refusal("In process", response_code="DP00800001006")),
        (200, refusal("Processing", result_code="ESB000001")),
        (500, refusal("Ambiguous", response_code="DP00800001000")),
        (200, {"status": {"code": "200", "success": True}}),
        (200, {"data": {"transaction": {"status": "TIP"}}, "status": {"success": True}}),
    ],
    ids=["ambiguous", "in-process", "esb-processing", "ambiguous-on-500", "no-code", "odd-status"],
)
async def test_pending_and_codeless_answers_are_unknown_without_a_retry(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    refunds: AirtelMoneyRefunds,
    http_status: int,
    body: dict[str, Any],
) -> None:
    route = api.post(REFUND_URL).respond(http_status, json=body)
    result = await refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.UNKNOWN
    assert route.call_count == 1


async def test_an_unreadable_2xx_is_unknown(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds
) -> None:
    api.post(REFUND_URL).respond(200, text="<html>ok</html>")
    result = await refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.UNKNOWN


async def test_a_gateway_processing_code_on_a_5xx_is_retried(
    api: respx.MockRouter, airtel_token: respx.Route, refunds: AirtelMoneyRefunds
) -> None:
    gateway_error = refusal("Something went wrong", result_code="ESB000001")
    route = api.post(REFUND_URL).mock(
        side_effect=[httpx.Response(503, json=gateway_error), httpx.Response(200, json=SUCCESS)]
    )
    result = await refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.SUCCEEDED
    assert route.call_count == 2


# --- status ------------------------------------------------------------------------------------


async def test_refund_status_cannot_be_read_and_nothing_is_called(
    api: respx.MockRouter, refunds: AirtelMoneyRefunds
) -> None:
    with pytest.raises(ProviderUnavailable, match="no refund status endpoint"):
        await refunds.get_refund_status("re-5b8f0e4c")
    assert api.calls.call_count == 0


# --- the token shared with collections ---------------------------------------------------------


@pytest.mark.parametrize("refund_first", [False, True], ids=["push-first", "refund-first"])
async def test_one_token_serves_a_push_and_a_refund(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    token_cache: InMemoryTokenCache,
    retry_policy: RetryPolicy,
    refund_first: bool,
) -> None:
    push = api.post(PUSH_URL).respond(200, json=PUSH_ACCEPTED)
    refund = api.post(REFUND_URL).respond(200, json=SUCCESS)
    collection = build_airtel(token_cache, retry_policy)
    refunds = build_refunds(token_cache, retry_policy)
    try:
        if refund_first:
            refunded = await refunds.request_refund(refund_request())
            pushed = await collection.request_payment(payment_request())
        else:
            pushed = await collection.request_payment(payment_request())
            refunded = await refunds.request_refund(refund_request())
    finally:
        await collection.aclose()
        await refunds.aclose()
    assert pushed.outcome is InitiationOutcome.ACCEPTED
    assert refunded.outcome is RefundOutcome.SUCCEEDED
    assert airtel_token.call_count == 1
    assert push.calls.last.request.headers["Authorization"] == "Bearer airtel-token-1"
    assert refund.calls.last.request.headers["Authorization"] == "Bearer airtel-token-1"
