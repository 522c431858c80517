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
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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


# --- snapshots -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayPayment:
    id: str
    provider: str
    status: str
    provider_reference: str
    failure_code: str | None = None
    order_id: str = ""


@dataclass(frozen=True)
class GatewayEvent:
    id: str
    payment_id: str
    type: str
    delivery_status: str = "pending"


@dataclass(frozen=True)
class Transition:
    id: int
    payment_id: str
    from_status: str | None
    to_status: str


@dataclass
class GatewaySnapshot:
    payments: list[GatewayPayment] = field(default_factory=list)
    events: list[GatewayEvent] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)


@dataclass(frozen=True)
class ProviderPayment:
    """One entry of the simulator's ledger."""

    provider: str
    reference: str
    status: str  # PENDING | SUCCESSFUL | FAILED
    charges: int = 1
    create_requests: int = 1


@dataclass
class SimulatorSnapshot:
    payments: list[ProviderPayment] = field(default_factory=list)
    # (provider, reference) the create endpoint was asked about but never accepted.
    unaccepted: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Delivery:
    """One POST the storefront received."""

    webhook_id: str
    payment_id: str
    event_type: str
    accepted: bool = True  # answered 2xx


@dataclass(frozen=True)
class Violation:
    invariant: str  # state | charges | events | audit
    subject: str  # a payment id or provider reference
    message: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.message}"


# --- readers -------------------------------------------------------------------------------------


