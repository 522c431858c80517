"""What must hold after any storm, checked from the evidence of all three parties.

The gateway's database (payments, events, audit trail), the simulator's ledger (what the
"provider" accepted and charged) and the storefront receiver's log (what was actually delivered)
are read into plain snapshots; ``check_invariants`` compares them and returns *every* violation
it finds, so one failing run shows the whole damage rather than the first symptom.

1. state     every payment is in the state the provider holds: SUCCESSFUL ↔ successful,
             FAILED ↔ failed, PENDING ↔ pending or expired, a reference the provider never
             accepted ↔ failed with ``not_found_at_provider`` (or refused at initiation);
2. charges   at most one charge per reference, and every charge belongs to a payment the
             gateway recorded (a charge under any other reference is a second charge);
3. events    one event per transition out of pending (so exactly one for a terminal payment),
             each delivered at least once, and never two different webhook-ids for one
             payment's event;
4. audit     one creation row, exactly one row leaving pending per terminal payment, and a
             chain of transitions that ends in the payment's current status.

Refunds are held to the same four, plus one about the money itself:

5. refunds   per payment, the succeeded refunds add up to at most its amount, and the payment's
             ``amount_refunded_minor`` is exactly that sum (and what its refunds hold, pending
             and needs_review included, never exceeds it either); each refund has one provider
             reference of its own; at the provider each refund was paid at most once, for the
             amount and the payment the gateway recorded, and every refund the provider took
             belongs to a refund the gateway recorded (a refund under any other reference is
             money sent twice);
   state     SUCCESSFUL ↔ succeeded, FAILED ↔ failed, PENDING ↔ pending or needs_review; a
             reference the provider never took ↔ failed (refused at request), or pending /
             needs_review (the call never got an answer: it is never sent again, a person looks).
             Airtel names a refund by the collection's ``airtel_money_id`` and refunds it once, in
             full: a refund Airtel made must be held by exactly one refund that is not failed
             (succeeded, or needs_review / pending when Airtel's answer was lost);
   events    exactly one ``refund.*`` event per final status a refund reached (none while
             pending), delivered, under one webhook-id;
   audit     one creation row, one row leaving pending per final refund, a chain ending in the
             refund's current status.

Operators resolve what no machine should: a payment (refund) in needs_review becomes successful
or failed (succeeded or failed) by hand, with a note. The four hold around it:

   state     a payment or refund whose last transition is a person's resolution is exempt from
             agreeing with the provider (a person decided, e.g. after the provider reported
             another amount), but only a well-formed one: from needs_review, to an outcome a
             person may choose, recorded in the operator audit log with a note. Charges and
             payouts are held as ever (never two per reference, never one the gateway did not
             write ahead), and so is the refunded total;
   events    one event per status a machine moved it to (out of pending, into needs_review), and
             exactly one per resolution, of its outcome, tied (``operator_action_id``) to the
             audit log entry recording that resolution: so successful → needs_review →
             successful by hand rightly has two ``payment.succeeded``. Each is delivered, and a
             resolution's event is its own webhook-id;
   audit     each resolution (actor ``operator``, with its ``operator_id``) leaves needs_review
             and follows a needs_review row in the chain; it has its ``payment.resolve`` /
             ``refund.resolve`` entry (same operator, same outcome, a note), and every such
             entry records a resolution; no machine ever leaves needs_review.

``wait_for_invariants`` polls until they hold: a slow machine only takes longer to converge,
while a real violation still fails, listing everything that is wrong at the deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.money import format_amount

TERMINAL = ("successful", "failed", "expired", "needs_review")
EVENT_TYPE = {
    "successful": "payment.succeeded",
    "failed": "payment.failed",
    "expired": "payment.expired",
    "needs_review": "payment.needs_review",
}
# What the gateway may show for each status the provider holds.
ACCEPTED_STATES = {
    "SUCCESSFUL": {"successful"},
    "FAILED": {"failed"},
    "PENDING": {"pending", "expired"},
}

REFUND_FINAL = ("succeeded", "failed", "needs_review")
REFUND_EVENT_TYPE = {
    "succeeded": "refund.succeeded",
    "failed": "refund.failed",
    "needs_review": "refund.needs_review",
}
# What the gateway may show for a refund, for each status the provider holds for it.
REFUND_ACCEPTED_STATES = {
    "SUCCESSFUL": {"succeeded"},
    "FAILED": {"failed"},
    "PENDING": {"pending", "needs_review"},
}
# Refunds that hold part of their payment: a new refund may only take what these leave.
REFUND_HOLDING = ("pending", "succeeded", "needs_review")


# --- snapshots -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayPayment:
    id: str
    provider: str
    status: str
    provider_reference: str
    failure_code: str | None = None
    order_id: str = ""
    amount_minor: int = 0
    amount_refunded_minor: int = 0
    # Airtel's airtel_money_id: the name Airtel refunds the payment by.
    provider_transaction_id: str | None = None
    currency: str = "UGX"


@dataclass(frozen=True)
class GatewayEvent:
    id: str
    payment_id: str
    type: str
    delivery_status: str = "pending"
    refund_id: str | None = None  # set on refund.* events
    # Set on the event of an operator's resolution: the audit log entry it announces.
    operator_action_id: int | None = None


@dataclass(frozen=True)
class Transition:
    id: int
    payment_id: str
    from_status: str | None
    to_status: str
    actor: str | None = None  # api | callback | reconciler | operator
    operator_id: str | None = None  # set when actor is operator


@dataclass(frozen=True)
class GatewayRefund:
    id: str
    payment_id: str
    provider: str
    status: str  # pending | succeeded | failed | needs_review
    amount_minor: int
    provider_reference: str
    currency: str = "UGX"
    failure_code: str | None = None
    provider_transaction_id: str | None = None


@dataclass(frozen=True)
class RefundTransition:
    id: int
    refund_id: str
    from_status: str | None
    to_status: str
    actor: str | None = None  # api | callback | reconciler | operator
    operator_id: str | None = None  # set when actor is operator


@dataclass(frozen=True)
class OperatorAction:
    """One entry of the operator audit log, as far as the checker reads it: a resolution's
    ``detail`` says ``{"from": "needs_review", "to": ..., "note": ...}``."""

    id: int
    operator_id: str | None
    action: str  # payment.resolve | refund.resolve | merchant.rotate_key | ...
    target_type: str | None
    target_id: str | None
    to_status: str | None = None  # detail["to"]
    note: str | None = None  # detail["note"]


@dataclass
class GatewaySnapshot:
    payments: list[GatewayPayment] = field(default_factory=list)
    events: list[GatewayEvent] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    refunds: list[GatewayRefund] = field(default_factory=list)
    refund_transitions: list[RefundTransition] = field(default_factory=list)
    operator_actions: list[OperatorAction] = field(default_factory=list)


@dataclass(frozen=True)
class ProviderPayment:
    """One entry of the simulator's ledger."""

    provider: str
    reference: str
    status: str  # PENDING | SUCCESSFUL | FAILED
    charges: int = 1
    create_requests: int = 1


