"""Where a server's CPU goes: py-spy samples, summed by library and by gateway step.

``bench.initiation`` records the gateway with ``py-spy record --gil --nonblocking --format raw``
(only samples that hold the GIL, so idle threads do not count) while
its best-throughput level runs again (the measured run is never profiled). This module reads the
collapsed stacks py-spy writes (``frame;frame;... count``) and answers three questions:

- self time by area: which library the sampled leaf frame belongs to;
- time by step: the innermost gateway step (auth, idempotency, insert, provider call, ...) on the
  stack, so "what the request does" adds up to 100 %;
- cross-cutting: the share of samples with a library anywhere on the stack (overlapping).

    .venv/bin/python -m bench.profile bench/results/<run>/profile-gateway-0ms-c64.txt
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# (label, substring of a frame) — first match wins, checked against the leaf frame's file.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("asyncpg (driver, incl. its C protocol)", ("asyncpg/",)),
    ("SQLAlchemy (ORM, Core, asyncio adaption)", ("sqlalchemy/",)),
    ("greenlet (SQLAlchemy's async bridge)", ("greenlet",)),
    ("logging + app redaction", ("logging/", "app/log_config.py")),
    ("httpx / httpcore / anyio / h11", ("httpx/", "httpcore/", "anyio/", "h11/")),
    ("tenacity", ("tenacity/",)),
    ("redis-py", ("redis/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("FastAPI / Starlette", ("fastapi/", "starlette/")),
    ("uvicorn / httptools", ("uvicorn/", "httptools/")),
    ("json", ("json/",)),
    ("phonenumbers", ("phonenumbers/",)),
    ("threads (pool waits)", ("threading.py", "concurrent/")),
    ("asyncio", ("asyncio/",)),
    ("app code (own frames)", ("app/",)),
)

# The gateway's steps for one initiation, innermost first: the deepest match on a stack wins.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (any step)", ("logging/__init__.py", "app/log_config.py")),
    ("provider call: token (Redis cache)", ("CachedTokenAuth.async_auth_flow", "RedisTokenCache.")),
    ("provider call: request-to-pay (httpx + tenacity)", ("MtnMomoCollection.request_payment",)),
    (
        "record initiation finished [+ stored response] (UPDATE, commit)",
        ("PaymentService._record_initiation", "PaymentService._finish_initiation"),
    ),
    ("reload payment for the response (SELECT)", ("PaymentService._reload",)),
    (
        "write-ahead transaction (payment + audit row [+ idempotency claim], commit)",
        ("PaymentService.create_payment",),
    ),
    ("idempotency: claim (INSERT, commit)", ("IdempotencyStore.claim",)),
    ("idempotency: store response (UPDATE, commit)", ("IdempotencyStore.complete",)),
    ("auth: API key lookup (SELECT)", ("get_current_merchant",)),
    ("validation (phone, amount, provider)", ("validate_new_payment",)),
    ("response rendering", ("PaymentOut.of", "JSONResponse.", "model_dump")),
    ("Idempotency-Key wrapper (fingerprint, claim hooks, replay)", ("app/idempotency_http.py",)),
    (
        "sync dependencies in the threadpool (anyio.to_thread)",
        ("run_sync_in_worker_thread", "anyio/to_thread", "run_in_threadpool"),
    ),
    (
        "FastAPI request parsing and dependency solving",
        ("solve_dependencies", "request_body_to_args", "Request.body", "get_request_handler"),
    ),
    ("response send (uvicorn, through the middlewares)", ("RequestResponseCycle.send",)),
    ("payments route (body model, dependencies, call)", ("app/payments/router.py",)),
    (
        "RequestId / BodySizeLimit middlewares",
        ("app/request_id.py", "app/body_limit.py"),
    ),
)

# When no step is on the stack: SQLAlchemy runs database calls in a greenlet whose frames do
# not link back to the request's coroutine, so py-spy shows them under the event loop.
UNATTRIBUTED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("database call inside SQLAlchemy's greenlet (step not visible)", ("sqlalchemy/", "asyncpg/")),
    ("sync dependencies in the threadpool (anyio.to_thread)", ("anyio/to_thread", "WorkerThread")),
    ("httpx / httpcore outside a step", ("httpx/", "httpcore/")),
    ("FastAPI request parsing and dependency solving", ("fastapi/",)),
    ("uvicorn / Starlette (HTTP, routing, middleware)", ("uvicorn/", "starlette/")),
)

# What SQLAlchemy/asyncpg samples were doing, whichever step they belong to.
DATABASE_OPERATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pool pre-ping on checkout (BEGIN; ;; ROLLBACK)", ("_async_ping",)),
    (
        "COMMIT (session commit, incl. its flush)",
        ("SessionTransaction.commit", "Transaction.__commit"),
    ),
    ("ORM flush: unit of work INSERTs", ("Session.flush", "Session._flush")),
    ("ORM UPDATE statements", ("_BulkORMUpdate", "_BulkUDCompileState")),
    ("Session.get / Session.scalar (SELECT)", ("Session.get", "Session.scalar")),
    ("BEGIN", ("Transaction.start",)),
    ("ROLLBACK / session close", ("Transaction.__rollback", "Session.close")),
    (
        "statement execution (asyncpg prepared bind/execute)",
        ("_prepare_and_execute", "PreparedStatement."),
    ),
    ("other SQLAlchemy / asyncpg (SQL building, session bookkeeping)", ("sqlalchemy/", "asyncpg/")),
)

CROSS_CUTTING: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLAlchemy on the stack", ("sqlalchemy/",)),
    ("asyncpg on the stack", ("asyncpg/",)),
    ("logging on the stack", ("logging/__init__.py", "app/log_config.py")),
    ("httpx/httpcore on the stack", ("httpx/", "httpcore/")),
    ("redis-py on the stack", ("redis/",)),
    ("pydantic on the stack", ("pydantic/",)),
)


@dataclass
class Summary:
    samples: int
    self_by_area: list[tuple[str, float]]
    inclusive_by_step: list[tuple[str, float]]
    cross_cutting: list[tuple[str, float]]
    database_operations: list[tuple[str, float]]
    top_self_frames: list[tuple[str, float]]


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def _first_match(frame: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> str | None:
    for label, needles in table:
        if any(needle in frame for needle in needles):
            return label
    return None


def _step(frames: list[str]) -> str:
    # Logging is reported as a step of its own wherever it happens.
    for frame in frames:
        if _first_match(frame, STEPS[:1]):
            return STEPS[0][0]
    for frame in reversed(frames):
        label = _first_match(frame, STEPS[1:])
        if label is not None:
            return label
    for label, needles in UNATTRIBUTED:
        if any(needle in frame for frame in frames for needle in needles):
            return label
    return "event loop (uvloop, C protocol callbacks)"


def summarise(path: Path, top: int = 15) -> Summary:
    areas: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    cross: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    database: Counter[str] = Counter()
    total = 0
    for raw in path.read_text().splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        leaves[leaf] += count
        areas[_first_match(leaf, AREAS) or "other"] += count
        steps[_step(frames)] += count
        for label, needles in DATABASE_OPERATIONS:
            if any(needle in frame for frame in frames for needle in needles):
                database[label] += count
                break
        for label, needles in CROSS_CUTTING:
            if any(needle in frame for frame in frames for needle in needles):
                cross[label] += count

    def share(counter: Counter[str], n: int | None = None) -> list[tuple[str, float]]:
        return [(k, round(v / total * 100, 1)) for k, v in counter.most_common(n)] if total else []

    return Summary(
        samples=total,
        self_by_area=share(areas),
        inclusive_by_step=share(steps),
        cross_cutting=share(cross),
        database_operations=share(database),
        top_self_frames=share(leaves, top),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("raw", type=Path, help="py-spy --format raw output")
    args = parser.parse_args()
    summary = summarise(args.raw)
    print(f"{summary.samples} samples")
    for title, rows in (
        ("self time by area", summary.self_by_area),
        ("time by gateway step", summary.inclusive_by_step),
        ("on the stack (overlapping)", summary.cross_cutting),
        ("database work by operation", summary.database_operations),
        ("top leaf frames", summary.top_self_frames),
    ):
        print(f"\n{title}")
        for label, pct in rows:
            print(f"  {pct:5.1f} %  {label}")


if __name__ == "__main__":
    main()
