"""The outcome rules every adapter shares, on plain answers: no network, no provider."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.providers.base import (
    InitiationOutcome,
    InitiationResult,
    PaymentRequest,
    ProviderPaymentStatus,
)
from app.providers.errors import ProviderRejected, ProviderUnavailable
from app.providers.http import Reply
from app.providers.outcomes import (
    OutcomeRules,
    Refusal,
    describe_status,
    not_found_status,
    parse_answer,
)
from app.vocabulary import FailureCode

LOGGER = "tests.outcomes"
RULES = OutcomeRules(
    title="Test Pay",
    company="Testco",
    logger=logging.getLogger(LOGGER),
    address_hint="check TEST_PAY_API_URL",
    credentials_hint="check Testco credentials",
)

ACCEPTED, REFUSED, UNKNOWN = (
    InitiationOutcome.ACCEPTED,
    InitiationOutcome.REFUSED,
    InitiationOutcome.UNKNOWN,
)


def answer(status: int, body: Any = None) -> httpx.Response:
    return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


def by_code(response: httpx.Response) -> Refusal | None:
    """A provider whose ``{"code": "NO_FUNDS"}`` is final and ``{"code": "BAD_ACCOUNT"}`` is
    final and a configuration problem; every other code says nothing."""
    body = response.json() if response.content else None
    code = body.get("code") if isinstance(body, dict) else None
    if code == "NO_FUNDS":
        return Refusal(FailureCode.INSUFFICIENT_FUNDS, "NO_FUNDS")
    if code == "BAD_ACCOUNT":
        return Refusal(FailureCode.NOT_ALLOWED, "BAD_ACCOUNT", configuration=True)
    return None


def duplicate_is_accepted(response: httpx.Response) -> InitiationResult | None:
    body = response.json() if response.content else None
    if isinstance(body, dict) and body.get("code") == "DUPLICATE":
        return InitiationResult.accepted()
    return None


def payment_request(currency: str = "UGX") -> PaymentRequest:
    return PaymentRequest(
        reference="ref-1",
        order_id="ORDER-1",
        amount_minor=1000,
        currency=currency,
        msisdn="256772123456",
        description="Order 1",
    )


async def replying(response: httpx.Response, attempts: int = 1) -> Reply:
    return Reply(response=response, attempts=attempts)


async def failing(error: Exception) -> Reply:
    raise error


# --- initiation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "attempts", "outcome", "failure_code"),
    [
        (200, None, 1, ACCEPTED, None),
        (201, None, 1, ACCEPTED, None),
        (202, None, 3, ACCEPTED, None),
        # Our credentials refused: nothing was taken on a first attempt ...
        (401, None, 1, REFUSED, FailureCode.PROVIDER_ERROR),
        (403, None, 1, REFUSED, FailureCode.PROVIDER_ERROR),
        # ... but after a retry an earlier attempt may have landed.
        (401, None, 2, UNKNOWN, None),
        (403, None, 3, UNKNOWN, None),
        # Even a final code in the body does not prove a retried request was not taken.
        (401, {"code": "NO_FUNDS"}, 2, UNKNOWN, None),
        (500, {"code": "NO_FUNDS"}, 1, REFUSED, FailureCode.INSUFFICIENT_FUNDS),
        (500, {"code": "NO_FUNDS"}, 3, REFUSED, FailureCode.INSUFFICIENT_FUNDS),
        (400, {"code": "BAD_ACCOUNT"}, 1, REFUSED, FailureCode.NOT_ALLOWED),
        (400, None, 1, REFUSED, FailureCode.INVALID_REQUEST),
        (404, None, 1, REFUSED, FailureCode.INVALID_REQUEST),
        (422, {"code": "SOMETHING_ELSE"}, 1, REFUSED, FailureCode.INVALID_REQUEST),
        # A 5xx without a final code, or a redirect: nobody can say whether it was taken.
        (500, None, 1, UNKNOWN, None),
        (503, {"code": "SOMETHING_ELSE"}, 3, UNKNOWN, None),
        (302, None, 1, UNKNOWN, None),
        # The provider's own word on the request wins over the HTTP status.
        (409, {"code": "DUPLICATE"}, 1, ACCEPTED, None),
        (401, {"code": "DUPLICATE"}, 2, ACCEPTED, None),
    ],
)
def test_initiation_outcome(
    status: int,
    body: Any,
    attempts: int,
    outcome: InitiationOutcome,
    failure_code: FailureCode | None,
) -> None:
    result = RULES.initiation_outcome(
        Reply(response=answer(status, body), attempts=attempts),
        log_name="test pay",
        provider_answer=duplicate_is_accepted,
        final_refusal=by_code,
    )

    assert (result.outcome, result.failure_code) == (outcome, failure_code)
    if outcome is not ACCEPTED:
        assert result.failure_message


def test_without_hooks_only_the_http_status_decides() -> None:
    outcomes = [
        RULES.initiation_outcome(Reply(response=answer(status, body), attempts=1), log_name="x")
        for status, body in [(202, None), (409, {"code": "DUPLICATE"}), (500, {"code": "NO_FUNDS"})]
    ]

    assert [(r.outcome, r.failure_code) for r in outcomes] == [
        (ACCEPTED, None),
        (REFUSED, FailureCode.INVALID_REQUEST),
        (UNKNOWN, None),
    ]


@pytest.mark.parametrize(
    ("status", "body", "attempts", "level", "words"),
    [
        (401, None, 1, logging.ERROR, "test pay refused our credentials (HTTP 401)"),
        (401, None, 2, logging.WARNING, "test pay: HTTP 401 after a retry; outcome unknown"),
        (400, {"code": "BAD_ACCOUNT"}, 1, logging.ERROR, "BAD_ACCOUNT (configuration problem)"),
        (500, {"code": "NO_FUNDS"}, 1, logging.INFO, "test pay refused: NO_FUNDS"),
        (404, None, 1, logging.ERROR, "unexpected HTTP 404; check TEST_PAY_API_URL"),
        (503, None, 1, logging.WARNING, "test pay: unexpected HTTP 503; outcome unknown"),
    ],
)
def test_initiation_logs_what_an_operator_must_know(
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: Any,
    attempts: int,
    level: int,
    words: str,
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        RULES.initiation_outcome(
            Reply(response=answer(status, body), attempts=attempts),
            log_name="test pay",
            final_refusal=by_code,
        )

    assert [(r.levelno, words in r.getMessage()) for r in caplog.records] == [(level, True)]


def test_a_400_is_refused_without_an_error_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        result = RULES.initiation_outcome(Reply(response=answer(400), attempts=1), log_name="x")

    assert result.failure_code is FailureCode.INVALID_REQUEST
    assert caplog.records == []


def test_describe_words_the_failure_message() -> None:
    result = RULES.initiation_outcome(
        Reply(response=answer(403), attempts=1),
        log_name="x",
        describe=lambda response: f"HTTP {response.status_code} FORBIDDEN: go away",
    )

    assert result.failure_message == "HTTP 403 FORBIDDEN: go away"


@pytest.mark.parametrize(
    ("error", "outcome", "failure_code", "message", "level"),
    [
        (
            ProviderUnavailable("test.pay: HTTP 503 after 3 attempt(s)"),
            UNKNOWN,
            None,
            "test.pay: HTTP 503 after 3 attempt(s)",
            logging.WARNING,
        ),
        (
            ProviderRejected("Testco token request refused (HTTP 401)"),
            REFUSED,
            FailureCode.PROVIDER_ERROR,
            "Testco refused the credentials: Testco token request refused (HTTP 401)",
            logging.ERROR,
        ),
    ],
)
async def test_initiate_when_no_answer_came_back(
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    outcome: InitiationOutcome,
    failure_code: FailureCode | None,
    message: str,
    level: int,
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        result = await RULES.initiate(failing(error), log_name="test pay")

    assert (result.outcome, result.failure_code, result.failure_message) == (
        outcome,
        failure_code,
        message,
    )
    assert [r.levelno for r in caplog.records] == [level]


async def test_initiate_reads_the_answer_by_the_same_rules() -> None:
    result = await RULES.initiate(
        replying(answer(500, {"code": "NO_FUNDS"})), log_name="test pay", final_refusal=by_code
    )

    assert (result.outcome, result.failure_code) == (REFUSED, FailureCode.INSUFFICIENT_FUNDS)


@pytest.mark.parametrize(("currency", "refused"), [("UGX", False), ("KES", True), ("ugx", True)])
def test_check_currency(currency: str, refused: bool) -> None:
    result = RULES.check_currency(payment_request(currency), "UGX")

    if not refused:
        assert result is None
        return
    assert result is not None
    assert (result.outcome, result.failure_code, result.failure_message) == (
        REFUSED,
        FailureCode.INVALID_REQUEST,
        f"Test Pay is configured for UGX, not {currency}",
    )


# --- reads --------------------------------------------------------------------------------------


async def test_a_read_answers_with_the_response() -> None:
    response = answer(200, {"status": "SUCCESSFUL"})

    assert await RULES.read_or_unavailable(replying(response, 2), operation="test.status") is (
        response
    )


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ProviderRejected("Testco token request refused (HTTP 401)"), "credentials refused"),
        (ProviderUnavailable("test.status: no answer"), "no answer"),
    ],
)
async def test_a_read_without_an_answer_is_unavailable(error: Exception, message: str) -> None:
    with pytest.raises(ProviderUnavailable, match=message):
        await RULES.read_or_unavailable(failing(error), operation="test.status")


@pytest.mark.parametrize(
    ("status", "body", "configuration", "level"),
    [
        (401, None, False, logging.ERROR),
        (403, None, False, logging.ERROR),
        (500, {"code": "BAD_ACCOUNT"}, True, logging.ERROR),
        (500, None, False, logging.WARNING),
        (400, None, False, logging.WARNING),
        (302, None, False, logging.WARNING),
    ],
)
def test_require_success_raises_unavailable_for_anything_but_a_2xx(
    caplog: pytest.LogCaptureFixture, status: int, body: Any, configuration: bool, level: int
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(ProviderUnavailable) as error:
        RULES.require_success(
            answer(status, body),
            operation="test.status",
            configuration=lambda response: by_code(response) is not None,
        )

    assert str(error.value) == f"test.status: HTTP {status}"
    assert [r.levelno for r in caplog.records] == [level]
    if level == logging.ERROR:
        assert "check Testco credentials" in caplog.records[0].getMessage()


@pytest.mark.parametrize("status", [200, 202, 204])
def test_require_success_lets_a_2xx_through(status: int) -> None:
    RULES.require_success(answer(status), operation="test.status")


@pytest.mark.parametrize(
    ("status", "body", "names_another_error", "not_found"),
    [
        (404, None, False, True),
        (404, {"code": "NOT_FOUND"}, False, True),
        (404, {"code": "BAD_ACCOUNT"}, True, False),  # not a "no record of it"
        (200, None, False, False),
        (500, None, False, False),
    ],
)
def test_not_found_status(
    status: int, body: Any, names_another_error: bool, not_found: bool
) -> None:
    result = not_found_status(
        answer(status, body), names_another_error=lambda _response: names_another_error
    )

    if not not_found:
        assert result is None
        return
    assert result is not None
    assert (result.status, result.failure_code, result.failure_message, result.raw) == (
        ProviderPaymentStatus.NOT_FOUND,
        FailureCode.NOT_FOUND_AT_PROVIDER,
        "HTTP 404",
        body or {},
    )


def test_not_found_keeps_only_a_json_object_as_raw() -> None:
    result = not_found_status(httpx.Response(404, text="<html>Not Found</html>"))

    assert result is not None
    assert result.raw == {}


# --- tokens and parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
def test_a_granted_token_passes(status: int) -> None:
    RULES.require_token_granted(answer(status, {"access_token": "t"}))


@pytest.mark.parametrize("status", [400, 401, 403, 500])
def test_a_refused_token_is_rejected_without_its_body(status: int) -> None:
    with pytest.raises(ProviderRejected) as error:
        RULES.require_token_granted(answer(status, {"echo": "client-secret"}))

    assert (error.value.status_code, error.value.code) == (status, FailureCode.PROVIDER_ERROR)
    assert str(error.value) == f"Testco token request refused (HTTP {status})"


class Balance(BaseModel):
    amount: str


def test_parse_answer_reads_the_model() -> None:
    assert parse_answer(Balance, {"amount": "10"}, operation="test.balance").amount == "10"


@pytest.mark.parametrize("payload", [None, [], {"amount": None}, "<html>"])
def test_an_unreadable_answer_is_unavailable(payload: object) -> None:
    with pytest.raises(ProviderUnavailable, match=r"^test\.balance: unreadable answer$"):
        parse_answer(Balance, payload, operation="test.balance")


def test_describe_status() -> None:
    assert describe_status(answer(502)) == "HTTP 502"
