"""Running a creation (a payment, a refund) under an ``Idempotency-Key``: claim, run, store,
replay.

The claim commits with the created object's write-ahead row and the response with its outcome
(see ``IdempotentCreation``), so a keyed request costs no transaction of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from fastapi import Response

from app.db import BoundWrite
from app.errors import PROBLEM_JSON, AppError, problem_for
from app.idempotency import ClaimState, IdempotencyStore
from app.payments.creation import HookConflict

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
IDEMPOTENCY_KEY_DESCRIPTION = (
    "Optional, up to 255 characters. The same key with the same body returns the first "
    "response again (with `Idempotent-Replayed: true`) and makes no new provider call; with "
    "another body it is refused (422); while the first request runs, 409. Kept 24 hours."
)

Created = TypeVar("Created")
Render = Callable[[Created], Response]
Create = Callable[["IdempotentCreation[Created] | None"], Awaitable[Created]]


def check_key(key: str) -> str:
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise AppError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    return key


class IdempotentCreation(Generic[Created]):
    """A service's creation hooks (``app.payments.creation.CreationHooks``) for one keyed
    request."""

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        merchant_id: str,
        key: str,
        fingerprint: str,
        render: Render[Created],
    ) -> None:
        self._store = store
        self._merchant_id = merchant_id
        self._key = key
        self._fingerprint = fingerprint
        self._render = render
        self.already_claimed = False  # set when we took over an abandoned claim
        self.holds_claim = False  # our claim is committed and has no response yet
        self.response: Response | None = None  # as stored for the key, once committed
        self._answer: Response | None = None

    def first_write(self) -> BoundWrite | None:
        if self.already_claimed:
            return None
        return self._store.claim(self._merchant_id, self._key, self._fingerprint)

    def first_transaction_committed(self) -> None:
        self.holds_claim = True

    async def release(self) -> None:
        await self._store.release(self._merchant_id, self._key)
        self.holds_claim = False

    def last_write(self, created: Created) -> BoundWrite:
        self._answer = self._render(created)
        return self._store.store_response(
            self._merchant_id,
            self._key,
            self._answer.status_code,
            bytes(self._answer.body).decode(),
        )

    def last_write_committed(self) -> None:
        self.response = self._answer
        self.holds_claim = False


async def create_idempotently(
    store: IdempotencyStore,
    *,
    merchant_id: str,
    key: str | None,
    fingerprint: str,
    create: Create[Created],
    render: Render[Created],
) -> Response:
    if key is None:
        return await _answer(lambda: _created(create, None, render))
    creation = IdempotentCreation(
        store, merchant_id=merchant_id, key=check_key(key), fingerprint=fingerprint, render=render
    )
    try:
        return await _answer(lambda: _created(create, creation, render))
    except HookConflict:
        pass
    claim = await store.resolve(merchant_id, key, fingerprint)
    if claim.state is ClaimState.REPLAY:
        assert claim.status_code is not None
        assert claim.body is not None
        return Response(
            content=claim.body.encode(),
            status_code=claim.status_code,
            media_type=PROBLEM_JSON if claim.status_code >= 400 else "application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    if claim.state is ClaimState.MISMATCH:
        raise AppError(
            422, "idempotency_key_reused", "This Idempotency-Key was used with a different request."
        )
    if claim.state is ClaimState.IN_PROGRESS:
        raise AppError(
            409,
            "idempotency_request_in_progress",
            "A request with this Idempotency-Key is still running; retry shortly.",
            headers={"Retry-After": "1"},
        )
    creation.already_claimed = claim.state is ClaimState.TAKEN_OVER
    creation.holds_claim = creation.already_claimed
    return await _answer(lambda: _created(create, creation, render))


async def _created(
    create: Create[Created], creation: IdempotentCreation[Created] | None, render: Render[Created]
) -> Response:
    """Create, and answer with exactly the bytes stored for the key (if there is one)."""
    try:
        created = await create(creation)
    except BaseException:
        if creation is not None and creation.holds_claim:
            # Our claim committed but no response will be stored: free the key for a retry.
            await creation.release()
        raise
    if creation is not None and creation.response is not None:
        return creation.response
    return render(created)


async def _answer(run: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await run()
    except AppError as exc:
        return problem_for(exc)