async def read_gateway(engine: AsyncEngine) -> GatewaySnapshot:
    """One consistent read of the gateway's tables (a single REPEATABLE READ transaction on
    PostgreSQL, so payments, events and transitions are seen at the same instant)."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        payments = (
            await connection.execute(
                text(
                    "SELECT id, provider, status, provider_reference, failure_code, order_id "
                    "FROM payments"
                )
            )
        ).all()
        events = (
            await connection.execute(
                text("SELECT id, payment_id, type, delivery_status FROM events")
            )
        ).all()
        transitions = (
            await connection.execute(
                text(
                    "SELECT id, payment_id, from_status, to_status FROM payment_transitions "
                    "ORDER BY id"
                )
            )
        ).all()
        await connection.rollback()
    return GatewaySnapshot(
        payments=[GatewayPayment(*row) for row in payments],
        events=[GatewayEvent(*row) for row in events],
        transitions=[Transition(*row) for row in transitions],
    )


def simulator_snapshot_from(ledger: dict[str, Any]) -> SimulatorSnapshot:
    """``GET /_simulator/payments`` as a snapshot."""
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
    )


async def read_simulator(simulator: httpx.AsyncClient) -> SimulatorSnapshot:
    response = await simulator.get("/_simulator/payments")
    response.raise_for_status()
    return simulator_snapshot_from(response.json())


def deliveries_from(received: Iterable[Any], accepted: Iterable[Any]) -> list[Delivery]:
    """The receiver's log (``tests.receiver.Receiver``: ``received`` holds every request,
    ``accepted`` those it answered 2xx) as deliveries."""
    accepted_ids = {id(d) for d in accepted}
    deliveries = []
    for request in received:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(request.body)
            payment_id, event_type = body["data"]["id"], body["type"]
        except (ValueError, KeyError, TypeError):
            payment_id, event_type = "?", "?"
        deliveries.append(
            Delivery(
                webhook_id=headers.get("webhook-id", ""),
                payment_id=payment_id,
                event_type=event_type,
                accepted=id(request) in accepted_ids,
            )
        )
    return deliveries


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
) -> list[Violation]:
    """Every violation of the four invariants, in a stable order.

    ``refused_at_initiation``: payment ids the provider definitively refused when asked to
    charge (a refusal scenario), which end ``failed`` with the refusal's own code.
    ``require_delivered_status``: also require each event to be marked delivered in the outbox.
    """
    violations: list[Violation] = []
    violations += _check_state(gateway, simulator, allow_pending_unaccepted, refused_at_initiation)
    violations += _check_charges(gateway, simulator)
    violations += _check_events(gateway, deliveries, require_delivery, require_delivered_status)
    violations += _check_audit(gateway)
    return violations


def _check_state(
    gateway: GatewaySnapshot,
    simulator: SimulatorSnapshot,
    allow_pending_unaccepted: bool,
    refused_at_initiation: Collection[str],
) -> list[Violation]:
    held = {(p.provider, p.reference): p for p in simulator.payments}
    found: list[Violation] = []
    for payment in gateway.payments:
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
) -> list[Violation]:
    found: list[Violation] = []
    events_of: dict[str, list[GatewayEvent]] = defaultdict(list)
    for event in gateway.events:
        events_of[event.payment_id].append(event)
    moves: dict[str, list[Transition]] = defaultdict(list)
    for transition in gateway.transitions:
        if transition.from_status is not None:
            moves[transition.payment_id].append(transition)
    delivered_to: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        delivered_to[delivery.payment_id].append(delivery)
    known_events = {event.id: event for event in gateway.events}
    payment_ids = {p.id for p in gateway.payments}

    for payment in gateway.payments:
        events = events_of.get(payment.id, [])
        # One event for each status the payment has been in after pending (normally exactly
        # one; two only for pending → successful → needs_review and the like), however many
        # writers tried to make the move.
        reached = {t.to_status for t in moves.get(payment.id, [])}
        if payment.status in TERMINAL:
            reached.add(payment.status)
        expected = Counter(EVENT_TYPE[status] for status in reached if status in EVENT_TYPE)
        actual = Counter(event.type for event in events)
        if actual != expected:
            found.append(
                Violation(
                    "events",
                    payment.id,
                    f"{payment.status} payment has events {dict(actual) or 'none'}, "
                    f"expected {dict(expected) or 'none'}",
                )
            )
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
        if event is None:
            found.append(
                Violation(
                    "events",
                    delivery.payment_id,
                    f"storefront got webhook-id {delivery.webhook_id!r}, which no event has",
                )
            )
        elif event.payment_id != delivery.payment_id or event.type != delivery.event_type:
            found.append(
                Violation(
                    "events",
                    delivery.payment_id,
                    f"webhook-id {delivery.webhook_id} carried {delivery.event_type} for "
                    f"{delivery.payment_id}, but that event is {event.type} for {event.payment_id}",
                )
            )
    for payment_id in sorted(set(delivered_to) - payment_ids):
        found.append(
            Violation("events", payment_id, "storefront got events for an unknown payment")
        )
    return _unique(found)


def _check_audit(gateway: GatewaySnapshot) -> list[Violation]:
    found: list[Violation] = []
    trail: dict[str, list[Transition]] = defaultdict(list)
    for transition in sorted(gateway.transitions, key=lambda t: t.id):
        trail[transition.payment_id].append(transition)
    for payment in gateway.payments:
        rows = trail.get(payment.id, [])
        created = [t for t in rows if t.from_status is None]
        if len(created) != 1:
            found.append(
                Violation("audit", payment.id, f"{len(created)} creation rows (expected 1)")
            )
        leaving = [t for t in rows if t.from_status == "pending"]
        expected_leaving = 0 if payment.status == "pending" else 1
        if len(leaving) != expected_leaving:
            moves = ", ".join(f"pending→{t.to_status}" for t in leaving) or "none"
            found.append(
                Violation(
                    "audit",
                    payment.id,
                    f"{payment.status} payment has {len(leaving)} rows leaving pending ({moves}); "
                    f"expected {expected_leaving}",
                )
            )
        current = None
        for row in rows:
            if row.from_status != current:
                found.append(
                    Violation(
                        "audit",
                        payment.id,
                        f"transition {row.from_status}→{row.to_status} does not follow {current}",
                    )
                )
            current = row.to_status
        if rows and current != payment.status:
            found.append(
                Violation(
                    "audit",
                    payment.id,
                    f"audit trail ends in {current}, the payment is {payment.status}",
                )
            )
    return found


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
        return (
            f"gateway {dict(sorted(statuses.items()))}; provider {dict(sorted(held.items()))}, "
            f"{len(self.simulator.unaccepted)} unaccepted; {len(self.gateway.events)} events; "
            f"{sum(d.accepted for d in self.deliveries)}/{len(self.deliveries)} deliveries accepted"
        )


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
