"""What a provider's answer does to a payment, case by case, with no database.

Every payment here is built in memory: created five minutes before ``NOW`` (inside the thirty
minute payment timeout), its request-to-pay over four minutes ago (past the three minute grace
for an unknown reference), for 50 000 UGX. Each test changes only what its case is about.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from app.payments.decision import Change, Deadlines, decide
from app.payments.domain import Actor, PaymentStatus
from app.payments.models import Payment
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import FailureCode

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)
GRACE = timedelta(minutes=3)
DEADLINES = Deadlines(payment_timeout=TIMEOUT, not_found_grace=GRACE)

P = PaymentStatus
A = ProviderPaymentStatus


def payment(
    status: PaymentStatus = P.PENDING,
    *,
    age: timedelta = timedelta(minutes=5),
    initiation_over: timedelta | None = timedelta(minutes=4),
    provider_transaction_id: str | None = None,
) -> Payment:
    """``initiation_over``: how long ago the request-to-pay finished, None if it never did."""
    created_at = NOW - age
    finished_at = None if initiation_over is None else NOW - initiation_over
    return Payment(
        id="pay_1",
        merchant_id="mer_1",
        order_id="ORD-1",
        provider="mtn_momo",
        status=status.value,
        amount_minor=50_000,
        currency="UGX",
        phone_number="256772123456",
        description="Order ORD-1",
        payment_metadata={},
        provider_reference="ref-1",
        provider_transaction_id=provider_transaction_id,
        created_at=created_at,
        updated_at=created_at,
        initiation_finished_at=finished_at,
        check_count=0,
    )


def answer(status: ProviderPaymentStatus, **fields: object) -> StatusResult:
    """What the provider says; by default it reports our amount and currency."""
    reported: dict[str, object] = {"amount_minor": 50_000, "currency": "UGX", **fields}
    return StatusResult(status=status, **reported)


def judge(
    the_payment: Payment, the_answer: StatusResult, actor: Actor = Actor.RECONCILER
) -> Change | None:
    return decide(the_payment, the_answer, actor=actor, now=NOW, deadlines=DEADLINES)


def target(change: Change | None) -> PaymentStatus | None:
    return None if change is None else change.to_status


# --- every provider answer from every payment status ---------------------------------------------

MATRIX = {
    # (payment status, provider answer): the status the payment moves to, None: it stays.
    (P.PENDING, A.PENDING): None,
    (P.PENDING, A.SUCCESSFUL): P.SUCCESSFUL,
    (P.PENDING, A.FAILED): P.FAILED,
    (P.PENDING, A.NOT_FOUND): P.FAILED,
    (P.SUCCESSFUL, A.PENDING): None,
    (P.SUCCESSFUL, A.SUCCESSFUL): None,
    (P.SUCCESSFUL, A.FAILED): P.NEEDS_REVIEW,
    (P.SUCCESSFUL, A.NOT_FOUND): None,
    (P.FAILED, A.PENDING): None,
    (P.FAILED, A.SUCCESSFUL): P.NEEDS_REVIEW,
    (P.FAILED, A.FAILED): None,
    (P.FAILED, A.NOT_FOUND): None,
    (P.EXPIRED, A.PENDING): None,
    (P.EXPIRED, A.SUCCESSFUL): P.NEEDS_REVIEW,
    (P.EXPIRED, A.FAILED): None,
    (P.EXPIRED, A.NOT_FOUND): None,
    (P.NEEDS_REVIEW, A.PENDING): None,
    (P.NEEDS_REVIEW, A.SUCCESSFUL): None,
    (P.NEEDS_REVIEW, A.FAILED): None,
    (P.NEEDS_REVIEW, A.NOT_FOUND): None,
}


def test_the_matrix_covers_every_pair():
    assert set(MATRIX) == {(status, said) for status in P for said in A}


@pytest.mark.parametrize(
    ("status", "said", "expected"),
    [(status, said, expected) for (status, said), expected in MATRIX.items()],
    ids=[f"{status.value}-told-{said.value}" for status, said in MATRIX],
)
def test_each_answer_from_each_status(status, said, expected):
    assert target(judge(payment(status), answer(said))) == expected


@pytest.mark.parametrize("status", list(P))
def test_long_after_the_timeout_only_a_pending_payment_expires(status):
    old = payment(status, age=TIMEOUT + timedelta(hours=1))
    expected = P.EXPIRED if status is P.PENDING else None
    assert target(judge(old, answer(A.PENDING))) == expected


@pytest.mark.parametrize("actor", list(Actor))
def test_the_change_is_recorded_as_made_by_whoever_asked(actor):
    change = judge(payment(), answer(A.SUCCESSFUL), actor)
    assert change is not None
    assert change.actor is actor


# --- failure codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(FailureCode))
def test_a_failure_keeps_the_providers_code_and_message(code):
    change = judge(
        payment(), answer(A.FAILED, failure_code=code, failure_message=f"provider says {code}")
    )
    assert change is not None
    assert change.to_status is P.FAILED
    assert change.failure_code is code
    assert change.failure_message == f"provider says {code}"


def test_a_failure_without_a_code_is_a_provider_error():
    change = judge(payment(), answer(A.FAILED, failure_message="Something went wrong"))
    assert change is not None
    assert change.to_status is P.FAILED
    assert change.failure_code is FailureCode.PROVIDER_ERROR
    assert change.failure_message == "Something went wrong"


def test_a_reference_the_provider_never_saw_fails_as_not_found_at_provider():
    change = judge(payment(), answer(A.NOT_FOUND, amount_minor=None, currency=None))
    assert change is not None
    assert change.to_status is P.FAILED
    assert change.failure_code is FailureCode.NOT_FOUND_AT_PROVIDER
    assert change.failure_message is not None
    assert "no record" in change.failure_message


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (P.PENDING, A.SUCCESSFUL),
        (P.SUCCESSFUL, A.FAILED),  # a contradiction: the provider's code is not the story
        (P.FAILED, A.SUCCESSFUL),
    ],
)
def test_only_a_failure_carries_a_failure_code(status, said):
    change = judge(payment(status), answer(said, failure_code=FailureCode.INSUFFICIENT_FUNDS))
    assert change is not None
    assert change.failure_code is None


def test_an_expired_payment_has_a_message_and_no_failure_code():
    change = judge(payment(age=TIMEOUT + timedelta(seconds=1)), answer(A.PENDING))
    assert change is not None
    assert change.failure_code is None
    assert change.failure_message == "The payer did not complete the payment in time."


# --- contradictions of a final status ------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "said"),
    [(P.SUCCESSFUL, A.FAILED), (P.FAILED, A.SUCCESSFUL), (P.EXPIRED, A.SUCCESSFUL)],
)
def test_a_final_status_the_provider_contradicts_goes_to_review(recorded, said, caplog):
    with caplog.at_level(logging.ERROR):
        change = judge(payment(recorded), answer(said, provider_transaction_id="txn-9"))

    assert change is not None
    assert change.to_status is P.NEEDS_REVIEW
    expected = f"provider now says {said.value}, we recorded {recorded.value}"
    assert change.failure_message == expected
    assert change.detail == expected
    assert change.provider_transaction_id == "txn-9"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [expected]


@pytest.mark.parametrize(
    ("recorded", "said"),
    [
        (P.SUCCESSFUL, A.SUCCESSFUL),
        (P.FAILED, A.FAILED),
        (P.EXPIRED, A.FAILED),  # the payer never paid: expired or failed, no money moved
        (P.NEEDS_REVIEW, A.SUCCESSFUL),
        (P.NEEDS_REVIEW, A.FAILED),
    ],
)
def test_an_answer_that_agrees_with_a_final_status_changes_nothing(recorded, said, caplog):
    with caplog.at_level(logging.ERROR):
        assert judge(payment(recorded), answer(said)) is None
    assert caplog.records == []


# --- the provider reports another amount or currency ---------------------------------------------

MISMATCHES = [
    # (what the provider reports, the reason named, reported amount, reported currency)
    pytest.param(
        {"amount_minor": 500},
        "amount 500 != 50000 (minor units)",
        500,
        "UGX",
        id="amount",
    ),
    pytest.param(
        {"currency": "EUR"},
        "currency EUR != UGX",
        50_000,
        "EUR",
        id="currency",
    ),
    pytest.param(
        {"amount_minor": 500, "currency": "EUR"},
        "amount 500 != 50000 (minor units)",
        500,
        "EUR",
        id="both-the-amount-is-named",
    ),
    pytest.param(
        {"amount_minor": None, "currency": "EUR"},
        "currency EUR != UGX",
        None,
        "EUR",
        id="currency-without-an-amount",
    ),
]


@pytest.mark.parametrize(("reported", "reason", "amount", "currency"), MISMATCHES)
@pytest.mark.parametrize("said", [A.SUCCESSFUL, A.FAILED])
def test_a_pending_payment_for_another_amount_goes_to_review_never_settles(
    said, reported, reason, amount, currency, caplog
):
    with caplog.at_level(logging.ERROR):
        change = judge(payment(), answer(said, provider_transaction_id="txn-7", **reported))

    assert change is not None
    assert change.to_status is P.NEEDS_REVIEW
    assert change.failure_code is None
    assert change.failure_message == f"Provider reported {said.value}: {reason}"
    assert change.detail == reason
    assert (change.reported_amount_minor, change.reported_currency) == (amount, currency)
    assert change.provider_transaction_id == "txn-7"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"provider reports another amount: {reason}"]


@pytest.mark.parametrize("recorded", [P.SUCCESSFUL, P.FAILED, P.EXPIRED])
@pytest.mark.parametrize("said", [A.SUCCESSFUL, A.FAILED])
def test_another_amount_sends_even_a_final_status_to_review(recorded, said):
    change = judge(payment(recorded), answer(said, amount_minor=49_999))
    assert change is not None
    assert change.to_status is P.NEEDS_REVIEW
    assert change.failure_message == (
        f"Provider reported {said.value}: amount 49999 != 50000 (minor units)"
    )
    assert change.reported_amount_minor == 49_999


def test_another_amount_for_a_payment_already_in_review_is_logged_and_changes_nothing(caplog):
    with caplog.at_level(logging.ERROR):
        change = judge(payment(P.NEEDS_REVIEW), answer(A.SUCCESSFUL, amount_minor=500))
    assert change is None
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "provider reports another amount: amount 500 != 50000 (minor units)"
    ]


@pytest.mark.parametrize(
    "reported",
    [
        {"amount_minor": None},
        {"currency": None},
        {"amount_minor": None, "currency": None},  # Airtel's enquiry reports neither
    ],
    ids=["no-amount", "no-currency", "neither"],
)
@pytest.mark.parametrize(("said", "expected"), [(A.SUCCESSFUL, P.SUCCESSFUL), (A.FAILED, P.FAILED)])
def test_an_amount_or_currency_not_reported_is_not_a_mismatch(reported, said, expected):
    change = judge(payment(), answer(said, **reported))
    assert target(change) == expected
    assert change is not None
    assert (change.reported_amount_minor, change.reported_currency) == (None, None)


@pytest.mark.parametrize(
    ("said", "age", "expected"),
    [
        (A.PENDING, timedelta(minutes=5), None),
        (A.PENDING, TIMEOUT + timedelta(minutes=1), P.EXPIRED),
        (A.NOT_FOUND, timedelta(minutes=5), P.FAILED),
    ],
)
def test_the_amount_of_an_answer_that_settles_nothing_is_not_checked(said, age, expected):
    change = judge(payment(age=age), answer(said, amount_minor=1, currency="EUR"))
    assert target(change) == expected


# --- expiry --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (TIMEOUT - timedelta(seconds=1), None),
        (TIMEOUT, None),  # the timeout itself is still in time
        (TIMEOUT + timedelta(seconds=1), P.EXPIRED),
    ],
    ids=["before", "at", "after"],
)
def test_pending_at_the_provider_expires_only_past_the_timeout(age, expected):
    change = judge(payment(age=age, initiation_over=timedelta(seconds=1)), answer(A.PENDING))
    assert target(change) == expected


def test_the_timeout_counts_from_creation_not_from_the_end_of_initiation():
    late_initiation = payment(age=TIMEOUT + timedelta(seconds=1), initiation_over=timedelta(0))
    assert target(judge(late_initiation, answer(A.PENDING))) == P.EXPIRED


@pytest.mark.parametrize(("said", "expected"), [(A.SUCCESSFUL, P.SUCCESSFUL), (A.FAILED, P.FAILED)])
def test_a_final_answer_after_the_timeout_settles_the_payment_as_the_provider_says(said, expected):
    old = payment(age=TIMEOUT + timedelta(hours=1))
    assert target(judge(old, answer(said))) == expected


# --- a reference the provider does not know ------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "initiation_over", "expected"),
    [
        pytest.param(timedelta(minutes=5), GRACE + timedelta(seconds=1), P.FAILED, id="past-grace"),
        pytest.param(timedelta(minutes=5), GRACE, P.FAILED, id="at-grace"),
        pytest.param(timedelta(minutes=5), GRACE - timedelta(seconds=1), None, id="within-grace"),
        # The request-to-pay never finished: it may still be running for ten minutes.
        pytest.param(timedelta(minutes=5), None, None, id="initiation-in-flight"),
        pytest.param(
            timedelta(minutes=10) + GRACE - timedelta(seconds=1),
            None,
            None,
            id="abandoned-within-grace",
        ),
        pytest.param(timedelta(minutes=10) + GRACE, None, P.FAILED, id="abandoned-past-grace"),
    ],
)
def test_an_unknown_reference_fails_only_once_the_initiation_is_over_and_the_grace_past(
    age, initiation_over, expected
):
    the_payment = payment(age=age, initiation_over=initiation_over)
    change = judge(the_payment, answer(A.NOT_FOUND, amount_minor=None, currency=None))
    assert target(change) == expected


# --- the provider's transaction id ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "said", "reported", "recorded"),
    [
        pytest.param(P.PENDING, A.SUCCESSFUL, {}, "txn-1", id="success"),
        pytest.param(P.SUCCESSFUL, A.FAILED, {}, "txn-1", id="contradiction"),
        pytest.param(P.PENDING, A.SUCCESSFUL, {"amount_minor": 1}, "txn-1", id="mismatch"),
        # A failure records the provider's code and message, not its transaction id.
        pytest.param(P.PENDING, A.FAILED, {}, None, id="failure"),
    ],
)
def test_which_changes_record_the_providers_transaction_id(status, said, reported, recorded):
    change = judge(payment(status), answer(said, provider_transaction_id="txn-1", **reported))
    assert change is not None
    assert change.provider_transaction_id == recorded


def test_a_success_without_a_transaction_id_records_none():
    change = judge(payment(), answer(A.SUCCESSFUL, provider_transaction_id=None))
    assert change is not None
    assert change.to_status is P.SUCCESSFUL
    assert change.provider_transaction_id is None


def test_a_change_without_a_transaction_id_keeps_the_one_stored():
    values = Change(to_status=P.NEEDS_REVIEW, actor=Actor.CALLBACK).payment_values(NOW)
    assert "provider_transaction_id" not in values
    assert values["status"] == "needs_review"
    assert values["completed_at"] == NOW


def test_a_change_with_a_transaction_id_stores_it():
    change = judge(payment(), answer(A.SUCCESSFUL, provider_transaction_id="txn-5"))
    assert change is not None
    values = change.payment_values(NOW)
    assert values["provider_transaction_id"] == "txn-5"
    assert values["status"] == "successful"


def test_a_long_provider_message_is_cut_to_the_column():
    change = judge(payment(), answer(A.FAILED, failure_message="x" * 400))
    assert change is not None
    assert len(change.payment_values(NOW)["failure_message"]) == 255


def test_the_decision_reads_no_clock_of_its_own():
    young = payment(age=timedelta(minutes=1))
    later = NOW + TIMEOUT
    change = decide(young, answer(A.PENDING), actor=Actor.API, now=later, deadlines=DEADLINES)
    assert target(change) == P.EXPIRED