@dataclass(frozen=True)
class ProviderRefund:
    """One entry of the simulator's refund ledger.

    MTN: ``reference`` is the refund's X-Reference-Id and ``payment_reference`` the
    request-to-pay's (``referenceIdToRefund``). Airtel: ``reference`` is the collection's
    airtel_money_id and ``payment_reference`` its transaction.id (the gateway payment's
    provider_reference).
    """

    provider: str
    reference: str
    payment_reference: str
    status: str  # PENDING | SUCCESSFUL | FAILED
    amount: str
    payouts: int = 0
    create_requests: int = 1
    reason: str | None = None


@dataclass
class SimulatorSnapshot:
    payments: list[ProviderPayment] = field(default_factory=list)
    # (provider, reference) the create endpoint was asked about but never accepted.
    unaccepted: set[tuple[str, str]] = field(default_factory=set)
    refunds: list[ProviderRefund] = field(default_factory=list)
    # (provider, reference) a refund endpoint was asked about but never took (refused at
    # request, or every attempt lost); Airtel's reference is the airtel_money_id.
    unaccepted_refunds: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Delivery:
    """One POST the storefront received."""

    webhook_id: str
    payment_id: str
    event_type: str
    accepted: bool = True  # answered 2xx
    refund_id: str | None = None  # a refund.* event's refund


@dataclass(frozen=True)
class Violation:
    invariant: str  # state | charges | events | audit | refunds
    subject: str  # a payment or refund id, or a provider reference
    message: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.message}"


# --- readers -------------------------------------------------------------------------------------


