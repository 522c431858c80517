"""MTN's JSON mapped to the gateway's types: pure functions, no HTTP."""

from __future__ import annotations

import pytest

from app.providers.base import ProviderPaymentStatus, StatusResult
from app.providers.mtn_momo import wire
from app.vocabulary import FailureCode
from tests.providers.conftest import payment_request

F = FailureCode

# Every reason MTN documents (swagger enum + the 2023-24 additions).
DOCUMENTED_REASONS = [
    ("NOT_ENOUGH_FUNDS", F.INSUFFICIENT_FUNDS),
    ("PAYER_NOT_FOUND", F.PAYER_NOT_FOUND),
    ("APPROVAL_REJECTED", F.REJECTED_BY_PAYER),
    ("TRANSACTION_CANCELED", F.REJECTED_BY_PAYER),
    ("PAYMENT_NOT_APPROVED", F.REJECTED_BY_PAYER),
    ("EXPIRED", F.PAYER_TIMEOUT),
    ("COULD_NOT_PERFORM_TRANSACTION", F.PAYER_TIMEOUT),
    ("PAYER_LIMIT_REACHED", F.LIMIT_EXCEEDED),
    ("PAYEE_LIMIT_REACHED", F.LIMIT_EXCEEDED),
    ("NOT_ALLOWED", F.NOT_ALLOWED),
    ("PAYEE_NOT_ALLOWED_TO_RECEIVE", F.NOT_ALLOWED),
    ("NOT_ALLOWED_TARGET_ENVIRONMENT", F.NOT_ALLOWED),
    ("SENDER_ACCOUNT_NOT_ACTIVE", F.NOT_ALLOWED),
    ("PAYEE_NOT_FOUND", F.NOT_ALLOWED),
    ("VALIDATION_ERROR", F.INVALID_REQUEST),
    ("INVALID_CURRENCY", F.INVALID_REQUEST),
    ("INVALID_CALLBACK_URL_HOST", F.INVALID_REQUEST),
    ("RESOURCE_NOT_FOUND", F.NOT_FOUND_AT_PROVIDER),
    ("TRANSACTION_NOT_FOUND", F.NOT_FOUND_AT_PROVIDER),
    ("INTERNAL_PROCESSING_ERROR", F.PROVIDER_ERROR),
    ("SERVICE_UNAVAILABLE", F.PROVIDER_ERROR),
    ("RESOURCE_ALREADY_EXIST", F.PROVIDER_ERROR),
    ("SOMETHING_NEW_FROM_MTN", F.PROVIDER_ERROR),
]


def failed_status(reason: object) -> dict[str, object]:
    # The status answer's shape, from MTN's requesttopay-referenceId-GET documentation.
    return {
        "amount": "50000",
        "currency": "UGX",
        "externalId": "ORD-1001",
        "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
        "payerMessage": "Order ORD-1001",
        "payeeNote": "Order ORD-1001",
        "status": "FAILED",
        "reason": reason,
    }


def result_of(raw: dict[str, object]) -> StatusResult:
    return wire.status_result(wire.MtnRequestToPayStatus.model_validate(raw), raw)


@pytest.mark.parametrize(("reason", "code"), DOCUMENTED_REASONS)
def test_failed_reason_as_a_string(reason: str, code: FailureCode) -> None:
    result = result_of(failed_status(reason))
    assert result.status is ProviderPaymentStatus.FAILED
    assert result.failure_code is code
    assert result.failure_message == reason


@pytest.mark.parametrize(("reason", "code"), DOCUMENTED_REASONS)
def test_failed_reason_as_an_object(reason: str, code: FailureCode) -> None:
    result = result_of(failed_status({"code": reason, "message": "Explained by MTN"}))
    assert result.status is ProviderPaymentStatus.FAILED
    assert result.failure_code is code
    assert result.failure_message == f"{reason}: Explained by MTN"


def test_failed_without_a_reason_is_a_provider_error() -> None:
    raw = failed_status(None)
    result = result_of(raw)
    assert result.failure_code is F.PROVIDER_ERROR
    assert result.failure_message


def test_successful_status_reports_amount_currency_and_transaction_id() -> None:
    raw = {
        "amount": "50000",
        "currency": "UGX",
        "financialTransactionId": "363440463",
        "externalId": "ORD-1001",
        "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
        "status": "SUCCESSFUL",
    }
    result = result_of(raw)
    assert result.status is ProviderPaymentStatus.SUCCESSFUL
    assert (result.amount_minor, result.currency) == (50000, "UGX")
    assert result.provider_transaction_id == "363440463"
    assert result.failure_code is None
    assert result.raw == raw


