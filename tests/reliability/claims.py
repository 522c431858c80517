"""The database's own record of every reconciler claim, and what the claims promise.

The reconciler claims a pending payment by counting a check on it (``check_count + 1``, in
``repository.claim_due``) and, in the same transaction, schedules its next check
``next_check_delay`` later (``next_check_at``). A trigger the test installs on ``payments`` logs,
with the database's clock and the transaction's id, each claim and every other write of
``next_check_at`` — so the test knows every claim (committed ones only: a claim a killed worker
never committed is rolled back from the log too) and every early check a callback asked for
(``webhooks.service``: a callback whose verification could not finish makes the payment due at
once), without touching the service.

Two promises follow from the reconciler's code, and both are checked:

- a payment's claims are spaced by its backoff: the claim after one that made ``check_count``
  *n* comes no sooner than ``next_check_delay(n)`` after it (less ``CLOCK_SLACK``, the moments
  between the reconciler reading the clock for the schedule and the database stamping the row)
  — unless, in between, a callback asked for the payment to be checked early;
- each claim pays for one check: a payment's polls by workers (``tests.reliability.polls``) never
  outnumber the claims made on it before them.

A *round* of a payment is the time from one claim to its next: together, the two say no payment
is polled twice in one round, by one worker or by two.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.reliability.polls import Poll

CLOCK_SLACK = 0.25  # seconds

_INSTALL = [
    """
    CREATE TABLE reliability_checks (
        id bigserial PRIMARY KEY,
        payment_id varchar(64) NOT NULL,
        kind varchar(10) NOT NULL,
        check_count integer NOT NULL,
        tx bigint NOT NULL DEFAULT txid_current(),
        at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE FUNCTION reliability_log_check() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.check_count > OLD.check_count THEN
            INSERT INTO reliability_checks (payment_id, kind, check_count)
            VALUES (NEW.id, 'claim', NEW.check_count);
        ELSIF NEW.next_check_at IS DISTINCT FROM OLD.next_check_at THEN
            INSERT INTO reliability_checks (payment_id, kind, check_count)
            VALUES (NEW.id, 'schedule', NEW.check_count);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER reliability_log_check AFTER UPDATE OF check_count, next_check_at
    ON payments FOR EACH ROW EXECUTE FUNCTION reliability_log_check()
    """,
]
_REMOVE = [
    "DROP TRIGGER IF EXISTS reliability_log_check ON payments",
    "DROP FUNCTION IF EXISTS reliability_log_check()",
    "DROP TABLE IF EXISTS reliability_checks",
]


@dataclass(frozen=True)
class Claim:
    payment_id: str
    check_count: int  # as the claim left it
    at: float  # epoch seconds, the database's clock


@dataclass(frozen=True)
class CheckLog:
    claims: list[Claim]
    # Per payment, when its next check was moved other than by a claim (a callback asking for
    # an early check, or the end of its initiation).
    rescheduled: dict[str, list[float]]


@asynccontextmanager
async def check_log(engine: AsyncEngine) -> AsyncIterator[None]:
    """Log claims and reschedules while the block runs; the trigger and its table are gone
    afterwards."""
    async with engine.begin() as connection:
        for statement in _REMOVE + _INSTALL:
            await connection.execute(text(statement))
    try:
        yield
    finally:
        async with engine.begin() as connection:
            for statement in _REMOVE:
                await connection.execute(text(statement))


async def read_check_log(engine: AsyncEngine) -> CheckLog:
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT payment_id, kind, check_count, tx, extract(epoch FROM at) "
                    "FROM reliability_checks ORDER BY at, id"
                )
            )
        ).all()
    claim_transactions = {tx for _, kind, _, tx, _ in rows if kind == "claim"}
    claims, rescheduled = [], defaultdict(list)
    for payment_id, kind, count, tx, at in rows:
        if kind == "claim":
            claims.append(Claim(str(payment_id), int(count), float(at)))
        elif tx not in claim_transactions:  # a claim's own schedule is part of the claim
            rescheduled[str(payment_id)].append(float(at))
    return CheckLog(claims, dict(rescheduled))


@dataclass(frozen=True)
class EarlyClaim:
    previous: Claim
    claim: Claim
    promised: float  # seconds the backoff promised between them

    def __str__(self) -> str:
        gap = self.claim.at - self.previous.at
        return (
            f"{self.claim.payment_id}: claimed at {self.previous.at:.3f} (check "
            f"{self.previous.check_count}) and again {gap:.3f} s later (check "
            f"{self.claim.check_count}); the backoff promised {self.promised:.1f} s"
        )


def early_claims(
    log: CheckLog, backoff: Callable[[int], timedelta], *, slack: float = CLOCK_SLACK
) -> list[EarlyClaim]:
    """Claims that came sooner after the payment's previous claim than ``backoff`` (the
    reconciler's ``next_check_delay`` for the previous claim's check count) allows, where
    nothing rescheduled the payment's check in between."""
    by_payment: dict[str, list[Claim]] = defaultdict(list)
    for claim in sorted(log.claims, key=lambda claim: claim.at):
        by_payment[claim.payment_id].append(claim)
    found = []
    for payment_id, ordered in by_payment.items():
        rescheduled = log.rescheduled.get(payment_id, [])
        for previous, claim in itertools.pairwise(ordered):
            if any(previous.at < at < claim.at for at in rescheduled):
                continue  # a new round was asked for
            promised = backoff(previous.check_count).total_seconds()
            if claim.at - previous.at < promised - slack:
                found.append(EarlyClaim(previous, claim, promised))
    return found