async def read_gateway(engine: AsyncEngine) -> GatewaySnapshot:
    """One consistent read of the gateway's tables (a single REPEATABLE READ transaction on
    PostgreSQL, so payments, refunds, events, transitions and the operator audit log are seen
    at the same instant)."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        payments = (
            await connection.execute(
                text(
                    "SELECT id, provider, status, provider_reference, failure_code, order_id, "
                    "amount_minor, amount_refunded_minor, provider_transaction_id, currency "
                    "FROM payments"
                )
            )
        ).all()
        events = (
            await connection.execute(
                text(
                    "SELECT id, payment_id, type, delivery_status, refund_id, operator_action_id "
                    "FROM events"
                )
            )
        ).all()
        transitions = (
            await connection.execute(
                text(
                    "SELECT id, payment_id, from_status, to_status, actor, operator_id "
                    "FROM payment_transitions ORDER BY id"
                )
            )
        ).all()
        refunds = (
            await connection.execute(
                text(
                    "SELECT id, payment_id, provider, status, amount_minor, provider_reference, "
                    "currency, failure_code, provider_transaction_id FROM refunds"
                )
            )
        ).all()
        refund_transitions = (
            await connection.execute(
                text(
                    "SELECT id, refund_id, from_status, to_status, actor, operator_id "
                    "FROM refund_transitions ORDER BY id"
                )
            )
        ).all()
        actions = (
            await connection.execute(
                text(
                    "SELECT id, operator_id, action, target_type, target_id, detail "
                    "FROM operator_actions ORDER BY id"
                )
            )
        ).all()
        await connection.rollback()
    return GatewaySnapshot(
        payments=[GatewayPayment(*row) for row in payments],
        events=[GatewayEvent(*row) for row in events],
        transitions=[Transition(*row) for row in transitions],
        refunds=[GatewayRefund(*row) for row in refunds],
        refund_transitions=[RefundTransition(*row) for row in refund_transitions],
        operator_actions=[_operator_action(*row) for row in actions],
    )


def _operator_action(
    id: int,
    operator_id: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    detail: Any,
) -> OperatorAction:
    if isinstance(detail, str | bytes):  # JSON as text (asyncpg's JSONB, SQLite)
        detail = json.loads(detail)
    detail = detail if isinstance(detail, dict) else {}
    to_status, note = detail.get("to"), detail.get("note")
    return OperatorAction(
        id=int(id),
        operator_id=operator_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        to_status=to_status if isinstance(to_status, str) else None,
        note=note if isinstance(note, str) else None,
    )


def simulator_snapshot_from(
    ledger: dict[str, Any], refunds: dict[str, Any] | None = None
) -> SimulatorSnapshot:
    """``GET /_simulator/payments`` (and ``GET /_simulator/refunds``) as a snapshot."""
    refund_ledger = refunds or {}
    return SimulatorSnapshot(
        payments=[
            ProviderPayment(
                provider=p["provider"],
                reference=p["reference"],
                status=p["status"],
                charges=p["charges"],
                create_requests=p["create_requests"],
            )
            for p in ledger["payments"]
        ],
        unaccepted={(u["provider"], u["reference"]) for u in ledger.get("unaccepted", [])},
        refunds=[
            ProviderRefund(
                provider=r["provider"],
                reference=r["reference"],
                payment_reference=r["payment_reference"],
                status=r["status"],
                amount=r["amount"],
                payouts=r["payouts"],
                create_requests=r["create_requests"],
                reason=r.get("reason"),
            )
            for r in refund_ledger.get("refunds", [])
        ],
        unaccepted_refunds={
            (u["provider"], u["reference"]) for u in refund_ledger.get("unaccepted", [])
        },
    )


async def read_simulator(simulator: httpx.AsyncClient) -> SimulatorSnapshot:
    """The payment ledger, then the refund ledger (refunds only ever follow payments)."""
    response = await simulator.get("/_simulator/payments")
    response.raise_for_status()
    refunds = await simulator.get("/_simulator/refunds")
    refunds.raise_for_status()
    return simulator_snapshot_from(response.json(), refunds.json())


def deliveries_from(received: Iterable[Any], accepted: Iterable[Any]) -> list[Delivery]:
    """The receiver's log (``tests.receiver.Receiver``: ``received`` holds every request,
    ``accepted`` those it answered 2xx) as deliveries. A ``refund.*`` event's ``data`` is the
    refund: its ``id`` is the refund's, its ``payment_id`` the payment's."""
    accepted_ids = {id(d) for d in accepted}
    deliveries = []
    for request in received:
        headers = {k.lower(): v for k, v in request.headers.items()}
        refund_id = None
        try:
            body = json.loads(request.body)
            payment_id, event_type = body["data"]["id"], body["type"]
            if str(event_type).startswith("refund."):
                refund_id, payment_id = payment_id, body["data"]["payment_id"]
        except (ValueError, KeyError, TypeError):
            payment_id, event_type = "?", "?"
        deliveries.append(
            Delivery(
                webhook_id=headers.get("webhook-id", ""),
                payment_id=payment_id,
                event_type=event_type,
                accepted=id(request) in accepted_ids,
                refund_id=refund_id,
            )
        )
    return deliveries


# --- operator resolutions ------------------------------------------------------------------------

OPERATOR = "operator"
NEEDS_REVIEW = "needs_review"


@dataclass(frozen=True)
class _Move:
    """One audit row of a payment or a refund (``subject``), whichever it is."""

    id: int
    subject: str
    from_status: str | None
    to_status: str
    actor: str | None
    operator_id: str | None

    @property
    def by_operator(self) -> bool:
        return self.actor == OPERATOR

    def __str__(self) -> str:
        return f"{self.from_status}→{self.to_status}"


@dataclass(frozen=True)
class _Kind:
    name: str  # payment | refund
    action: str  # the audit log's action for its resolution
    outcomes: frozenset[str]  # what a person may resolve needs_review to
    final: tuple[str, ...]  # statuses announced by an event
    event_type: dict[str, str]


PAYMENTS = _Kind(
    "payment", "payment.resolve", frozenset({"successful", "failed"}), TERMINAL, EVENT_TYPE
)
REFUNDS = _Kind(
    "refund", "refund.resolve", frozenset({"succeeded", "failed"}), REFUND_FINAL, REFUND_EVENT_TYPE
)


@dataclass
class _Resolutions:
    """What operators resolved, of one kind: per subject, each resolution (an operator's
    transition) with the audit log entry recording it (None when none does); what is wrong
    with them; and the subjects a person settled last, which are exempt from agreeing with the
    provider's state."""

    pairs: dict[str, list[tuple[_Move, OperatorAction | None]]]
    problems: list[Violation]
    by_hand: set[str]


def _payment_trail(gateway: GatewaySnapshot) -> dict[str, list[_Move]]:
    trail: dict[str, list[_Move]] = defaultdict(list)
    for t in sorted(gateway.transitions, key=lambda t: t.id):
        trail[t.payment_id].append(
            _Move(t.id, t.payment_id, t.from_status, t.to_status, t.actor, t.operator_id)
        )
    return trail


def _refund_trail(gateway: GatewaySnapshot) -> dict[str, list[_Move]]:
    trail: dict[str, list[_Move]] = defaultdict(list)
    for t in sorted(gateway.refund_transitions, key=lambda t: t.id):
        trail[t.refund_id].append(
            _Move(t.id, t.refund_id, t.from_status, t.to_status, t.actor, t.operator_id)
        )
    return trail


def _has_note(action: OperatorAction) -> bool:
    return bool((action.note or "").strip())


