"""MTN MoMo refunds (Disbursement) on the wire (respx): exact requests, retries, tokens, answers."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from app.providers.base import ProviderPaymentStatus, RefundOutcome, RefundRequest
from app.providers.errors import ProviderNotConfigured, ProviderUnavailable
from app.providers.http import RetryPolicy
from app.providers.mtn_momo.refunds import MtnMomoDisbursement
from app.providers.tokens import InMemoryTokenCache, TokenCache
from app.vocabulary import FailureCode
from tests.providers.conftest import (
    MTN_API_KEY,
    MTN_API_USER,
    MTN_SUBSCRIPTION_KEY,
    MTN_URL,
    build_mtn,
    payment_request,
    settings,
)

DISBURSEMENT_USER = "9b2d6a61-3c1e-4f0a-8d57-2a6f0c5e9b10"
DISBURSEMENT_KEY = "d15b0b5e2f2c4e6f9a1b3c5d7e9f1a2b"
DISBURSEMENT_SUBSCRIPTION_KEY = "fedcba9876543210fedcba9876543210"
DISBURSEMENT_SETTINGS = {
    "mtn_momo_disbursement_api_user": DISBURSEMENT_USER,
    "mtn_momo_disbursement_api_key": DISBURSEMENT_KEY,
    "mtn_momo_disbursement_subscription_key": DISBURSEMENT_SUBSCRIPTION_KEY,
}

TOKEN_URL = f"{MTN_URL}/disbursement/token/"
REFUND_URL = f"{MTN_URL}/disbursement/v2_0/refund"
STATUS_URL = f"{MTN_URL}/disbursement/v1_0/refund"
COLLECTION_TOKEN_URL = f"{MTN_URL}/collection/token/"
BASIC = "Basic " + base64.b64encode(f"{DISBURSEMENT_USER}:{DISBURSEMENT_KEY}".encode()).decode()

REFERENCE = "0d6b3f8e-7c2a-4e59-9b1d-5a3c2e1f4b6d"
PAYMENT_REFERENCE = "8f3a7b8e-58d2-4bd6-9fd1-4c1b4ab2c7a1"
CALLBACK = "https://gateway.example.com/api/webhooks/mtn-momo/refunds/0d6b3f8e/tok"

# From MTN's documentation and sandbox, as quoted in the provider notes (refunds-detail.md).
DUPLICATE = {
    "code": "RESOURCE_ALREADY_EXIST",
    "message": "Duplicated reference id. Creation of resource failed.",
}
NOT_FOUND = {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."}
INTERNAL_ERROR = {
    "code": "INTERNAL_PROCESSING_ERROR",
    "message": "An internal error occurred while processing.",
}
SUCCESSFUL = {
    "financialTransactionId": "1784630263",
    "externalId": "ORD-1001",
    "amount": "20000",
    "currency": "UGX",
    "payee": {"partyIdType": "MSISDN", "partyId": "256772123456"},
    "payerMessage": "Item out of stock",
    "payeeNote": "Item out of stock",
    "status": "SUCCESSFUL",
}


def token_answer(token: str) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": token, "token_type": "access_token", "expires_in": 3600}
    )


def refund_request(**overrides: Any) -> RefundRequest:
    values: dict[str, Any] = {
        "reference": str(uuid.uuid4()),
        "payment_reference": PAYMENT_REFERENCE,
        "payment_transaction_id": None,
        "amount_minor": 20000,
        "currency": "UGX",
        "order_id": "ORD-1001",
        "note": "Item out of stock",
        "callback_url": None,
    }
    values.update(overrides)
    return RefundRequest(**values)


def build_disbursement(
    cache: TokenCache, policy: RetryPolicy, **overrides: Any
) -> MtnMomoDisbursement:
    return MtnMomoDisbursement.from_settings(
        settings(**{**DISBURSEMENT_SETTINGS, **overrides}), token_cache=cache, retry_policy=policy
    )


@pytest.fixture
def disbursement_token(api: respx.MockRouter) -> respx.Route:
    return api.post(TOKEN_URL).mock(return_value=token_answer("disbursement-token-1"))


@pytest.fixture
async def mtn_refunds(
    token_cache: InMemoryTokenCache, retry_policy: RetryPolicy
) -> AsyncIterator[MtnMomoDisbursement]:
    adapter = build_disbursement(token_cache, retry_policy)
    yield adapter
    await adapter.aclose()


def references(route: respx.Route) -> list[str]:
    return [call.request.headers["X-Reference-Id"] for call in route.calls]


# --- exact wire format ---------------------------------------------------------------------------


async def test_token_comes_from_the_disbursement_endpoint_with_its_own_credentials(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    api.post(REFUND_URL).respond(202)
    await mtn_refunds.request_refund(refund_request())
    assert disbursement_token.call_count == 1
    request = disbursement_token.calls.last.request
    assert request.method == "POST"
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Ocp-Apim-Subscription-Key"] == DISBURSEMENT_SUBSCRIPTION_KEY
    assert request.content == b""


async def test_refund_wire_format(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).respond(202)
    result = await mtn_refunds.request_refund(
        refund_request(reference=REFERENCE, callback_url=CALLBACK)
    )
    assert result.outcome is RefundOutcome.ACCEPTED
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == REFUND_URL
    assert request.headers["Authorization"] == "Bearer disbursement-token-1"
    assert request.headers["X-Reference-Id"] == REFERENCE
    assert request.headers["X-Target-Environment"] == "mtnuganda"
    assert request.headers["X-Callback-Url"] == CALLBACK
    assert request.headers["Ocp-Apim-Subscription-Key"] == DISBURSEMENT_SUBSCRIPTION_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "amount": "20000",
        "currency": "UGX",
        "externalId": "ORD-1001",
        "payerMessage": "Item out of stock",
        "payeeNote": "Item out of stock",
        "referenceIdToRefund": PAYMENT_REFERENCE,
    }


async def test_no_callback_url_header_without_a_callback_url(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).respond(202)
    await mtn_refunds.request_refund(refund_request(callback_url=None))
    assert "X-Callback-Url" not in route.calls.last.request.headers


async def test_apostrophes_and_long_reasons_are_made_to_fit(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).respond(202)
    note = "Customer's parcel didn't arrive & was refunded. " * 6
    await mtn_refunds.request_refund(refund_request(note=note))
    body = json.loads(route.calls.last.request.content)
    for field in ("payerMessage", "payeeNote"):
        assert "'" not in body[field]
        assert "&" not in body[field]
        assert 0 < len(body[field]) <= 160
        assert body[field].startswith("Customer s parcel didn t arrive was refunded.")


async def test_a_currency_mtn_is_not_configured_for_is_refused_without_a_call(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).respond(202)
    result = await mtn_refunds.request_refund(refund_request(currency="EUR", amount_minor=100))
    assert result.outcome is RefundOutcome.REFUSED
    assert result.failure_code is FailureCode.INVALID_REQUEST
    assert (disbursement_token.call_count, route.call_count) == (0, 0)


# --- refund answers and retries ------------------------------------------------------------------


async def test_409_duplicate_reference_is_accepted(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).respond(409, json=DUPLICATE)
    result = await mtn_refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.ACCEPTED
    assert route.call_count == 1


async def test_500_then_202_is_retried_with_the_same_reference_and_accepted(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).mock(
        side_effect=[httpx.Response(500, json=INTERNAL_ERROR), httpx.Response(202)]
    )
    result = await mtn_refunds.request_refund(refund_request(reference=REFERENCE))
    assert result.outcome is RefundOutcome.ACCEPTED
    assert references(route) == [REFERENCE] * 2
    assert len({call.request.content for call in route.calls}) == 1
    assert disbursement_token.call_count == 1


async def test_a_lost_answer_then_409_is_accepted(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).mock(
        side_effect=[httpx.ReadTimeout("lost answer"), httpx.Response(409, json=DUPLICATE)]
    )
    result = await mtn_refunds.request_refund(refund_request(reference=REFERENCE))
    assert result.outcome is RefundOutcome.ACCEPTED
    assert references(route) == [REFERENCE] * 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, json={"code": "SERVICE_UNAVAILABLE"}),
        # Often a short wallet, but at request time not a proof that nothing was paid out.
        httpx.Response(500, json=INTERNAL_ERROR),
        httpx.Response(500),
    ],
)
async def test_5xx_every_time_is_unknown_after_three_tries_with_one_reference(
    api: respx.MockRouter,
    disbursement_token: respx.Route,
    mtn_refunds: MtnMomoDisbursement,
    answer: httpx.Response,
) -> None:
    route = api.post(REFUND_URL).mock(return_value=answer)
    result = await mtn_refunds.request_refund(refund_request(reference=REFERENCE))
    assert result.outcome is RefundOutcome.UNKNOWN
    assert result.failure_code is None
    assert references(route) == [REFERENCE] * 3


async def test_timeouts_every_time_are_unknown_with_one_reference(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).mock(side_effect=httpx.ReadTimeout("no answer"))
    result = await mtn_refunds.request_refund(refund_request(reference=REFERENCE))
    assert result.outcome is RefundOutcome.UNKNOWN
    assert references(route) == [REFERENCE] * 3


@pytest.mark.parametrize("status", [500, 400])
@pytest.mark.parametrize(
    ("code", "failure"),
    [
        ("NOT_ENOUGH_FUNDS", FailureCode.INSUFFICIENT_FUNDS),
        ("NOT_ALLOWED", FailureCode.NOT_ALLOWED),
        ("PAYEE_NOT_FOUND", FailureCode.PAYER_NOT_FOUND),
        ("INVALID_CURRENCY", FailureCode.INVALID_REQUEST),
    ],
)
async def test_final_business_codes_are_refused_at_once(
    api: respx.MockRouter,
    disbursement_token: respx.Route,
    mtn_refunds: MtnMomoDisbursement,
    status: int,
    code: str,
    failure: FailureCode,
) -> None:
    route = api.post(REFUND_URL).respond(status, json={"code": code, "message": "no"})
    result = await mtn_refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.REFUSED
    assert result.failure_code is failure
    assert result.failure_message == f"HTTP {status} {code}: no"
    assert route.call_count == 1


async def test_a_short_disbursement_wallet_is_logged_for_an_operator(
    api: respx.MockRouter,
    disbursement_token: respx.Route,
    mtn_refunds: MtnMomoDisbursement,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.post(REFUND_URL).respond(500, json={"code": "NOT_ENOUGH_FUNDS", "message": "short"})
    with caplog.at_level(logging.ERROR, logger="app.providers.mtn_momo.refunds"):
        await mtn_refunds.request_refund(refund_request())
    assert any("NOT_ENOUGH_FUNDS" in record.getMessage() for record in caplog.records)


async def test_400_validation_error_is_refused_as_invalid_request(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).respond(400, json={"code": "VALIDATION_ERROR", "message": "x"})
    result = await mtn_refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.REFUSED
    assert result.failure_code is FailureCode.INVALID_REQUEST
    assert route.call_count == 1


@pytest.mark.parametrize("status", [400, 401])
async def test_refused_credentials_refuse_the_refund_without_sending_it(
    api: respx.MockRouter, mtn_refunds: MtnMomoDisbursement, status: int
) -> None:
    token = api.post(TOKEN_URL).respond(status, json={"error": "invalid_client"})
    route = api.post(REFUND_URL).respond(202)
    result = await mtn_refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.REFUSED
    assert result.failure_code is FailureCode.PROVIDER_ERROR
    assert (token.call_count, route.call_count) == (1, 0)


async def test_forbidden_ip_is_refused_as_provider_error(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.post(REFUND_URL).respond(403, text="FORBIDDEN IP")
    result = await mtn_refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.REFUSED
    assert result.failure_code is FailureCode.PROVIDER_ERROR
    assert route.call_count == 1


async def test_token_endpoint_down_leaves_the_refund_unknown(
    api: respx.MockRouter, mtn_refunds: MtnMomoDisbursement
) -> None:
    token = api.post(TOKEN_URL).respond(503)
    route = api.post(REFUND_URL).respond(202)
    result = await mtn_refunds.request_refund(refund_request())
    assert result.outcome is RefundOutcome.UNKNOWN
    assert (token.call_count, route.call_count) == (3, 0)


# --- status --------------------------------------------------------------------------------------


async def test_status_wire_format_and_successful_answer(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.get(f"{STATUS_URL}/{REFERENCE}").respond(200, json=SUCCESSFUL)
    result = await mtn_refunds.get_refund_status(REFERENCE)
    request = route.calls.last.request
    assert request.method == "GET"
    assert request.headers["Authorization"] == "Bearer disbursement-token-1"
    assert request.headers["X-Target-Environment"] == "mtnuganda"
    assert request.headers["Ocp-Apim-Subscription-Key"] == DISBURSEMENT_SUBSCRIPTION_KEY
    assert "X-Reference-Id" not in request.headers
    assert result.status is ProviderPaymentStatus.SUCCESSFUL
    assert (result.amount_minor, result.currency) == (20000, "UGX")
    assert result.provider_transaction_id == "1784630263"
    assert result.failure_code is None


@pytest.mark.parametrize(
    ("reason", "failure", "message"),
    [
        ("NOT_ENOUGH_FUNDS", FailureCode.INSUFFICIENT_FUNDS, "NOT_ENOUGH_FUNDS"),
        (
            {"code": "NOT_ENOUGH_FUNDS", "message": "The payer does not have enough funds."},
            FailureCode.INSUFFICIENT_FUNDS,
            "NOT_ENOUGH_FUNDS: The payer does not have enough funds.",
        ),
        ("INTERNAL_PROCESSING_ERROR", FailureCode.PROVIDER_ERROR, "INTERNAL_PROCESSING_ERROR"),
        ({"code": "PAYEE_NOT_FOUND"}, FailureCode.PAYER_NOT_FOUND, "PAYEE_NOT_FOUND"),
        (None, FailureCode.PROVIDER_ERROR, "FAILED without a reason"),
    ],
)
async def test_failed_status_reads_both_reason_shapes(
    api: respx.MockRouter,
    disbursement_token: respx.Route,
    mtn_refunds: MtnMomoDisbursement,
    reason: Any,
    failure: FailureCode,
    message: str,
) -> None:
    body = {**SUCCESSFUL, "status": "FAILED", "financialTransactionId": None, "reason": reason}
    api.get(f"{STATUS_URL}/{REFERENCE}").respond(200, json=body)
    result = await mtn_refunds.get_refund_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.FAILED
    assert result.failure_code is failure
    assert result.failure_message == message
    assert result.provider_transaction_id is None


@pytest.mark.parametrize("status", ["PENDING", "CREATED", "ONGOING"])
async def test_pending_and_unknown_statuses_are_pending(
    api: respx.MockRouter,
    disbursement_token: respx.Route,
    mtn_refunds: MtnMomoDisbursement,
    status: str,
) -> None:
    body = {**SUCCESSFUL, "status": status, "financialTransactionId": None}
    api.get(f"{STATUS_URL}/{REFERENCE}").respond(200, json=body)
    result = await mtn_refunds.get_refund_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.PENDING
    assert result.failure_code is None
    assert (result.amount_minor, result.currency) == (20000, "UGX")


async def test_status_404_resource_not_found_is_not_found(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.get(f"{STATUS_URL}/{REFERENCE}").respond(404, json=NOT_FOUND)
    result = await mtn_refunds.get_refund_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.NOT_FOUND
    assert result.failure_code is FailureCode.NOT_FOUND_AT_PROVIDER
    assert route.call_count == 1


async def test_status_404_naming_another_error_does_not_claim_not_found(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    api.get(f"{STATUS_URL}/{REFERENCE}").respond(404, json={"code": "NOT_ALLOWED"})
    with pytest.raises(ProviderUnavailable):
        await mtn_refunds.get_refund_status(REFERENCE)


async def test_status_500_every_time_raises_unavailable(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    route = api.get(f"{STATUS_URL}/{REFERENCE}").respond(500, json=INTERNAL_ERROR)
    with pytest.raises(ProviderUnavailable):
        await mtn_refunds.get_refund_status(REFERENCE)
    assert route.call_count == 3


async def test_status_500_then_200_is_read(
    api: respx.MockRouter, disbursement_token: respx.Route, mtn_refunds: MtnMomoDisbursement
) -> None:
    api.get(f"{STATUS_URL}/{REFERENCE}").mock(
        side_effect=[httpx.Response(500, json=INTERNAL_ERROR), httpx.Response(200, json=SUCCESSFUL)]
    )
    result = await mtn_refunds.get_refund_status(REFERENCE)
    assert result.status is ProviderPaymentStatus.SUCCESSFUL


@pytest.mark.parametrize("body", [{"amount": "20000"}, ["SUCCESSFUL"], None])
async def test_an_unreadable_status_answer_raises_unavailable(
    api: respx.MockRouter,
    disbursement_token: respx.Route,
    mtn_refunds: MtnMomoDisbursement,
    body: Any,
) -> None:
    api.get(f"{STATUS_URL}/{REFERENCE}").respond(200, json=body)
    with pytest.raises(ProviderUnavailable):
        await mtn_refunds.get_refund_status(REFERENCE)


async def test_status_with_credentials_refused_raises_unavailable(
    api: respx.MockRouter, mtn_refunds: MtnMomoDisbursement
) -> None:
    api.post(TOKEN_URL).respond(401, json={"error": "invalid_client"})
    route = api.get(f"{STATUS_URL}/{REFERENCE}").respond(200, json=SUCCESSFUL)
    with pytest.raises(ProviderUnavailable):
        await mtn_refunds.get_refund_status(REFERENCE)
    assert route.call_count == 0


# --- tokens and settings -------------------------------------------------------------------------


async def test_disbursement_and_collection_tokens_are_cached_apart(
    api: respx.MockRouter, token_cache: InMemoryTokenCache, retry_policy: RetryPolicy
) -> None:
    # One API user for both products, as MTN sometimes issues: the cache must still keep the
    # two products' tokens apart, since each product refuses the other's.
    same_credentials = {
        "mtn_momo_disbursement_api_user": MTN_API_USER,
        "mtn_momo_disbursement_api_key": MTN_API_KEY,
        "mtn_momo_disbursement_subscription_key": MTN_SUBSCRIPTION_KEY,
    }
    collection_token = api.post(COLLECTION_TOKEN_URL).mock(
        return_value=token_answer("collection-token")
    )
    disbursement_token = api.post(TOKEN_URL).mock(return_value=token_answer("disbursement-token"))
    pay = api.post(f"{MTN_URL}/collection/v1_0/requesttopay").respond(202)
    refund = api.post(REFUND_URL).respond(202)
    collection = build_mtn(token_cache, retry_policy)
    disbursement = build_disbursement(token_cache, retry_policy, **same_credentials)
    try:
        await collection.request_payment(payment_request())
        await disbursement.request_refund(refund_request())
        await disbursement.request_refund(refund_request())
        await collection.request_payment(payment_request())
    finally:
        await collection.aclose()
        await disbursement.aclose()
    assert (collection_token.call_count, disbursement_token.call_count) == (1, 1)
    assert {c.request.headers["Authorization"] for c in pay.calls} == {"Bearer collection-token"}
    assert {c.request.headers["Authorization"] for c in refund.calls} == {
        "Bearer disbursement-token"
    }


async def test_a_refused_disbursement_token_is_refetched_once(
    api: respx.MockRouter, mtn_refunds: MtnMomoDisbursement
) -> None:
    token = api.post(TOKEN_URL).mock(side_effect=[token_answer("old"), token_answer("new")])
    route = api.post(REFUND_URL).mock(side_effect=[httpx.Response(401), httpx.Response(202)])
    result = await mtn_refunds.request_refund(refund_request(reference=REFERENCE))
    assert result.outcome is RefundOutcome.ACCEPTED
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer old",
        "Bearer new",
    ]
    assert references(route) == [REFERENCE] * 2


@pytest.mark.parametrize("missing", sorted(DISBURSEMENT_SETTINGS))
def test_from_settings_without_disbursement_credentials_is_not_configured(
    token_cache: InMemoryTokenCache, missing: str
) -> None:
    # The collection credentials are all set: they are not enough for refunds.
    with pytest.raises(ProviderNotConfigured, match="disbursement credentials are not set"):
        build_disbursement(token_cache, RetryPolicy.zero_wait(), **{missing: None})


async def test_tokens_secrets_and_numbers_never_reach_the_logs(
    api: respx.MockRouter, mtn_refunds: MtnMomoDisbursement, caplog: pytest.LogCaptureFixture
) -> None:
    api.post(TOKEN_URL).mock(side_effect=[token_answer("tok-1"), token_answer("tok-2")])
    api.post(REFUND_URL).mock(
        side_effect=[httpx.Response(401), httpx.Response(503), httpx.Response(202)]
    )
    api.get(f"{STATUS_URL}/{REFERENCE}").respond(200, json={**SUCCESSFUL, "status": "ODD"})
    with caplog.at_level(logging.DEBUG):
        await mtn_refunds.request_refund(refund_request())
        await mtn_refunds.get_refund_status(REFERENCE)
    logged = caplog.text
    assert caplog.records  # the 401, the retry and the odd status were logged
    for secret in ("tok-1", "tok-2", DISBURSEMENT_KEY, DISBURSEMENT_SUBSCRIPTION_KEY, "772123456"):
        assert secret not in logged
