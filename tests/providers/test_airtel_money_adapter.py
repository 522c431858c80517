"""The Airtel Money adapter on the wire (respx): exact requests, code handling, retries."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from app.providers.airtel_money import AirtelMoneyCollection
from app.providers.airtel_money.adapter import normalise_prefix
from app.providers.base import InitiationOutcome, ProviderPaymentStatus
from app.providers.errors import ProviderUnavailable
from app.providers.http import RetryPolicy
from app.providers.tokens import InMemoryTokenCache
from app.vocabulary import FailureCode
from tests.providers.conftest import (
    AIRTEL_CLIENT_ID,
    AIRTEL_CLIENT_SECRET,
    AIRTEL_PREFIX,
    AIRTEL_URL,
    FakeClock,
    build_airtel,
    payment_request,
)

BASE = f"{AIRTEL_URL}{AIRTEL_PREFIX}"
PUSH_URL = f"{BASE}/merchant/v1/payments/"
REFERENCE = "5b8f0e4c-7a0b-4d5e-9c61-0f2b1d9a7e33"
ENQUIRY_URL = f"{BASE}/standard/v1/payments/{REFERENCE}"
F = FailureCode

# Airtel's answers, verbatim from the Uganda Postman export quoted in the provider notes.
PUSH_ACCEPTED = {
    "data": {"transaction": {"id": "ASDJBEJB4KRN5", "status": "SUCCESS"}},
    "status": {
        "code": "200",
        "message": "SUCCESS",
        "result_code": "ESB000010",
        "response_code": "DP00800001006",
        "success": True,
    },
}
DUPLICATE_ID = {
    "status": {
        "response_code": "DP00800001000",
        "code": "500",
        "success": False,
        "result_code": "ESB000041",
        "message": "External Transaction ID already exists.",
    }
}
CONNECTION_TIMEOUT = {"status_message": "I/O Exception", "status_code": "CONNECTION_TIMEOUT"}


def enquiry_body(
    status: str, response_code: str = "DP00800001006", **transaction: str
) -> dict[str, Any]:
    return {
        "data": {
            "transaction": {
                "airtel_money_id": "C3648.00993.538XX.XX67",
                "id": "8334msn88",
                "message": "success",
                "status": status,
                **transaction,
            }
        },
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": response_code,
            "success": True,
        },
    }


def push_answer(response_code: str, *, success: bool = False, message: str = "x") -> dict[str, Any]:
    return {
        "data": {},
        "status": {
            "code": "200",
            "message": message,
            "response_code": response_code,
            "success": success,
        },
    }


# --- exact wire format ---------------------------------------------------------------------------


async def test_token_request_wire_format(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    api.post(PUSH_URL).respond(200, json=PUSH_ACCEPTED)
    await airtel.request_payment(payment_request())
    request = airtel_token.calls.last.request
    assert request.method == "POST"
    assert request.url == f"{BASE}/auth/oauth2/token"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "*/*"
    assert "Authorization" not in request.headers
    assert json.loads(request.content) == {
        "client_id": AIRTEL_CLIENT_ID,
        "client_secret": AIRTEL_CLIENT_SECRET,
        "grant_type": "client_credentials",
    }


async def test_push_wire_format(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    route = api.post(PUSH_URL).respond(200, json=PUSH_ACCEPTED)
    result = await airtel.request_payment(
        payment_request(
            reference=REFERENCE, order_id="ORD-1001", amount_minor=1000, msisdn="256752604392"
        )
    )
    assert result.outcome is InitiationOutcome.ACCEPTED
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == PUSH_URL
    assert request.headers["Authorization"] == "Bearer airtel-token-1"
    assert request.headers["X-Country"] == "UG"
    assert request.headers["X-Currency"] == "UGX"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "*/*"
    assert json.loads(request.content) == {
        "reference": "ORD1001",
        "subscriber": {"country": "UG", "currency": "UGX", "msisdn": "752604392"},
        "transaction": {"amount": 1000, "country": "UG", "currency": "UGX", "id": REFERENCE},
    }


async def test_enquiry_wire_format_and_ts(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    route = api.get(ENQUIRY_URL).respond(200, json=enquiry_body("TS"))
    result = await airtel.get_status(REFERENCE)
    request = route.calls.last.request
    assert request.method == "GET"
    assert request.headers["Authorization"] == "Bearer airtel-token-1"
    assert request.headers["X-Country"] == "UG"
    assert request.headers["X-Currency"] == "UGX"
    assert result.status is ProviderPaymentStatus.SUCCESSFUL
    assert result.provider_transaction_id == "C3648.00993.538XX.XX67"
    assert result.amount_minor is None


async def test_without_a_path_prefix_paths_start_at_the_root(
    api: respx.MockRouter, clock: FakeClock
) -> None:
    api.post(f"{AIRTEL_URL}/auth/oauth2/token").respond(
        200, json={"access_token": "t", "expires_in": "180"}
    )
    route = api.post(f"{AIRTEL_URL}/merchant/v1/payments/").respond(200, json=PUSH_ACCEPTED)
    adapter = build_airtel(
        InMemoryTokenCache(clock=clock), RetryPolicy.zero_wait(), airtel_money_path_prefix=""
    )
    result = await adapter.request_payment(payment_request())
    await adapter.aclose()
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("prefix", "normalised"), [("", ""), ("/", ""), ("simulate", "/simulate"), ("/a/b/", "/a/b")]
)
def test_path_prefix_is_normalised(prefix: str, normalised: str) -> None:
    assert normalise_prefix(prefix) == normalised


# --- push answers --------------------------------------------------------------------------------

PUSH_EXPECTATIONS = [
    ("DP00800001000", InitiationOutcome.UNKNOWN, None),
    ("DP00800001001", InitiationOutcome.ACCEPTED, None),
    ("DP00800001002", InitiationOutcome.REFUSED, F.INCORRECT_PIN),
    ("DP00800001003", InitiationOutcome.REFUSED, F.LIMIT_EXCEEDED),
    ("DP00800001004", InitiationOutcome.REFUSED, F.INVALID_AMOUNT),
    ("DP00800001005", InitiationOutcome.REFUSED, F.PAYER_TIMEOUT),
    ("DP00800001006", InitiationOutcome.ACCEPTED, None),
    ("DP00800001007", InitiationOutcome.REFUSED, F.INSUFFICIENT_FUNDS),
    ("DP00800001008", InitiationOutcome.REFUSED, F.REJECTED_BY_PAYER),
    ("DP00800001009", InitiationOutcome.REFUSED, F.NOT_ALLOWED),
    ("DP00800001010", InitiationOutcome.REFUSED, F.NOT_ALLOWED),
    # A timeout answered to the push itself may hide a push that goes ahead: enquire instead.
    ("DP00800001024", InitiationOutcome.UNKNOWN, None),
    ("DP00800001025", InitiationOutcome.REFUSED, F.NOT_FOUND_AT_PROVIDER),
    ("DP00800001026", InitiationOutcome.REFUSED, F.INVALID_REQUEST),
    ("DP00800001029", InitiationOutcome.REFUSED, F.PAYER_TIMEOUT),
    ("ESB000033", InitiationOutcome.REFUSED, F.PAYER_NOT_FOUND),
    ("ESB000034", InitiationOutcome.REFUSED, F.INVALID_REQUEST),
    ("ESB000035", InitiationOutcome.REFUSED, F.INVALID_REQUEST),
    ("ESB000036", InitiationOutcome.REFUSED, F.INVALID_REQUEST),
]


@pytest.mark.parametrize(("code", "outcome", "failure"), PUSH_EXPECTATIONS)
async def test_push_answer_codes(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    airtel: AirtelMoneyCollection,
    code: str,
    outcome: InitiationOutcome,
    failure: FailureCode | None,
) -> None:
    route = api.post(PUSH_URL).respond(200, json=push_answer(code, message="Airtel says"))
    result = await airtel.request_payment(payment_request())
    assert (result.outcome, result.failure_code) == (outcome, failure)
    if outcome is InitiationOutcome.REFUSED:
        assert result.failure_message == f"{code}: Airtel says"
    assert route.call_count == 1


@pytest.mark.parametrize("http_status", [200, 500])
async def test_duplicate_id_answer_is_accepted_and_never_re_pushed(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    airtel: AirtelMoneyCollection,
    http_status: int,
) -> None:
    route = api.post(PUSH_URL).respond(http_status, json=DUPLICATE_ID)
    result = await airtel.request_payment(payment_request(reference=REFERENCE))
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content)["transaction"]["id"] == REFERENCE


async def test_ambiguous_is_never_refused_nor_re_pushed(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    route = api.post(PUSH_URL).respond(500, json=push_answer("DP00800001000"))
    result = await airtel.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.UNKNOWN
    assert route.call_count == 1


async def test_lost_answer_then_duplicate_is_accepted_with_the_same_id(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    route = api.post(PUSH_URL).mock(
        side_effect=[httpx.ReadTimeout("lost"), httpx.Response(200, json=DUPLICATE_ID)]
    )
    result = await airtel.request_payment(payment_request(reference=REFERENCE))
    assert result.outcome is InitiationOutcome.ACCEPTED
    ids = [json.loads(call.request.content)["transaction"]["id"] for call in route.calls]
    assert ids == [REFERENCE, REFERENCE]


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(408, json=CONNECTION_TIMEOUT),
        httpx.Response(502),
        httpx.Response(504),
        httpx.Response(503, text="<html>busy</html>"),
    ],
)
async def test_gateway_timeouts_and_5xx_are_retried_then_unknown(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    airtel: AirtelMoneyCollection,
    failure: httpx.Response,
) -> None:
    route = api.post(PUSH_URL).mock(return_value=failure)
    result = await airtel.request_payment(payment_request(reference=REFERENCE))
    assert result.outcome is InitiationOutcome.UNKNOWN
    assert route.call_count == 3
    ids = {json.loads(call.request.content)["transaction"]["id"] for call in route.calls}
    assert ids == {REFERENCE}


async def test_timeouts_on_every_try_are_unknown(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    route = api.post(PUSH_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    result = await airtel.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.UNKNOWN
    assert route.call_count == 3


async def test_408_then_accepted(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    route = api.post(PUSH_URL).mock(
        side_effect=[
            httpx.Response(408, json=CONNECTION_TIMEOUT),
            httpx.Response(200, json=PUSH_ACCEPTED),
        ]
    )
    result = await airtel.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert route.call_count == 2


async def test_400_is_refused_as_invalid_request_without_retry(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    route = api.post(PUSH_URL).respond(400, json={"error": "bad request"})
    result = await airtel.request_payment(payment_request())
    assert (result.outcome, result.failure_code) == (
        InitiationOutcome.REFUSED,
        F.INVALID_REQUEST,
    )
    assert route.call_count == 1


async def test_401_drops_the_token_and_retries_once(
    api: respx.MockRouter, airtel: AirtelMoneyCollection
) -> None:
    token = api.post(f"{BASE}/auth/oauth2/token").mock(
        side_effect=[
            httpx.Response(200, json={"access_token": "old", "expires_in": "180"}),
            httpx.Response(200, json={"access_token": "new", "expires_in": "180"}),
        ]
    )
    invalid = {
        "error_description": "The access token is invalid or has expired",
        "error": "invalid_token",
    }
    route = api.post(PUSH_URL).mock(
        side_effect=[httpx.Response(401, json=invalid), httpx.Response(200, json=PUSH_ACCEPTED)]
    )
    result = await airtel.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer old",
        "Bearer new",
    ]


async def test_invalid_client_refuses_without_pushing(
    api: respx.MockRouter, airtel: AirtelMoneyCollection
) -> None:
    api.post(f"{BASE}/auth/oauth2/token").respond(
        400, json={"error_description": "Invalid client authentication", "error": "invalid_client"}
    )
    route = api.post(PUSH_URL).respond(200, json=PUSH_ACCEPTED)
    result = await airtel.request_payment(payment_request())
    assert (result.outcome, result.failure_code) == (InitiationOutcome.REFUSED, F.PROVIDER_ERROR)
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("overrides", "failure"),
    [
        ({"msisdn": "254712345678"}, F.INVALID_REQUEST),
        ({"currency": "EUR"}, F.INVALID_REQUEST),
    ],
)
async def test_requests_airtel_cannot_take_are_refused_locally(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    airtel: AirtelMoneyCollection,
    overrides: dict[str, Any],
    failure: FailureCode,
) -> None:
    route = api.post(PUSH_URL).respond(200, json=PUSH_ACCEPTED)
    result = await airtel.request_payment(payment_request(**overrides))
    assert (result.outcome, result.failure_code) == (InitiationOutcome.REFUSED, failure)
    assert route.call_count == 0


# --- enquiry answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "failure"),
    [
        ("TS", ProviderPaymentStatus.SUCCESSFUL, None),
        ("TF", ProviderPaymentStatus.FAILED, F.PROVIDER_ERROR),
        ("TE", ProviderPaymentStatus.FAILED, F.PAYER_TIMEOUT),
        ("TA", ProviderPaymentStatus.PENDING, None),
        ("TIP", ProviderPaymentStatus.PENDING, None),
    ],
)
async def test_enquiry_statuses(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    airtel: AirtelMoneyCollection,
    status: str,
    expected: ProviderPaymentStatus,
    failure: FailureCode | None,
) -> None:
    api.get(ENQUIRY_URL).respond(200, json=enquiry_body(status))
    result = await airtel.get_status(REFERENCE)
    assert (result.status, result.failure_code) == (expected, failure)


async def test_tf_with_a_dp_code_maps_it(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    body = enquiry_body("TF", response_code="DP00800001008", message="Refused by payer")
    api.get(ENQUIRY_URL).respond(200, json=body)
    result = await airtel.get_status(REFERENCE)
    assert (result.status, result.failure_code) == (
        ProviderPaymentStatus.FAILED,
        F.REJECTED_BY_PAYER,
    )
    assert result.failure_message == "TF: Refused by payer"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404),
        httpx.Response(
            200,
            json={"status": {"response_code": "DP00800001025", "success": False, "message": "?"}},
        ),
        httpx.Response(
            400, json={"status": {"result_code": "ESB000045", "success": False, "message": "?"}}
        ),
    ],
)
async def test_enquiry_not_found(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    airtel: AirtelMoneyCollection,
    answer: httpx.Response,
) -> None:
    api.get(ENQUIRY_URL).mock(return_value=answer)
    result = await airtel.get_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.NOT_FOUND


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), httpx.Response(408, json=CONNECTION_TIMEOUT), httpx.ConnectError("x")],
)
async def test_enquiry_unreachable_raises_unavailable(
    api: respx.MockRouter,
    airtel_token: respx.Route,
    airtel: AirtelMoneyCollection,
    failure: httpx.Response | Exception,
) -> None:
    route = api.get(ENQUIRY_URL)
    if isinstance(failure, Exception):
        route.mock(side_effect=failure)
    else:
        route.mock(return_value=failure)
    with pytest.raises(ProviderUnavailable):
        await airtel.get_status(REFERENCE)
    assert route.call_count == 3


async def test_enquiry_without_a_usable_answer_raises_unavailable(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    api.get(ENQUIRY_URL).respond(200, json={"status": {"success": True}})
    with pytest.raises(ProviderUnavailable):
        await airtel.get_status(REFERENCE)


# --- tokens --------------------------------------------------------------------------------------


async def test_string_expires_in_180_is_kept_162_seconds(
    api: respx.MockRouter, clock: FakeClock, airtel: AirtelMoneyCollection
) -> None:
    token = api.post(f"{BASE}/auth/oauth2/token").mock(
        side_effect=[
            httpx.Response(200, json={"access_token": "first", "expires_in": "180"}),
            httpx.Response(200, json={"access_token": "second", "expires_in": "180"}),
        ]
    )
    route = api.post(PUSH_URL).respond(200, json=PUSH_ACCEPTED)
    await airtel.request_payment(payment_request())
    clock.advance(161)
    await airtel.request_payment(payment_request())
    assert token.call_count == 1
    clock.advance(2)
    await airtel.request_payment(payment_request())
    assert token.call_count == 2
    assert route.calls.last.request.headers["Authorization"] == "Bearer second"


async def test_a_gateway_5xx_with_a_legacy_processing_code_is_retried_with_the_same_id(
    api: respx.MockRouter, airtel_token: respx.Route, airtel: AirtelMoneyCollection
) -> None:
    gateway_error = {
        "status": {
            "code": "500",
            "success": False,
            "result_code": "ESB000001",
            "response_code": "ESB000001",
            "message": "Something went wrong",
        }
    }
    route = api.post(PUSH_URL).mock(
        side_effect=[
            httpx.Response(503, json=gateway_error),
            httpx.Response(200, json=DUPLICATE_ID),
        ]
    )
    result = await airtel.request_payment(payment_request(reference=REFERENCE))
    assert result.outcome is InitiationOutcome.ACCEPTED
    ids = [json.loads(call.request.content)["transaction"]["id"] for call in route.calls]
    assert ids == [REFERENCE, REFERENCE]