def _resolutions(
    kind: _Kind,
    subjects: Collection[str],
    trail: dict[str, list[_Move]],
    actions: Sequence[OperatorAction],
) -> _Resolutions:
    """Pair each operator's transition of ``kind`` with the audit log entry recording it (same
    operator, same outcome, in the order both were written), and say what is wrong: a
    resolution that does not leave needs_review, ends elsewhere than an outcome a person may
    choose, names no operator, has no audit entry or one without a note; an audit entry that
    records no resolution; and a machine leaving needs_review (only a person does)."""
    problems: list[Violation] = []
    audits: dict[str, list[OperatorAction]] = defaultdict(list)
    for action in sorted(actions, key=lambda a: a.id):
        if action.action != kind.action:
            continue
        if action.target_type != kind.name or action.target_id not in subjects:
            problems.append(
                Violation(
                    "audit",
                    action.target_id or f"operator_actions {action.id}",
                    f"{kind.action} audit row {action.id} names {action.target_type} "
                    f"{action.target_id}, which is no {kind.name} of the gateway",
                )
            )
            continue
        audits[action.target_id].append(action)

    pairs: dict[str, list[tuple[_Move, OperatorAction | None]]] = defaultdict(list)
    by_hand: set[str] = set()
    for subject in sorted(subjects):
        moves = trail.get(subject, [])
        unused = list(audits.get(subject, []))
        for move in moves:
            if not move.by_operator:
                if move.from_status == NEEDS_REVIEW:
                    problems.append(
                        Violation(
                            "audit",
                            subject,
                            f"transition {move} by {move.actor}: only an operator resolves "
                            "needs_review",
                        )
                    )
                continue
            where = f"resolution {move} (transition {move.id})"
            if move.from_status != NEEDS_REVIEW:
                problems.append(
                    Violation("audit", subject, f"{where} does not come from needs_review")
                )
            if move.to_status not in kind.outcomes:
                problems.append(
                    Violation(
                        "audit",
                        subject,
                        f"{where} ends in {move.to_status}, not "
                        f"{' or '.join(sorted(kind.outcomes))}",
                    )
                )
            if move.operator_id is None:
                problems.append(Violation("audit", subject, f"{where} names no operator"))
            audit = next(
                (
                    a
                    for a in unused
                    if a.operator_id == move.operator_id and a.to_status == move.to_status
                ),
                None,
            )
            if audit is None:
                problems.append(
                    Violation(
                        "audit",
                        subject,
                        f"{where} has no {kind.action} audit row (by {move.operator_id}, to "
                        f"{move.to_status})",
                    )
                )
            else:
                unused.remove(audit)
                if not _has_note(audit):
                    problems.append(
                        Violation(
                            "audit", subject, f"{where}: its audit row {audit.id} has no note"
                        )
                    )
            pairs[subject].append((move, audit))
        for audit in unused:
            problems.append(
                Violation(
                    "audit",
                    subject,
                    f"{kind.action} audit row {audit.id} (by {audit.operator_id}, to "
                    f"{audit.to_status}) records no resolution of the {kind.name}",
                )
            )
        if moves and moves[-1].by_operator:
            move, audit = pairs[subject][-1]
            if (
                move.from_status == NEEDS_REVIEW
                and move.to_status in kind.outcomes
                and audit is not None
                and _has_note(audit)
            ):
                by_hand.add(subject)
    return _Resolutions(pairs, problems, by_hand)


def _event_mismatches(
    kind: _Kind,
    status: str,
    moves: Sequence[_Move],
    events: Sequence[GatewayEvent],
    pairs: Sequence[tuple[_Move, OperatorAction | None]],
) -> list[str]:
    """What is wrong with one payment's (refund's) events: one for each status a machine moved
    it to (and for its current final status, unless a person set it), however many writers
    tried; and exactly one for each resolution, of its outcome, tied to its audit entry."""
    found: list[str] = []
    machine_events = [e for e in events if e.operator_action_id is None]
    reached = {m.to_status for m in moves if m.from_status is not None and not m.by_operator}
    if status in kind.final and not (moves and moves[-1].by_operator):
        reached.add(status)
    expected = Counter(kind.event_type[s] for s in reached if s in kind.event_type)
    actual = Counter(event.type for event in machine_events)
    if actual != expected:
        besides = " besides its resolutions'" if pairs or len(machine_events) < len(events) else ""
        found.append(
            f"{status} {kind.name} has events {dict(actual) or 'none'}{besides}, "
            f"expected {dict(expected) or 'none'}"
        )

    tied: dict[int, list[GatewayEvent]] = defaultdict(list)
    for event in events:
        if event.operator_action_id is not None:
            tied[event.operator_action_id].append(event)
    recorded: set[int] = set()
    for move, audit in pairs:
        if audit is None:
            continue  # the audit check says so; no event can be tied to what is not there
        recorded.add(audit.id)
        outcome = kind.event_type.get(move.to_status)
        want = Counter([outcome] if outcome is not None else [])
        got = Counter(event.type for event in tied.get(audit.id, []))
        if got != want:
            found.append(
                f"resolution {move} (audit row {audit.id}) has events {dict(got) or 'none'}, "
                f"expected {dict(want) or 'none'}"
            )
    for action_id, stray in sorted(tied.items()):
        if action_id not in recorded:
            found += [
                f"{event.type} {event.id} is tied to audit row {action_id}, which records no "
                f"resolution of this {kind.name}"
                for event in stray
            ]
    return found


# --- the check -----------------------------------------------------------------------------------


def check_invariants(
    gateway: GatewaySnapshot,
    simulator: SimulatorSnapshot,
    deliveries: Sequence[Delivery],
    *,
    allow_pending_unaccepted: bool = False,
    refused_at_initiation: Collection[str] = (),
    require_delivery: bool = True,
    require_delivered_status: bool = False,
    require_refunds_final: bool = False,
) -> list[Violation]:
    """Every violation of the invariants, payments' and refunds', in a stable order.

    ``refused_at_initiation``: payment ids the provider definitively refused when asked to
    charge (a refusal scenario), which end ``failed`` with the refusal's own code.
    ``require_delivered_status``: also require each event to be marked delivered in the outbox.
    ``require_refunds_final``: no refund may still be pending (once the provider has answered
    everything, and an unanswered refund has had the time to go to needs_review).
    """
    payment_trail, refund_trail = _payment_trail(gateway), _refund_trail(gateway)
    resolved = _resolutions(
        PAYMENTS, {p.id for p in gateway.payments}, payment_trail, gateway.operator_actions
    )
    refunds_resolved = _resolutions(
        REFUNDS, {r.id for r in gateway.refunds}, refund_trail, gateway.operator_actions
    )
    violations: list[Violation] = []
    violations += _check_state(
        gateway, simulator, allow_pending_unaccepted, refused_at_initiation, resolved.by_hand
    )
    violations += _check_charges(gateway, simulator)
    violations += _check_events(
        gateway, deliveries, require_delivery, require_delivered_status, payment_trail, resolved
    )
    violations += _check_audit(gateway, payment_trail, resolved)
    violations += _check_refund_money(gateway, simulator)
    violations += _check_refund_state(
        gateway, simulator, require_refunds_final, refunds_resolved.by_hand
    )
    violations += _check_refund_events(
        gateway,
        deliveries,
        require_delivery,
        require_delivered_status,
        refund_trail,
        refunds_resolved,
    )
    violations += _check_refund_audit(gateway, refund_trail, refunds_resolved)
    return violations


