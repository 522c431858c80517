"""Request counts per provider endpoint: what a benchmark or an invariant check wants to know."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from enum import StrEnum
from typing import Any

from app.simulator.config import Endpoint


class FaultKind(StrEnum):
    ERROR = "error"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    TIMEOUT_AFTER_PROCESSING = "timeout_after_processing"


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[Endpoint] = Counter()
        self._statuses: defaultdict[Endpoint, Counter[int]] = defaultdict(Counter)
        self._faults: defaultdict[Endpoint, Counter[FaultKind]] = defaultdict(Counter)
        self._callbacks: Counter[str] = Counter()

    def count_request(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._requests[endpoint] += 1

    def count_response(self, endpoint: Endpoint, status_code: int) -> None:
        with self._lock:
            self._statuses[endpoint][status_code] += 1

    def count_fault(self, endpoint: Endpoint, kind: FaultKind) -> None:
        with self._lock:
            self._faults[endpoint][kind] += 1

    def count_callback(self, outcome: str) -> None:
        with self._lock:
            self._callbacks[outcome] += 1

    def requests_to(self, endpoint: Endpoint) -> int:
        with self._lock:
            return self._requests[endpoint]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            endpoints = {
                endpoint.value: {
                    "requests": self._requests[endpoint],
                    "responses": {
                        str(code): n for code, n in sorted(self._statuses[endpoint].items())
                    },
                    "faults": {kind.value: n for kind, n in self._faults[endpoint].items()},
                }
                for endpoint in Endpoint
                if self._requests[endpoint]
            }
            callbacks = dict(self._callbacks)
        return {"endpoints": endpoints, "callbacks": callbacks}

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._statuses.clear()
            self._faults.clear()
            self._callbacks.clear()
