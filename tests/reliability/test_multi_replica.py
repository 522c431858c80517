"""Scaling out: two API replicas and two arq workers on one PostgreSQL and one Redis.

Every process is a real OS process: ``momo-gateway serve`` twice, each on its own port, behind
a round-robin balancer that is the gateway's one public URL — so the providers' callbacks land
on both replicas, whichever created the payment — and ``momo-gateway worker`` twice. Payments
are created on both replicas in turn while both providers answer 5xx 30 % of the time and time
out 10 % of the time (half of those after taking the charge); one worker is SIGKILLed with
status checks in flight and a fresh one takes its place.

Then the invariants hold (``tests.reliability.invariants``: no payment lost or left other than
the provider says, none charged twice, one event per final status, delivered — at least once:
repeats carry the same webhook-id), and no pending payment is polled twice in one round: the
simulator logs every status request with the process that made it, the database logs every
claim, and each round of each payment (claim to next claim) holds at most one poll by a worker
(``tests.reliability.claims``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Sequence

import httpx

from app.payments.reconciler import next_check_delay
from app.providers.http import RetryPolicy
from app.simulator.config import SimulatorConfig
from tests.receiver import storefront_receiver
from tests.reliability.claims import check_log, early_claims, read_check_log, rounds_of
from tests.reliability.harness import (
    invariants_hold,
    mixed_orders,
    poll_until,
    unexpected_outcomes,
)
from tests.reliability.polls import StatusCall, polls_from, read_status_calls
from tests.reliability.replicas import Deployment, create_spread, deployment

PAYMENTS = 300
# A round (the reconcile interval is the first backoff) must outlast the checks begun in it, or
# the next claim comes while a check is still retrying and the provider is asked twice at once.
# A claimed payment may wait behind dozens of others checked ten at a time, and one check may
# take three attempts that each hang HANG_SECONDS, with the client's backoff between them
# (~0.6 s, then ~1.2 s, plus jitter): checks were seen to end up to ~9 s after their claim.
RECONCILE_INTERVAL = 20
HANG_SECONDS = 0.5
FAULTS = {
    "error_rate": 0.30,
    "timeout_rate": 0.05,
    "timeout_after_processing_rate": 0.05,
    "hang_seconds": HANG_SECONDS,
}
NO_FAULTS = {"error_rate": 0, "timeout_rate": 0, "timeout_after_processing_rate": 0}
WORKER_SETTINGS = {
    "RECONCILE_INTERVAL_SECONDS": str(RECONCILE_INTERVAL),
    "RECONCILE_MIN_AGE_SECONDS": "0",
    # Ten checks at once and the claims beside them, without waiting for a connection.
    "DATABASE_POOL_SIZE": "8",
}
WEBHOOKS = "/api/webhooks/"
MTN_WEBHOOK = "/api/webhooks/mtn-momo/"


def worker_calls(calls: Sequence[StatusCall], name: str) -> list[StatusCall]:
    return [call for call in calls if call.caller == name]


async def kill_mid_batch(deployed: Deployment) -> tuple[str, float]:
    """SIGKILL the first worker seen in the middle of a batch of claimed payments — it has been
    checking for a while and has status requests in flight; returns its name and when it died."""
    in_the_middle: list[str] = []

    async def checking() -> bool:
        calls = await read_status_calls(deployed.simulator)
        for name, worker in deployed.workers.items():
            assert worker.running(), worker.log_tail()
            mine = worker_calls(calls, name)
            if len(mine) >= 10 and any(call.answered_at is None for call in mine):
                in_the_middle.append(name)
                return True
        return False

    await poll_until(checking, timeout=90, what="a worker in the middle of a batch")
    name = in_the_middle[0]
    killed_at = time.time()
    deployed.workers[name].kill()
    return name, killed_at


async def test_two_replicas_two_workers_faults_and_a_kill_poll_each_payment_once_a_round(
    clean_pg, redis_url, tmp_path
):
    orders = mixed_orders("SCALE", PAYMENTS)
    config = SimulatorConfig(approval_delay_seconds=1.0, seed=20240817)
    async with (
        storefront_receiver() as receiver,
        deployment(
            clean_pg,
            redis_url,
            receiver,
            tmp_path,
            simulator=config,
            worker_overrides=WORKER_SETTINGS,
        ) as deployed,
        check_log(deployed.engine),
    ):
        deployed.spawn_worker("worker-a")
        deployed.spawn_worker("worker-b")
        await deployed.configure_simulator({"faults": FAULTS})
        creating = asyncio.create_task(create_spread(deployed, orders))
        try:
            killed, killed_at = await kill_mid_batch(deployed)
        except BaseException:
            creating.cancel()  # no request outlives the failed test's servers
            raise
        restarted = f"{killed}-restarted"
        deployed.spawn_worker(restarted)
        answers = await creating

        # Both replicas took half of the payments, and every one was created.
        created = Counter(
            replica
            for replica, answer in answers
            if isinstance(answer, httpx.Response) and answer.status_code == 201
        )
        assert created == {0: PAYMENTS // 2, 1: PAYMENTS // 2}, [
            answer if isinstance(answer, Exception) else answer.text
            for _, answer in answers
            if not isinstance(answer, httpx.Response) or answer.status_code != 201
        ]
        payments = [answer.json() for _, answer in answers if isinstance(answer, httpx.Response)]

        async def restarted_worker_works() -> bool:
            # It takes jobs from the queue everyone shares: deliveries, sweeps, or both.
            assert deployed.workers[restarted].running(), deployed.workers[restarted].log_tail()
            try:
                deliveries = await deployed.worker_metric(
                    restarted, "momo_event_delivery_attempts_total"
                )
                sweeps = await deployed.worker_metric(restarted, "momo_reconcile_runs_total")
            except httpx.HTTPError:
                return False  # not serving its metrics yet
            return deliveries + sweeps > 0

        await poll_until(restarted_worker_works, timeout=60, what="the restarted worker to work")

        # The storm is over: every payment must now end as the provider says.
        await deployed.configure_simulator({"faults": NO_FAULTS})

        async def outcomes_final() -> bool:
            return unexpected_outcomes(orders, await deployed.collect()) == []

        await poll_until(outcomes_final, timeout=150, what="every payment's final outcome")
        refused = {
            payment["id"] for order, payment in zip(orders, payments, strict=True) if order.refused
        }
        evidence = await invariants_hold(
            deployed.collect,
            deployed.processes,
            timeout=60,
            refused_at_initiation=refused,
            require_delivered_status=True,
        )
        assert unexpected_outcomes(orders, evidence) == []
        assert len(evidence.gateway.payments) == PAYMENTS

        # At least once, never as two events: repeats of an event carry its webhook-id.
        webhook_ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        for delivery in evidence.deliveries:
            webhook_ids[(delivery.payment_id, delivery.event_type)].add(delivery.webhook_id)
        assert {key: ids for key, ids in webhook_ids.items() if len(ids) > 1} == {}

        # Callbacks reached both replicas through the balancer, and each was taken (2xx), by the
        # replica that created its payment or by the other one.
        callbacks = [f for f in deployed.balancer.forwarded if f.path.startswith(WEBHOOKS)]
        assert Counter(f.backend for f in callbacks).keys() == {0, 1}
        assert [f for f in callbacks if not 200 <= f.status_code < 300] == []
        created_on = {
            payment["provider_reference"]: replica
            for (replica, _), payment in zip(answers, payments, strict=True)
        }
        crossed = [
            f
            for f in callbacks
            if f.path.startswith(MTN_WEBHOOK)
            and created_on.get(f.path[len(MTN_WEBHOOK) :].split("/")[0]) not in (None, f.backend)
        ]
        assert crossed, "no MTN callback reached the replica that had not created its payment"

        # The evidence of the polls: status calls first, then the claims behind them (a poll
        # follows its claim's commit, so no poll read here can miss its claim).
        calls = await read_status_calls(deployed.simulator)
        log = await read_check_log(deployed.engine)
        polls = polls_from(calls, attempts=RetryPolicy().attempts)
        worker_polls = [poll for poll in polls if poll.caller.startswith("worker-")]
        reference_of = {p.id: p.provider_reference for p in evidence.gateway.payments}
        rounds = rounds_of(log, worker_polls, reference_of)

        # The killed worker died in the middle of its checks: the provider answered some of
        # them after it was gone, and it asked nothing more (what it sent just before dying may
        # reach the simulator a moment later: this event loop was busy reaping it).
        killed_calls = worker_calls(calls, killed)
        assert any((call.answered_at or killed_at) > killed_at for call in killed_calls)
        assert [call for call in killed_calls if call.at > killed_at + 1] == []

        # The workers shared the payments: some were polled by two of them.
        pollers = defaultdict(set)
        for poll in worker_polls:
            pollers[poll.reference].add(poll.caller)
        assert any(len(names) > 1 for names in pollers.values())

        # Rounds are as long as the reconciler promises: a payment is claimed again no sooner
        # than its backoff after the last claim, unless a callback asked for a check meanwhile;
        # and no pending payment was polled by two workers (or twice by one) in one round.
        settings = deployed.settings.model_copy(
            update={"reconcile_interval_seconds": RECONCILE_INTERVAL}
        )
        early = [
            str(claim)
            for claim in early_claims(log, lambda count: next_check_delay(count, settings))
        ]
        doubled = rounds.problems()
        assert (early, doubled) == ([], []), "\n".join(
            [
                f"{len(early)} claims sooner than the backoff:",
                *early[:15],
                f"{len(doubled)} rounds polled more than once:",
                *doubled[:15],
            ]
        )