def _check_state(
    gateway: GatewaySnapshot,
    simulator: SimulatorSnapshot,
    allow_pending_unaccepted: bool,
    refused_at_initiation: Collection[str],
    by_hand: Collection[str],
) -> list[Violation]:
    held = {(p.provider, p.reference): p for p in simulator.payments}
    found: list[Violation] = []
    for payment in gateway.payments:
        if payment.id in by_hand:
            # A person settled it from needs_review, with a note (e.g. after the provider
            # reported another amount): what the provider holds no longer decides it.
            continue
        key = (payment.provider, payment.provider_reference)
        provider_payment = held.get(key)
        if provider_payment is not None:
            allowed = ACCEPTED_STATES.get(provider_payment.status, set())
            if payment.status not in allowed:
                found.append(
                    Violation(
                        "state",
                        payment.id,
                        f"gateway says {payment.status}, the provider holds "
                        f"{provider_payment.status} (expected one of {sorted(allowed)})",
                    )
                )
            continue
        # The provider never accepted this reference (or never even heard of it).
        heard = "never accepted" if key in simulator.unaccepted else "never received"
        if payment.status == "pending":
            if not allow_pending_unaccepted:
                found.append(
                    Violation(
                        "state",
                        payment.id,
                        f"still pending, but the provider {heard} its reference "
                        "(expected failed / not_found_at_provider)",
                    )
                )
        elif payment.status != "failed":
            found.append(
                Violation(
                    "state",
                    payment.id,
                    f"gateway says {payment.status}, but the provider {heard} its reference",
                )
            )
        elif (
            payment.failure_code != "not_found_at_provider"
            and payment.id not in refused_at_initiation
        ):
            found.append(
                Violation(
                    "state",
                    payment.id,
                    f"failed with {payment.failure_code}; a reference the provider {heard} "
                    "should fail with not_found_at_provider",
                )
            )
    return found


def _check_charges(gateway: GatewaySnapshot, simulator: SimulatorSnapshot) -> list[Violation]:
    ours = {(p.provider, p.provider_reference): p for p in gateway.payments}
    found: list[Violation] = []
    for charged in simulator.payments:
        if charged.charges > 1:
            found.append(
                Violation(
                    "charges",
                    charged.reference,
                    f"charged {charged.charges} times at {charged.provider}",
                )
            )
        if (charged.provider, charged.reference) not in ours:
            found.append(
                Violation(
                    "charges",
                    charged.reference,
                    f"{charged.provider} charged a reference no gateway payment has "
                    "(a second reference for some payment, or a charge never written ahead)",
                )
            )
    references = Counter(p.provider_reference for p in gateway.payments)
    for reference, count in references.items():
        if count > 1:
            found.append(
                Violation("charges", reference, f"{count} gateway payments share this reference")
            )
    return found


def _check_events(
    gateway: GatewaySnapshot,
    deliveries: Sequence[Delivery],
    require_delivery: bool,
    require_delivered_status: bool,
    trail: dict[str, list[_Move]],
    resolved: _Resolutions,
) -> list[Violation]:
    """The payments' events (a refund's are ``_check_refund_events``'), and every delivery's
    webhook-id against the outbox."""
    found: list[Violation] = []
    events_of: dict[str, list[GatewayEvent]] = defaultdict(list)
    for event in gateway.events:
        if event.refund_id is None:
            events_of[event.payment_id].append(event)
    delivered_to: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.refund_id is None:
            delivered_to[delivery.payment_id].append(delivery)
    known_events = {event.id: event for event in gateway.events}
    payment_ids = {p.id for p in gateway.payments}

    for payment in gateway.payments:
        events = events_of.get(payment.id, [])
        # One event for each status a machine moved the payment to after pending (normally
        # exactly one; two only for pending → successful → needs_review and the like), however
        # many writers tried to make the move; and one for each resolution by a person (so
        # successful → needs_review → successful by hand has two payment.succeeded).
        found += [
            Violation("events", payment.id, message)
            for message in _event_mismatches(
                PAYMENTS,
                payment.status,
                trail.get(payment.id, []),
                events,
                resolved.pairs.get(payment.id, []),
            )
        ]
        for event in events:
            received = [d for d in delivered_to.get(payment.id, []) if d.webhook_id == event.id]
            if require_delivery and not any(d.accepted for d in received):
                found.append(
                    Violation(
                        "events", payment.id, f"{event.type} {event.id} never delivered (2xx)"
                    )
                )
            if require_delivered_status and event.delivery_status != "delivered":
                found.append(
                    Violation(
                        "events",
                        payment.id,
                        f"{event.type} {event.id} is {event.delivery_status} in the outbox",
                    )
                )
        ids_by_type: dict[str, set[str]] = defaultdict(set)
        for delivery in delivered_to.get(payment.id, []):
            if not _of_a_resolution(delivery, known_events):
                ids_by_type[delivery.event_type].add(delivery.webhook_id)
        for event_type, ids in sorted(ids_by_type.items()):
            if len(ids) > 1:
                found.append(
                    Violation(
                        "events",
                        payment.id,
                        f"{event_type} delivered under {len(ids)} different webhook-ids "
                        f"{sorted(ids)}",
                    )
                )

    for delivery in deliveries:
        event = known_events.get(delivery.webhook_id)
        subject = delivery.refund_id or delivery.payment_id
        if event is None:
            found.append(
                Violation(
                    "events",
                    subject,
                    f"storefront got webhook-id {delivery.webhook_id!r}, which no event has",
                )
            )
        elif (event.payment_id, event.refund_id, event.type) != (
            delivery.payment_id,
            delivery.refund_id,
            delivery.event_type,
        ):
            found.append(
                Violation(
                    "events",
                    subject,
                    f"webhook-id {delivery.webhook_id} carried {delivery.event_type} for "
                    f"{subject}, but that event is {event.type} for "
                    f"{event.refund_id or event.payment_id}",
                )
            )
    for payment_id in sorted(set(delivered_to) - payment_ids):
        found.append(
            Violation("events", payment_id, "storefront got events for an unknown payment")
        )
    return _unique(found)


