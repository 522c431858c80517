"""The MTN MoMo adapter on the wire (respx): exact requests, retries, tokens, answers."""

from __future__ import annotations

import base64
import json
import logging

import httpx
import pytest
import respx

from app.providers.base import InitiationOutcome, ProviderPaymentStatus
from app.providers.errors import ProviderUnavailable
from app.providers.http import RetryPolicy
from app.providers.mtn_momo import MtnMomoCollection
from app.providers.tokens import InMemoryTokenCache
from app.vocabulary import FailureCode
from tests.providers.conftest import (
    MTN_API_KEY,
    MTN_API_USER,
    MTN_SUBSCRIPTION_KEY,
    MTN_URL,
    FakeClock,
    build_mtn,
    payment_request,
)

RTP_URL = f"{MTN_URL}/collection/v1_0/requesttopay"
BASIC = "Basic " + base64.b64encode(f"{MTN_API_USER}:{MTN_API_KEY}".encode()).decode()
REFERENCE = "8f3a7b8e-58d2-4bd6-9fd1-4c1b4ab2c7a1"
CALLBACK = "https://gateway.example.com/api/webhooks/mtn-momo/8f3a7b8e/tok"

# From MTN's documentation, as quoted in the provider notes.
DUPLICATE = {
    "code": "RESOURCE_ALREADY_EXIST",
    "message": "Duplicated reference id. Creation of resource failed.",
}
NOT_FOUND = {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}
SUCCESSFUL = {
    "amount": "50000",
    "currency": "UGX",
    "financialTransactionId": "363440463",
    "externalId": "ORD-1001",
    "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
    "payerMessage": "Order ORD-1001",
    "payeeNote": "Order ORD-1001",
    "status": "SUCCESSFUL",
}


def token_answers(*tokens: str) -> list[httpx.Response]:
    return [
        httpx.Response(
            200, json={"access_token": t, "token_type": "access_token", "expires_in": 3600}
        )
        for t in tokens
    ]


# --- exact wire format ---------------------------------------------------------------------------


async def test_token_request_is_basic_auth_with_subscription_key_and_no_body(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    api.post(RTP_URL).respond(202)
    await mtn.request_payment(payment_request(reference=REFERENCE))
    assert mtn_token.call_count == 1
    request = mtn_token.calls.last.request
    assert request.method == "POST"
    assert request.url == f"{MTN_URL}/collection/token/"
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Ocp-Apim-Subscription-Key"] == MTN_SUBSCRIPTION_KEY
    assert request.content == b""
    assert "Content-Type" not in request.headers


async def test_request_to_pay_wire_format(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).respond(202)
    result = await mtn.request_payment(
        payment_request(
            reference=REFERENCE,
            order_id="ORD-1001",
            amount_minor=50000,
            msisdn="256772123456",
            description="Tom's TV & radio",
            callback_url=CALLBACK,
        )
    )
    assert result.outcome is InitiationOutcome.ACCEPTED
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == RTP_URL
    assert request.headers["Authorization"] == "Bearer mtn-token-1"
    assert request.headers["X-Reference-Id"] == REFERENCE
    assert request.headers["X-Target-Environment"] == "mtnuganda"
    assert request.headers["X-Callback-Url"] == CALLBACK
    assert request.headers["Ocp-Apim-Subscription-Key"] == MTN_SUBSCRIPTION_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "amount": "50000",
        "currency": "UGX",
        "externalId": "ORD-1001",
        "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
        "payerMessage": "Tom s TV radio",
        "payeeNote": "Tom s TV radio",
    }


async def test_no_callback_url_header_without_a_callback_url(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).respond(202)
    await mtn.request_payment(payment_request(callback_url=None))
    assert "X-Callback-Url" not in route.calls.last.request.headers


