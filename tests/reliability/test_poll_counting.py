"""The poll and round counting of the multi-replica test, on evidence made up here: silent on
a clean run, loud on a double poll, a poll that outlives its round, a poll without a claim,
and claims closer than the backoff — so a green multi-replica run means nobody polled twice."""

from __future__ import annotations

from datetime import timedelta

from tests.reliability.claims import CheckLog, Claim, early_claims, rounds_of
from tests.reliability.polls import Poll, StatusCall, calls_from, polls_from

REFERENCE = "ref-1"
PAYMENT = "pay_1"
REFERENCE_OF = {PAYMENT: REFERENCE}
ATTEMPTS = 3


def call(caller: str, at: float, status: int | None = 200, *, took: float = 0.05) -> StatusCall:
    answered = None if status is None else at + took
    return StatusCall("mtn_momo", REFERENCE, caller, at, answered, status)


def claim(at: float, check_count: int = 1) -> Claim:
    return Claim(PAYMENT, check_count, at)


def backoff(check_count: int) -> timedelta:
    """Twenty seconds, doubling with each check, as the reconciler's ``next_check_delay``."""
    return timedelta(seconds=20 * 2 ** (check_count - 1))


def problems(claims: list[Claim], calls: list[StatusCall], **rescheduled: list[float]) -> list[str]:
    log = CheckLog(claims, {PAYMENT: rescheduled.get("at", [])})
    return rounds_of(log, polls_from(calls, attempts=ATTEMPTS), REFERENCE_OF).problems()


# --- polls ---------------------------------------------------------------------------------------


def callers_and_sizes(polls: list[Poll]) -> list[tuple[str, int]]:
    return [(poll.caller, len(poll.calls)) for poll in polls]


def test_retries_after_transient_answers_are_one_poll() -> None:
    calls = [call("worker-a", 0, 503), call("worker-a", 0.7, 504, took=0.5), call("worker-a", 2.5)]

    assert callers_and_sizes(polls_from(calls, attempts=ATTEMPTS)) == [("worker-a", 3)]


def test_a_call_after_a_final_answer_or_the_last_attempt_is_a_new_poll() -> None:
    after_answer = [call("worker-a", 0), call("worker-a", 0.5)]
    after_attempts = [call("worker-a", t, 503) for t in (0, 1, 2, 3)]

    assert callers_and_sizes(polls_from(after_answer, attempts=ATTEMPTS)) == [
        ("worker-a", 1),
        ("worker-a", 1),
    ]
    assert callers_and_sizes(polls_from(after_attempts, attempts=ATTEMPTS)) == [
        ("worker-a", 3),
        ("worker-a", 1),
    ]


def test_calls_in_flight_together_or_from_two_processes_are_two_polls() -> None:
    together = [call("worker-a", 0, 503, took=1.0), call("worker-a", 0.5)]
    two_processes = [call("worker-a", 0, 503), call("worker-b", 0.7)]

    assert len(polls_from(together, attempts=ATTEMPTS)) == 2
    assert sorted(callers_and_sizes(polls_from(two_processes, attempts=ATTEMPTS))) == [
        ("worker-a", 1),
        ("worker-b", 1),
    ]


def test_the_simulator_log_reads_in_order_of_arrival() -> None:
    payload = {
        "calls": [
            {**call("worker-b", 2).__dict__},
            {**call("worker-a", 1, None).__dict__},
        ]
    }

    assert [(c.caller, c.status_code) for c in calls_from(payload)] == [
        ("worker-a", None),
        ("worker-b", 200),
    ]


# --- rounds --------------------------------------------------------------------------------------


def test_one_poll_per_round_by_whichever_worker_is_clean() -> None:
    claims = [claim(0, 1), claim(20.5, 2), claim(61, 3)]
    calls = [call("worker-a", 0.1, 503), call("worker-a", 0.9), call("worker-b", 20.6)]

    assert problems(claims, calls) == []
    assert early_claims(CheckLog(claims, {}), backoff) == []


def test_two_workers_polling_in_one_round_is_a_double_poll() -> None:
    calls = [call("worker-a", 0.1), call("worker-b", 3.0)]

    [problem] = problems([claim(0)], calls)

    assert problem.startswith("polled 2 times in one round: ref-1")
    assert "worker-a" in problem
    assert "worker-b" in problem


def test_one_worker_polling_twice_in_one_round_is_a_double_poll_too() -> None:
    [problem] = problems([claim(0)], [call("worker-a", 0.1), call("worker-a", 5.0)])

    assert problem.startswith("polled 2 times in one round")


def test_broken_claims_two_workers_claiming_together_fail_both_checks() -> None:
    # What a claim without its row lock looks like: both sweeps count a check on the payment
    # in the same instant, and both ask the provider.
    claims = [claim(0.000, 1), claim(0.020, 2)]
    calls = [call("worker-a", 0.05), call("worker-b", 0.06)]

    assert [p.split(":")[0] for p in problems(claims, calls)] == ["polled 2 times in one round"]
    [early] = early_claims(CheckLog(claims, {}), backoff)
    assert early.promised == 20
    assert "again 0.020 s later" in str(early)


def test_a_poll_still_running_when_the_next_round_begins_outlived_its_round() -> None:
    claims = [claim(0, 1), claim(20, 2)]
    calls = [call("worker-a", 19.0, 504, took=1.5), call("worker-b", 20.1)]

    [problem] = problems(claims, calls)

    assert problem.startswith("a poll outlived its round: ref-1 round from 0.000 to 20.000")


def test_a_poll_in_flight_when_the_next_round_begins_outlived_its_round() -> None:
    [problem] = problems([claim(0, 1), claim(20, 2)], [call("worker-a", 19.0, None)])

    assert problem.startswith("a poll outlived its round")


def test_a_poll_before_any_claim_is_reported() -> None:
    [problem] = problems([claim(10)], [call("worker-a", 5.0)])

    assert problem.startswith("polled before any claim: ref-1")


def test_a_round_a_callback_cut_short_may_overlap_the_next() -> None:
    # A callback could not verify and asked for a check at once (at 3): the next claim comes
    # early, while the first round's check is still retrying.
    claims = [claim(0, 1), claim(4, 2)]
    calls = [
        call("worker-a", 2.0, 503),
        call("worker-b", 4.1),
        call("worker-a", 4.5),  # worker-a's retry, inside the next round
    ]

    assert problems(claims, calls, at=[3.0]) == []
    assert early_claims(CheckLog(claims, {PAYMENT: [3.0]}), backoff) == []
    # Without the callback's request, the same evidence is an early claim and an overlap.
    assert early_claims(CheckLog(claims, {}), backoff) != []
    assert problems(claims, calls) != []


def test_claims_are_held_to_the_backoff_of_the_check_count_they_follow() -> None:
    third_too_soon = [claim(0, 1), claim(20.1, 2), claim(50, 3)]

    [early] = early_claims(CheckLog(third_too_soon, {}), backoff)

    assert (early.previous.check_count, early.claim.check_count, early.promised) == (2, 3, 40)
