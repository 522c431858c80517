"""Provider status calls, grouped into polls: one check of one payment by one process.

The simulator logs every payment status request with the process that made it (each gateway
process names itself in its provider base URL, ``/_as/{caller}``), when it arrived, and how it
was answered (``app.simulator.status_calls``). A *poll* is one check of one payment by one
process: its first request plus the retries the provider client makes after a transient
answer. ``tests.reliability.claims`` counts the workers' polls of each payment per round.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

# Answers after which the provider client asks again (``app.providers.http``): 408, 429, 5xx,
# and no answer at all (the simulator releases a hung request with a 504).
RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class StatusCall:
    provider: str
    reference: str
    caller: str | None
    at: float  # arrival, epoch seconds
    answered_at: float | None  # None: still in flight
    status_code: int | None

    @property
    def retried(self) -> bool:
        """Whether the client retries after this answer (known once it is answered)."""
        code = self.status_code
        return code is not None and (code in RETRIED_STATUSES or code >= 500)


@dataclass(frozen=True)
class Poll:
    """One check of one payment by one process: the first request and its retries."""

    provider: str
    reference: str
    caller: str
    calls: tuple[StatusCall, ...]

    @property
    def started(self) -> float:
        return self.calls[0].at

    @property
    def ended(self) -> float | None:
        """When its last request was answered (None: still in flight)."""
        return self.calls[-1].answered_at

    def __str__(self) -> str:
        answers = ",".join(str(c.status_code or "in flight") for c in self.calls)
        return f"{self.caller} at {self.started:.3f} ({answers})"


def calls_from(payload: dict[str, Any]) -> list[StatusCall]:
    """``GET /_simulator/status-calls`` as status calls, in order of arrival."""
    calls = [StatusCall(**call) for call in payload["calls"]]
    return sorted(calls, key=lambda call: call.at)


async def read_status_calls(simulator: httpx.AsyncClient) -> list[StatusCall]:
    response = await simulator.get("/_simulator/status-calls")
    response.raise_for_status()
    return calls_from(response.json())


def polls_from(calls: Iterable[StatusCall], *, attempts: int) -> list[Poll]:
    """Group each process's calls for each payment into polls.

    A call continues the poll before it only if it can be a retry of it: the previous call was
    answered with something the client retries, that answer came before this call arrived, and
    the poll has not used up the client's ``attempts``. Anything else starts a new poll — in
    particular two calls of one process in flight together are two polls.
    """
    by_subject: dict[tuple[str, str], list[StatusCall]] = defaultdict(list)
    for call in sorted(calls, key=lambda call: call.at):
        by_subject[(call.reference, call.caller or "")].append(call)
    polls: list[Poll] = []
    for (reference, caller), subject_calls in by_subject.items():
        current: list[StatusCall] = []
        for call in subject_calls:
            previous = current[-1] if current else None
            if (
                previous is not None
                and previous.retried
                and previous.answered_at is not None
                and previous.answered_at <= call.at
                and len(current) < attempts
            ):
                current.append(call)
                continue
            if current:
                polls.append(Poll(current[0].provider, reference, caller, tuple(current)))
            current = [call]
        polls.append(Poll(current[0].provider, reference, caller, tuple(current)))
    return sorted(polls, key=lambda poll: poll.started)