async def test_status_wire_format_and_successful_answer(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.get(f"{RTP_URL}/{REFERENCE}").respond(200, json=SUCCESSFUL)
    result = await mtn.get_status(REFERENCE)
    request = route.calls.last.request
    assert request.method == "GET"
    assert request.headers["Authorization"] == "Bearer mtn-token-1"
    assert request.headers["X-Target-Environment"] == "mtnuganda"
    assert request.headers["Ocp-Apim-Subscription-Key"] == MTN_SUBSCRIPTION_KEY
    assert "X-Reference-Id" not in request.headers
    assert result.status is ProviderPaymentStatus.SUCCESSFUL
    assert (result.amount_minor, result.currency) == (50000, "UGX")
    assert result.provider_transaction_id == "363440463"


async def test_failed_status_with_reason_object(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    body = {**SUCCESSFUL, "status": "FAILED", "financialTransactionId": None}
    body["reason"] = {"code": "NOT_ENOUGH_FUNDS", "message": "The payer has insufficient funds"}
    api.get(f"{RTP_URL}/{REFERENCE}").respond(200, json=body)
    result = await mtn.get_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.FAILED
    assert result.failure_code is FailureCode.INSUFFICIENT_FUNDS
    assert result.failure_message == "NOT_ENOUGH_FUNDS: The payer has insufficient funds"


async def test_account_holder_active_wire_format(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.get(f"{MTN_URL}/collection/v1_0/accountholder/msisdn/256772123456/active")
    route.respond(200, json={"result": True})
    assert await mtn.is_account_active("256772123456") is True
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer mtn-token-1"
    assert request.headers["X-Target-Environment"] == "mtnuganda"
    assert request.headers["Ocp-Apim-Subscription-Key"] == MTN_SUBSCRIPTION_KEY
    route.respond(200, json={"result": False})
    assert await mtn.is_account_active("256772123456") is False


async def test_balance_wire_format(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.get(f"{MTN_URL}/collection/v1_0/account/balance")
    route.respond(200, json={"availableBalance": "1000", "currency": "EUR"})
    assert await mtn.get_balance() == ("1000", "EUR")
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer mtn-token-1"
    assert request.headers["X-Target-Environment"] == "mtnuganda"
    assert request.headers["Ocp-Apim-Subscription-Key"] == MTN_SUBSCRIPTION_KEY


# --- request-to-pay answers and retries ----------------------------------------------------------


async def test_503_503_202_is_accepted_after_three_posts_with_one_reference(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).mock(
        side_effect=[
            httpx.Response(503, json={"code": "SERVICE_UNAVAILABLE"}),
            httpx.Response(503),
            httpx.Response(202),
        ]
    )
    result = await mtn.request_payment(payment_request(reference=REFERENCE))
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert route.call_count == 3
    assert {call.request.headers["X-Reference-Id"] for call in route.calls} == {REFERENCE}
    assert len({call.request.content for call in route.calls}) == 1
    assert mtn_token.call_count == 1


async def test_400_is_refused_as_invalid_request_without_retry(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).respond(400, json={"code": "VALIDATION_ERROR", "message": "bad"})
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.REFUSED
    assert result.failure_code is FailureCode.INVALID_REQUEST
    assert result.failure_message is not None
    assert "VALIDATION_ERROR" in result.failure_message
    assert route.call_count == 1


async def test_timeout_on_every_try_is_unknown_after_three_tries(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).mock(side_effect=httpx.ReadTimeout("no answer"))
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.UNKNOWN
    assert result.failure_code is None
    assert route.call_count == 3


async def test_connect_error_then_409_duplicate_is_accepted(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).mock(
        side_effect=[httpx.ReadTimeout("lost answer"), httpx.Response(409, json=DUPLICATE)]
    )
    result = await mtn.request_payment(payment_request(reference=REFERENCE))
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert [call.request.headers["X-Reference-Id"] for call in route.calls] == [REFERENCE] * 2


async def test_409_duplicate_reference_is_accepted(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).respond(409, json=DUPLICATE)
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert route.call_count == 1


async def test_401_drops_the_token_and_retries_once_with_a_fresh_one(
    api: respx.MockRouter, mtn: MtnMomoCollection
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").mock(
        side_effect=token_answers("mtn-token-1", "mtn-token-2")
    )
    route = api.post(RTP_URL).mock(
        side_effect=[
            httpx.Response(401, json={"statusCode": 401, "message": "Access denied"}),
            httpx.Response(202),
        ]
    )
    result = await mtn.request_payment(payment_request(reference=REFERENCE))
    assert result.outcome is InitiationOutcome.ACCEPTED
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer mtn-token-1",
        "Bearer mtn-token-2",
    ]
    assert [c.request.headers["X-Reference-Id"] for c in route.calls] == [REFERENCE] * 2


async def test_401_with_a_fresh_token_too_is_refused_not_retried_forever(
    api: respx.MockRouter, mtn: MtnMomoCollection
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").mock(
        side_effect=token_answers("mtn-token-1", "mtn-token-2")
    )
    route = api.post(RTP_URL).respond(401)
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.REFUSED
    assert result.failure_code is FailureCode.PROVIDER_ERROR
    assert (token.call_count, route.call_count) == (2, 2)


async def test_401_after_a_timed_out_attempt_is_unknown_not_refused(
    api: respx.MockRouter, mtn: MtnMomoCollection
) -> None:
    api.post(f"{MTN_URL}/collection/token/").mock(side_effect=token_answers("t1", "t2", "t3"))
    api.post(RTP_URL).mock(
        side_effect=[httpx.ReadTimeout("lost"), httpx.Response(401), httpx.Response(401)]
    )
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.UNKNOWN


@pytest.mark.parametrize("status", [400, 401])
async def test_refused_credentials_refuse_the_payment_without_sending_it(
    api: respx.MockRouter, mtn: MtnMomoCollection, status: int
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").respond(status, json={"error": "x"})
    route = api.post(RTP_URL).respond(202)
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.REFUSED
    assert result.failure_code is FailureCode.PROVIDER_ERROR
    assert (token.call_count, route.call_count) == (1, 0)


async def test_login_failed_as_500_is_not_retried(
    api: respx.MockRouter, mtn: MtnMomoCollection
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").respond(500, json={"error": "login_failed"})
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.REFUSED
    assert token.call_count == 1


async def test_token_endpoint_down_leaves_the_payment_unknown(
    api: respx.MockRouter, mtn: MtnMomoCollection
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").respond(503)
    route = api.post(RTP_URL).respond(202)
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.UNKNOWN
    assert (token.call_count, route.call_count) == (3, 0)


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        ("NOT_ALLOWED", FailureCode.NOT_ALLOWED),
        ("NOT_ALLOWED_TARGET_ENVIRONMENT", FailureCode.NOT_ALLOWED),
        ("INVALID_CALLBACK_URL_HOST", FailureCode.INVALID_REQUEST),
        ("INVALID_CURRENCY", FailureCode.INVALID_REQUEST),
    ],
)
async def test_500_configuration_codes_are_final_and_logged_at_error(
    api: respx.MockRouter,
    mtn_token: respx.Route,
    mtn: MtnMomoCollection,
    caplog: pytest.LogCaptureFixture,
    code: str,
    failure: FailureCode,
) -> None:
    route = api.post(RTP_URL).respond(500, json={"code": code, "message": "configuration"})
    with caplog.at_level(logging.ERROR, logger="app.providers.mtn_momo.adapter"):
        result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.REFUSED
    assert result.failure_code is failure
    assert result.failure_message is not None
    assert code in result.failure_message
    assert route.call_count == 1
    assert any(code in record.getMessage() for record in caplog.records)


async def test_500_payer_not_found_is_a_final_refusal(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).respond(500, json={"code": "PAYER_NOT_FOUND", "message": "?"})
    result = await mtn.request_payment(payment_request())
    assert (result.outcome, result.failure_code) == (
        InitiationOutcome.REFUSED,
        FailureCode.PAYER_NOT_FOUND,
    )
    assert route.call_count == 1


@pytest.mark.parametrize("code", ["SERVICE_UNAVAILABLE", "INTERNAL_PROCESSING_ERROR", None])
async def test_transient_500s_are_retried_then_unknown(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection, code: str | None
) -> None:
    route = api.post(RTP_URL).respond(500, json={"code": code} if code else None)
    result = await mtn.request_payment(payment_request())
    assert result.outcome is InitiationOutcome.UNKNOWN
    assert route.call_count == 3


async def test_a_currency_mtn_is_not_configured_for_is_refused_locally(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.post(RTP_URL).respond(202)
    result = await mtn.request_payment(payment_request(currency="EUR", amount_minor=100))
    assert result.outcome is InitiationOutcome.REFUSED
    assert result.failure_code is FailureCode.INVALID_REQUEST
    assert (mtn_token.call_count, route.call_count) == (0, 0)


# --- status answers ------------------------------------------------------------------------------


async def test_status_404_resource_not_found_is_not_found(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.get(f"{RTP_URL}/{REFERENCE}").respond(404, json=NOT_FOUND)
    result = await mtn.get_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.NOT_FOUND
    assert route.call_count == 1


async def test_status_404_naming_another_error_does_not_claim_not_found(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    api.get(f"{RTP_URL}/{REFERENCE}").respond(404, json={"code": "NOT_ALLOWED"})
    with pytest.raises(ProviderUnavailable):
        await mtn.get_status(REFERENCE)


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), httpx.Response(500, json={"code": "SERVICE_UNAVAILABLE"})],
)
async def test_status_unreachable_after_retries_raises_unavailable(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection, failure: httpx.Response
) -> None:
    route = api.get(f"{RTP_URL}/{REFERENCE}").mock(return_value=failure)
    with pytest.raises(ProviderUnavailable):
        await mtn.get_status(REFERENCE)
    assert route.call_count == 3


async def test_status_timeouts_raise_unavailable(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    route = api.get(f"{RTP_URL}/{REFERENCE}").mock(side_effect=httpx.ConnectTimeout("down"))
    with pytest.raises(ProviderUnavailable):
        await mtn.get_status(REFERENCE)
    assert route.call_count == 3


async def test_status_with_credentials_refused_raises_unavailable(
    api: respx.MockRouter, mtn: MtnMomoCollection
) -> None:
    api.post(f"{MTN_URL}/collection/token/").respond(401, json={"error": "invalid"})
    with pytest.raises(ProviderUnavailable):
        await mtn.get_status(REFERENCE)


async def test_status_401_refreshes_the_token_once(
    api: respx.MockRouter, mtn: MtnMomoCollection
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").mock(
        side_effect=token_answers("mtn-token-1", "mtn-token-2")
    )
    api.get(f"{RTP_URL}/{REFERENCE}").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json=SUCCESSFUL)]
    )
    result = await mtn.get_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.SUCCESSFUL
    assert token.call_count == 2


async def test_account_unknown_to_mtn_is_not_active(
    api: respx.MockRouter, mtn_token: respx.Route, mtn: MtnMomoCollection
) -> None:
    api.get(f"{MTN_URL}/collection/v1_0/accountholder/msisdn/256772123456/active").respond(
        404, json=NOT_FOUND
    )
    assert await mtn.is_account_active("256772123456") is False


# --- tokens --------------------------------------------------------------------------------------


async def test_an_expired_token_is_refetched(
    api: respx.MockRouter, clock: FakeClock, mtn: MtnMomoCollection
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").mock(
        side_effect=token_answers("mtn-token-1", "mtn-token-2")
    )
    route = api.post(RTP_URL).respond(202)
    await mtn.request_payment(payment_request())
    clock.advance(3539)  # expires_in 3600 minus the 60 s margin
    await mtn.request_payment(payment_request())
    assert token.call_count == 1
    clock.advance(2)
    await mtn.request_payment(payment_request())
    assert token.call_count == 2
    assert route.calls.last.request.headers["Authorization"] == "Bearer mtn-token-2"


async def test_two_credential_sets_never_share_a_token(
    api: respx.MockRouter, clock: FakeClock
) -> None:
    token = api.post(f"{MTN_URL}/collection/token/").mock(side_effect=token_answers("a", "b"))
    api.post(RTP_URL).respond(202)
    cache = InMemoryTokenCache(clock=clock)
    first = build_mtn(cache, RetryPolicy.zero_wait())
    second = build_mtn(cache, RetryPolicy.zero_wait(), mtn_momo_api_key="another-key")
    await first.request_payment(payment_request())
    await second.request_payment(payment_request())
    assert token.call_count == 2
    await first.aclose()
    await second.aclose()


async def test_tokens_and_secrets_never_reach_the_logs(
    api: respx.MockRouter, mtn: MtnMomoCollection, caplog: pytest.LogCaptureFixture
) -> None:
    api.post(f"{MTN_URL}/collection/token/").mock(
        side_effect=token_answers("mtn-token-1", "mtn-token-2")
    )
    api.post(RTP_URL).mock(
        side_effect=[httpx.Response(401), httpx.Response(503), httpx.Response(202)]
    )
    with caplog.at_level(logging.DEBUG):
        await mtn.request_payment(payment_request(msisdn="256772123456"))
    logged = caplog.text
    assert caplog.records  # the 401 and the retry were logged
    for secret in ("mtn-token-1", "mtn-token-2", MTN_API_KEY, MTN_SUBSCRIPTION_KEY, "772123456"):
        assert secret not in logged