def _of_a_resolution(delivery: Delivery, known_events: dict[str, GatewayEvent]) -> bool:
    """A delivery of a resolution's event: each resolution has an event (a webhook-id) of its
    own, so it is no second webhook-id for its payment's (refund's) event of that type."""
    event = known_events.get(delivery.webhook_id)
    return event is not None and event.operator_action_id is not None


def _check_audit(
    gateway: GatewaySnapshot, trail: dict[str, list[_Move]], resolved: _Resolutions
) -> list[Violation]:
    chains = {
        subject: [(m.from_status, m.to_status) for m in moves] for subject, moves in trail.items()
    }
    found = _audit_chains("payment", [(p.id, p.status) for p in gateway.payments], chains)
    return found + resolved.problems


def _audit_chains(
    kind: str,
    subjects: Sequence[tuple[str, str]],
    trail: dict[str, list[tuple[str | None, str]]],
) -> list[Violation]:
    """One creation row, one row leaving pending once out of it, and a chain of transitions
    that ends in the current status: for each ``(id, status)`` of ``subjects``, whose audit
    rows ``(from, to)`` are ``trail[id]`` in the order they were written."""
    found: list[Violation] = []
    for subject, status in subjects:
        rows = trail.get(subject, [])
        created = [row for row in rows if row[0] is None]
        if len(created) != 1:
            found.append(Violation("audit", subject, f"{len(created)} creation rows (expected 1)"))
        leaving = [row for row in rows if row[0] == "pending"]
        expected_leaving = 0 if status == "pending" else 1
        if len(leaving) != expected_leaving:
            moves = ", ".join(f"pending→{to}" for _, to in leaving) or "none"
            found.append(
                Violation(
                    "audit",
                    subject,
                    f"{status} {kind} has {len(leaving)} rows leaving pending ({moves}); "
                    f"expected {expected_leaving}",
                )
            )
        current = None
        for from_status, to_status in rows:
            if from_status != current:
                found.append(
                    Violation(
                        "audit",
                        subject,
                        f"transition {from_status}→{to_status} does not follow {current}",
                    )
                )
            current = to_status
        if rows and current != status:
            found.append(
                Violation(
                    "audit",
                    subject,
                    f"audit trail ends in {current}, the {kind} is {status}",
                )
            )
    return found


# --- refunds -------------------------------------------------------------------------------------

# Providers that name a refund by the refunded collection (Airtel: its airtel_money_id) and refund
# a collection at most once, rather than by a reference of the refund's own.
KEYED_BY_COLLECTION = frozenset({"airtel_money"})


def _as_decimal(amount: str) -> Decimal | None:
    try:
        return Decimal(amount)
    except (InvalidOperation, TypeError):
        return None


def _major(minor: int, currency: str) -> Decimal:
    return Decimal(format_amount(minor, currency))


def _refunds_by_payment(gateway: GatewaySnapshot) -> dict[str, list[GatewayRefund]]:
    refunds_of: dict[str, list[GatewayRefund]] = defaultdict(list)
    for refund in gateway.refunds:
        refunds_of[refund.payment_id].append(refund)
    return refunds_of


def _check_refund_money(gateway: GatewaySnapshot, simulator: SimulatorSnapshot) -> list[Violation]:
    """Never more back than was paid, each refund one reference, each paid out at most once,
    and nothing paid out that the gateway did not write ahead."""
    found: list[Violation] = []
    payments = {p.id: p for p in gateway.payments}
    refunds_of = _refunds_by_payment(gateway)

    for payment in gateway.payments:
        refunds = refunds_of.get(payment.id, [])
        succeeded = sum(r.amount_minor for r in refunds if r.status == "succeeded")
        held = sum(r.amount_minor for r in refunds if r.status in REFUND_HOLDING)
        if succeeded > payment.amount_minor:
            found.append(
                Violation(
                    "refunds",
                    payment.id,
                    f"succeeded refunds add up to {succeeded}, more than the payment's "
                    f"{payment.amount_minor} (minor units)",
                )
            )
        if held > payment.amount_minor:
            found.append(
                Violation(
                    "refunds",
                    payment.id,
                    f"pending, succeeded and needs_review refunds hold {held}, more than the "
                    f"payment's {payment.amount_minor} (minor units)",
                )
            )
        if payment.amount_refunded_minor != succeeded:
            found.append(
                Violation(
                    "refunds",
                    payment.id,
                    f"amount_refunded_minor is {payment.amount_refunded_minor}, its succeeded "
                    f"refunds add up to {succeeded}",
                )
            )
    for refund in gateway.refunds:
        if refund.payment_id not in payments:
            found.append(
                Violation("refunds", refund.id, f"refunds {refund.payment_id}, an unknown payment")
            )
        if not refund.provider_reference:
            found.append(Violation("refunds", refund.id, "has no provider reference"))
    for reference, count in Counter(r.provider_reference for r in gateway.refunds).items():
        if count > 1:
            found.append(
                Violation("refunds", reference, f"{count} gateway refunds share this reference")
            )

    ours = {(r.provider, r.provider_reference): r for r in gateway.refunds}
    by_reference = {(p.provider, p.provider_reference): p for p in gateway.payments}
    paid_back: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for taken in simulator.refunds:
        amount = _as_decimal(taken.amount)
        if taken.payouts > 1:
            found.append(
                Violation(
                    "refunds",
                    taken.reference,
                    f"paid out {taken.payouts} times at {taken.provider}",
                )
            )
        if taken.payouts and amount is not None:
            paid_back[(taken.provider, taken.payment_reference)] += amount
        payment = by_reference.get((taken.provider, taken.payment_reference))
        if taken.provider in KEYED_BY_COLLECTION:
            found += _check_collection_refund(taken, payment, refunds_of, amount)
            continue
        refund = ours.get((taken.provider, taken.reference))
        if refund is None:
            found.append(
                Violation(
                    "refunds",
                    taken.reference,
                    f"{taken.provider} took a refund under a reference no gateway refund has "
                    "(a second reference for some refund, or one never written ahead)",
                )
            )
            continue
        refunded = payments.get(refund.payment_id)
        if refunded is None or taken.payment_reference != refunded.provider_reference:
            found.append(
                Violation(
                    "refunds",
                    refund.id,
                    f"{taken.provider} refunds {taken.payment_reference!r}, not the reference of "
                    f"{refund.payment_id}",
                )
            )
        if amount != _major(refund.amount_minor, refund.currency):
            found.append(
                Violation(
                    "refunds",
                    refund.id,
                    f"{taken.provider} took {taken.amount}, the gateway refund is "
                    f"{format_amount(refund.amount_minor, refund.currency)}",
                )
            )
    for (provider, payment_reference), total in sorted(paid_back.items()):
        payment = by_reference.get((provider, payment_reference))
        if payment is not None and total > _major(payment.amount_minor, payment.currency):
            found.append(
                Violation(
                    "refunds",
                    payment.id,
                    f"{provider} paid back {total}, more than the payment's "
                    f"{format_amount(payment.amount_minor, payment.currency)}",
                )
            )
    # A refund request under a reference the gateway does not know is a refund sent under a new
    # reference, even if the provider did not take it.
    transaction_ids = {
        (p.provider, p.provider_transaction_id) for p in gateway.payments if refunds_of.get(p.id)
    }
    for provider, reference in sorted(simulator.unaccepted_refunds):
        known = (
            (provider, reference) in transaction_ids
            if provider in KEYED_BY_COLLECTION
            else (provider, reference) in ours
        )
        if not known:
            found.append(
                Violation(
                    "refunds",
                    reference,
                    f"{provider} was asked for a refund under a reference no gateway refund has",
                )
            )
    return found


