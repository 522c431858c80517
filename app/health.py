"""The operations routes: Prometheus metrics, liveness and readiness.

``/healthz`` answers as long as the process serves requests; ``/readyz`` also asks the database
and Redis (when there is one) and names whichever does not answer. Each ``/metrics`` scrape asks
them too, so that Prometheus sees a not-ready API even when nothing polls ``/readyz``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.backlog import refresh_backlog_gauges
from app.deps import RuntimeDep
from app.metrics import DEPENDENCY_UP
from app.runtime import Runtime

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"example": "momo_pending_payments 3.0"}}}},
)
async def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    # Scrapes go on while the database is away: the process's own series are still worth
    # having, momo_dependency_up says what is missing, and the backlog gauges keep their last
    # values.
    # The backlog read is the database check: one round trip per scrape, not two.
    database = "ok" if await _backlog_refreshed(runtime) else "unreachable"
    if database != "ok":
        logger.warning("metrics: database unreachable, backlog gauges not refreshed")
    _record({"database": database, **await _redis_check(runtime)})
    return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)


async def _backlog_refreshed(runtime: Runtime) -> bool:
    try:
        await refresh_backlog_gauges(runtime.sessions)
    except Exception:
        return False
    return True


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database and Redis answer")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = await readiness_checks(runtime)
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        return JSONResponse(
            {
                "type": "https://momo-gateway.dev/problems/not_ready",
                "title": "Service Unavailable",
                "status": 503,
                "detail": f"unreachable: {', '.join(failed)}",
                "code": "not_ready",
                "checks": checks,
            },
            status_code=503,
            media_type="application/problem+json",
        )
    return JSONResponse({"status": "ready", "checks": checks})


async def readiness_checks(runtime: Runtime) -> dict[str, str]:
    """``ok`` or ``unreachable`` for the database and (when there is one) Redis; also what
    ``momo_dependency_up`` reports until the next check."""
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "unreachable"
    checks = {"database": database, **await _redis_check(runtime)}
    _record(checks)
    return checks


async def _redis_check(runtime: Runtime) -> dict[str, str]:
    if runtime.redis is None:
        return {}
    try:
        await runtime.redis.ping()
    except Exception:
        return {"redis": "unreachable"}
    return {"redis": "ok"}


def _record(checks: dict[str, str]) -> None:
    for dependency, state in checks.items():
        DEPENDENCY_UP.labels(dependency).set(1 if state == "ok" else 0)