def test_sandbox_eur_amount_is_read_in_cents() -> None:
    result = result_of({"amount": "12.50", "currency": "EUR", "status": "SUCCESSFUL"})
    assert result.amount_minor == 1250


@pytest.mark.parametrize(
    ("amount", "currency"), [("50000.5", "UGX"), ("lots", "UGX"), ("100", "XYZ"), (None, "UGX")]
)
def test_an_unreadable_amount_is_left_unknown(amount: str | None, currency: str) -> None:
    result = result_of({"amount": amount, "currency": currency, "status": "SUCCESSFUL"})
    assert result.status is ProviderPaymentStatus.SUCCESSFUL
    assert result.amount_minor is None


@pytest.mark.parametrize("status", ["PENDING", "pending", "ONGOING", "CREATED"])
def test_pending_and_unknown_statuses_stay_pending(status: str) -> None:
    result = result_of({"amount": "50000", "currency": "UGX", "status": status})
    assert result.status is ProviderPaymentStatus.PENDING
    assert result.failure_code is None


def test_request_to_pay_body_matches_mtn_documented_shape() -> None:
    request = payment_request(order_id="order-123", amount_minor=5000, description="Order 123")
    body = wire.request_to_pay_body(request).model_dump(by_alias=True)
    assert body == {
        "amount": "5000",
        "currency": "UGX",
        "externalId": "order-123",
        "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
        "payerMessage": "Order 123",
        "payeeNote": "Order 123",
    }


def test_eur_amount_is_a_decimal_string_in_major_units() -> None:
    body = wire.request_to_pay_body(payment_request(amount_minor=1250, currency="EUR"))
    assert body.amount == "12.50"


@pytest.mark.parametrize(
    ("description", "note"),
    [
        ("Order ORD-1001", "Order ORD-1001"),
        ("Tom's TV & radio", "Tom s TV radio"),
        ("Café   au\tlait\n(2 cups)", "Cafe au lait (2 cups)"),
        ("Pay: #42, ref_7/8.", "Pay: #42, ref_7/8."),
        ("<script>alert('x')</script>", "script alert( x ) /script"),
        ("x" * 200, "x" * 128),
        ("a " * 100, ("a " * 64).strip()),
    ],
)
def test_notes_are_sanitised_for_mtn(description: str, note: str) -> None:
    assert wire.sanitize_note(description, order_id="ORD-1") == note


@pytest.mark.parametrize("description", ["", "   ", "'&'", "💸💸", None])
def test_an_empty_note_falls_back_to_the_order(description: str | None) -> None:
    assert wire.sanitize_note(description, order_id="ORD-1001") == "Payment ORD-1001"


def test_the_fallback_note_is_sanitised_too() -> None:
    assert wire.sanitize_note("", order_id="O'Brien&Co") == "Payment O Brien Co"


def test_every_sanitised_note_is_acceptable() -> None:
    for text in ["Tom's", "a&b", "ü" * 300, "\x00\x01", "🙂 ok"]:
        note = wire.sanitize_note(text, order_id="ORD")
        assert 0 < len(note) <= 128
        assert "'" not in note
        assert "&" not in note
        assert note == note.strip()


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        ("NOT_ALLOWED", F.NOT_ALLOWED),
        ("NOT_ALLOWED_TARGET_ENVIRONMENT", F.NOT_ALLOWED),
        ("INVALID_CALLBACK_URL_HOST", F.INVALID_REQUEST),
        ("INVALID_CURRENCY", F.INVALID_REQUEST),
        ("PAYER_NOT_FOUND", F.PAYER_NOT_FOUND),
        ("SERVICE_UNAVAILABLE", None),
        ("INTERNAL_PROCESSING_ERROR", None),
        ("RESOURCE_NOT_FOUND", None),
        ("UNHEARD_OF", None),
        (None, None),
    ],
)
def test_which_500_codes_are_final_at_initiation(
    code: str | None, refusal: FailureCode | None
) -> None:
    assert wire.final_initiation_refusal(code) is refusal


def test_numbers_where_mtn_documents_strings_are_read() -> None:
    result = result_of(
        {
            "amount": 50000,
            "currency": "UGX",
            "financialTransactionId": 363440463,
            "status": "SUCCESSFUL",
        }
    )
    assert result.amount_minor == 50000
    assert result.provider_transaction_id == "363440463"
