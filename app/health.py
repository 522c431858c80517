"""The operations routes: Prometheus metrics, liveness and readiness.

``/healthz`` answers as long as the process serves requests; ``/readyz`` also asks the database
and Redis (when there is one) and names whichever does not answer.
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

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"example": "momo_pending_payments 3.0"}}}},
)
async def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    try:
        await refresh_backlog_gauges(runtime.sessions)
    except Exception:
        # Scrapes go on while the database is away: the process's own series are still worth
        # having, and the gauges keep their last values.
        logger.warning("metrics: database unreachable, backlog gauges not refreshed")
    return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database and Redis answer")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    if runtime.redis is not None:
        try:
            await runtime.redis.ping()
            checks["redis"] = "ok"
        except Exception:
            checks["redis"] = "unreachable"
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