@dataclass
class Round:
    """One round of one payment: from a claim to the payment's next claim (``ends`` None: the
    last one), with the workers' polls that started in between. ``asked_early``: a callback
    asked for the payment to be checked at once during it, so it may end before the check it
    began with is done."""

    reference: str
    claim: Claim
    ends: float | None
    asked_early: bool = False
    polls: list[Poll] = field(default_factory=list)

    def describe(self) -> str:
        until = "on" if self.ends is None else f"to {self.ends:.3f}"
        polls = "; ".join(str(poll) for poll in self.polls) or "no poll"
        return f"{self.reference} round from {self.claim.at:.3f} {until}: {polls}"


@dataclass
class Rounds:
    rounds: list[Round]
    unclaimed: list[Poll]  # polls of a payment not yet claimed at the time

    def problems(self) -> list[str]:
        """Rounds polled more than once, polls outliving their round, and polls without one.

        A round right after one a callback cut short may also hold the late check of that one:
        its count is not held against it."""
        found: list[str] = []
        previous: Round | None = None
        for r in sorted(self.rounds, key=lambda r: (r.reference, r.claim.at)):
            after_early = (
                previous is not None
                and previous.reference == r.reference
                and (previous.asked_early)
            )
            if len(r.polls) > 1 and not after_early:
                found.append(f"polled {len(r.polls)} times in one round: {r.describe()}")
            if r.ends is not None and not r.asked_early:
                ends = r.ends
                if any(poll.ended is None or poll.ended > ends for poll in r.polls):
                    found.append(f"a poll outlived its round: {r.describe()}")
            previous = r
        found += [f"polled before any claim: {poll.reference} {poll}" for poll in self.unclaimed]
        return found

    def unpolled(self, *, claimed_before: float) -> list[Round]:
        """Rounds begun before ``claimed_before`` that no worker ever polled."""
        return [r for r in self.rounds if r.claim.at < claimed_before and not r.polls]


def rounds_of(log: CheckLog, polls: Sequence[Poll], reference_of: dict[str, str]) -> Rounds:
    """Each payment's rounds (``reference_of`` maps payment ids to provider references), with
    each of the workers' ``polls`` in the round it started in."""
    claims_of: dict[str, list[Claim]] = defaultdict(list)
    for claim in log.claims:
        claims_of[claim.payment_id].append(claim)
    rounds_by_reference: dict[str, list[Round]] = {}
    for payment_id, claimed in claims_of.items():
        reference = reference_of.get(payment_id)
        if reference is None:
            continue
        claimed.sort(key=lambda claim: claim.at)
        rescheduled = log.rescheduled.get(payment_id, [])
        ends: list[float | None] = [*(claim.at for claim in claimed[1:]), None]
        rounds_by_reference[reference] = [
            Round(
                reference,
                claim,
                end,
                asked_early=any(claim.at < at and (end is None or at < end) for at in rescheduled),
            )
            for claim, end in zip(claimed, ends, strict=True)
        ]
    unclaimed = []
    for poll in sorted(polls, key=lambda poll: poll.started):
        begun = [
            r for r in rounds_by_reference.get(poll.reference, []) if r.claim.at <= poll.started
        ]
        if begun:
            begun[-1].polls.append(poll)
        else:
            unclaimed.append(poll)
    every_round = [r for rounds in rounds_by_reference.values() for r in rounds]
    return Rounds(sorted(every_round, key=lambda r: r.claim.at), unclaimed)