def _check_collection_refund(
    taken: ProviderRefund,
    payment: GatewayPayment | None,
    refunds_of: dict[str, list[GatewayRefund]],
    amount: Decimal | None,
) -> list[Violation]:
    """A refund Airtel made: of a payment the gateway has, which has a refund, in full."""
    if payment is None:
        return [
            Violation(
                "refunds",
                taken.reference,
                f"{taken.provider} refunded {taken.payment_reference!r}, which no gateway "
                "payment has",
            )
        ]
    found = []
    if not refunds_of.get(payment.id):
        found.append(
            Violation(
                "refunds",
                payment.id,
                f"{taken.provider} refunded it ({taken.reference}), but the gateway has no "
                "refund of it",
            )
        )
    if payment.provider_transaction_id and taken.reference != payment.provider_transaction_id:
        found.append(
            Violation(
                "refunds",
                payment.id,
                f"{taken.provider} refunded transaction {taken.reference!r}, the payment's is "
                f"{payment.provider_transaction_id!r}",
            )
        )
    if amount != _major(payment.amount_minor, payment.currency):
        found.append(
            Violation(
                "refunds",
                payment.id,
                f"{taken.provider} refunded {taken.amount}, not the payment's full "
                f"{format_amount(payment.amount_minor, payment.currency)}",
            )
        )
    return found


def _check_refund_state(
    gateway: GatewaySnapshot,
    simulator: SimulatorSnapshot,
    require_final: bool,
    by_hand: Collection[str],
) -> list[Violation]:
    """As the provider holds it, but a refund a person settled from needs_review (with a note)
    is theirs to decide."""
    found: list[Violation] = []
    held = {(r.provider, r.reference): r for r in simulator.refunds}
    held_by_payment = {
        (r.provider, r.payment_reference): r
        for r in simulator.refunds
        if r.provider in KEYED_BY_COLLECTION
    }
    for refund in gateway.refunds:
        if require_final and refund.status == "pending":
            found.append(
                Violation(
                    "state",
                    refund.id,
                    "refund still pending (by now the provider has answered, or the timeout has "
                    "passed)",
                )
            )
        if refund.provider in KEYED_BY_COLLECTION or refund.id in by_hand:
            continue
        key = (refund.provider, refund.provider_reference)
        taken = held.get(key)
        if taken is not None:
            allowed = REFUND_ACCEPTED_STATES.get(taken.status, set())
            if refund.status not in allowed:
                found.append(
                    Violation(
                        "state",
                        refund.id,
                        f"gateway says {refund.status}, the provider holds {taken.status} "
                        f"(expected one of {sorted(allowed)})",
                    )
                )
        elif refund.status == "succeeded":
            heard = "never accepted" if key in simulator.unaccepted_refunds else "never received"
            found.append(
                Violation(
                    "state",
                    refund.id,
                    f"gateway says succeeded, but the provider {heard} its reference",
                )
            )
        # failed: refused at request; pending or needs_review: the call never got an answer.

    refunds_of = _refunds_by_payment(gateway)
    for payment in gateway.payments:
        refunds = refunds_of.get(payment.id, [])
        if payment.provider not in KEYED_BY_COLLECTION or not refunds:
            continue
        taken = held_by_payment.get((payment.provider, payment.provider_reference))
        if taken is None or taken.status != "SUCCESSFUL":
            for refund in refunds:
                if refund.status == "succeeded" and refund.id not in by_hand:
                    found.append(
                        Violation(
                            "state",
                            refund.id,
                            f"gateway says succeeded, but {payment.provider} made no refund of "
                            f"{payment.id}",
                        )
                    )
            continue
        # The refunds a person settled are theirs; the others agree with the one refund Airtel
        # made: exactly one of them holds it, or at most one once a person settled some.
        live = [r for r in refunds if r.status != "failed" and r.id not in by_hand]
        settled_by_hand = any(r.id in by_hand for r in refunds)
        if len(live) > 1 or (len(live) == 0 and not settled_by_hand):
            statuses = ", ".join(f"{r.id} {r.status}" for r in refunds)
            found.append(
                Violation(
                    "state",
                    payment.id,
                    f"{payment.provider} refunded it once; {len(live)} of its refunds are not "
                    f"failed ({statuses}), expected exactly 1",
                )
            )
    return found


