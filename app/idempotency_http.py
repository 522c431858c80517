"""Running a request under an ``Idempotency-Key``: claim, run, store, replay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from app.errors import PROBLEM_JSON, AppError, problem
from app.idempotency import ClaimState, IdempotencyStore, request_fingerprint

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
IDEMPOTENCY_KEY_DESCRIPTION = (
    "Optional, up to 255 characters. The same key with the same body returns the first "
    "response again (with `Idempotent-Replayed: true`) and makes no new provider call; with "
    "another body it is refused (422); while the first request runs, 409. Kept 24 hours."
)


def _check_key(key: str) -> str:
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise AppError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    return key


async def run_idempotently(
    store: IdempotencyStore,
    *,
    merchant_id: str,
    key: str | None,
    fingerprint_of: tuple[str, str, Any],
    run: Callable[[], Awaitable[JSONResponse]],
) -> Response:
    if key is None:
        return await _render(run)
    key = _check_key(key)
    claim = await store.claim(merchant_id, key, request_fingerprint(*fingerprint_of))
    if claim.state is ClaimState.REPLAY:
        assert claim.status_code is not None
        assert claim.body is not None
        media_type = PROBLEM_JSON if claim.status_code >= 400 else "application/json"
        return Response(
            content=claim.body.encode(),
            status_code=claim.status_code,
            media_type=media_type,
            headers={"Idempotent-Replayed": "true"},
        )
    if claim.state is ClaimState.MISMATCH:
        raise AppError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request.",
        )
    if claim.state is ClaimState.IN_PROGRESS:
        raise AppError(
            409,
            "idempotency_request_in_progress",
            "A request with this Idempotency-Key is still running; retry shortly.",
            headers={"Retry-After": "1"},
        )
    try:
        response = await _render(run)
    except BaseException:
        await store.release(merchant_id, key)
        raise
    if response.status_code >= 500:
        await store.release(merchant_id, key)
        return response
    await store.complete(merchant_id, key, response.status_code, bytes(response.body).decode())
    return response


async def _render(run: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    try:
        return await run()
    except AppError as exc:
        return problem(
            exc.status,
            exc.code,
            exc.detail,
            errors=exc.errors,
            extra=exc.extra,
            headers=exc.headers,
        )