def _check_refund_events(
    gateway: GatewaySnapshot,
    deliveries: Sequence[Delivery],
    require_delivery: bool,
    require_delivered_status: bool,
    trail: dict[str, list[_Move]],
    resolved: _Resolutions,
) -> list[Violation]:
    found: list[Violation] = []
    events_of: dict[str, list[GatewayEvent]] = defaultdict(list)
    for event in gateway.events:
        if event.refund_id is not None:
            events_of[event.refund_id].append(event)
    known_events = {event.id: event for event in gateway.events}
    delivered_to: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.refund_id is not None:
            delivered_to[delivery.refund_id].append(delivery)
    refund_ids = {r.id for r in gateway.refunds}

    for refund in gateway.refunds:
        events = events_of.get(refund.id, [])
        found += [
            Violation("events", refund.id, message)
            for message in _event_mismatches(
                REFUNDS,
                refund.status,
                trail.get(refund.id, []),
                events,
                resolved.pairs.get(refund.id, []),
            )
        ]
        for event in events:
            if event.payment_id != refund.payment_id:
                found.append(
                    Violation(
                        "events",
                        refund.id,
                        f"{event.type} {event.id} names payment {event.payment_id}, the "
                        f"refund's is {refund.payment_id}",
                    )
                )
            received = [d for d in delivered_to.get(refund.id, []) if d.webhook_id == event.id]
            if require_delivery and not any(d.accepted for d in received):
                found.append(
                    Violation("events", refund.id, f"{event.type} {event.id} never delivered (2xx)")
                )
            if require_delivered_status and event.delivery_status != "delivered":
                found.append(
                    Violation(
                        "events",
                        refund.id,
                        f"{event.type} {event.id} is {event.delivery_status} in the outbox",
                    )
                )
        ids_by_type: dict[str, set[str]] = defaultdict(set)
        for delivery in delivered_to.get(refund.id, []):
            if not _of_a_resolution(delivery, known_events):
                ids_by_type[delivery.event_type].add(delivery.webhook_id)
        for event_type, ids in sorted(ids_by_type.items()):
            if len(ids) > 1:
                found.append(
                    Violation(
                        "events",
                        refund.id,
                        f"{event_type} delivered under {len(ids)} different webhook-ids "
                        f"{sorted(ids)}",
                    )
                )
    for refund_id in sorted(set(events_of) - refund_ids):
        found.append(Violation("events", refund_id, "events for an unknown refund"))
    for refund_id in sorted(set(delivered_to) - refund_ids):
        found.append(Violation("events", refund_id, "storefront got events for an unknown refund"))
    return _unique(found)


def _check_refund_audit(
    gateway: GatewaySnapshot, trail: dict[str, list[_Move]], resolved: _Resolutions
) -> list[Violation]:
    chains = {
        subject: [(m.from_status, m.to_status) for m in moves] for subject, moves in trail.items()
    }
    found = _audit_chains("refund", [(r.id, r.status) for r in gateway.refunds], chains)
    return found + resolved.problems


def _unique(violations: list[Violation]) -> list[Violation]:
    return list(dict.fromkeys(violations))


# --- waiting for convergence ---------------------------------------------------------------------


@dataclass
class Evidence:
    gateway: GatewaySnapshot
    simulator: SimulatorSnapshot
    deliveries: list[Delivery]

    def summary(self) -> str:
        statuses = Counter(p.status for p in self.gateway.payments)
        held = Counter(p.status for p in self.simulator.payments)
        summary = (
            f"gateway {dict(sorted(statuses.items()))}; provider {dict(sorted(held.items()))}, "
            f"{len(self.simulator.unaccepted)} unaccepted; {len(self.gateway.events)} events; "
            f"{sum(d.accepted for d in self.deliveries)}/{len(self.deliveries)} deliveries accepted"
        )
        resolutions = sum(t.actor == OPERATOR for t in self.gateway.transitions) + sum(
            t.actor == OPERATOR for t in self.gateway.refund_transitions
        )
        if resolutions:
            summary += f"; {resolutions} resolutions by operators"
        if self.gateway.refunds or self.simulator.refunds:
            refunds = Counter(r.status for r in self.gateway.refunds)
            taken = Counter(r.status for r in self.simulator.refunds)
            summary += (
                f"; refunds: gateway {dict(sorted(refunds.items()))}, provider "
                f"{dict(sorted(taken.items()))}, {len(self.simulator.unaccepted_refunds)} "
                "unaccepted"
            )
        return summary


def format_violations(violations: Sequence[Violation], *, limit: int = 60) -> str:
    by_invariant = Counter(v.invariant for v in violations)
    lines = [f"{len(violations)} invariant violations: {dict(sorted(by_invariant.items()))}"]
    lines += [f"  {v}" for v in violations[:limit]]
    if len(violations) > limit:
        lines.append(f"  ... and {len(violations) - limit} more")
    return "\n".join(lines)


async def wait_for_invariants(
    collect: Callable[[], Awaitable[Evidence]],
    *,
    timeout: float,
    poll: float = 0.5,
    **options: Any,
) -> Evidence:
    """Poll until ``check_invariants`` finds nothing; fail listing every violation left at
    ``timeout``. Returns the evidence that passed, for extra assertions."""
    deadline = time.monotonic() + timeout
    while True:
        evidence = await collect()
        violations = check_invariants(
            evidence.gateway, evidence.simulator, evidence.deliveries, **options
        )
        if not violations:
            return evidence
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout:.0f} s: {evidence.summary()}\n" + format_violations(violations)
            )
        await asyncio.sleep(poll)
