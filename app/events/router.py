"""``/v1/events``: what the gateway told (or is telling) the storefront, and how that went."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import CurrentMerchant, RuntimeDep
from app.errors import AppError, NotFound
from app.events import repository
from app.events.schemas import EventList, EventOut
from app.identifiers import IDENTIFIER_PATTERN, is_identifier
from app.payments.domain import EventType
from app.runtime import Runtime

router = APIRouter(prefix="/v1/events", tags=["events"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key (problem+json)."},
    404: {"description": "No such event for this merchant (problem+json)."},
}


async def _event_out(runtime: Runtime, merchant_id: str, event_id: str) -> EventOut:
    async with runtime.sessions() as session:
        event = None
        if is_identifier(event_id):
            event = await repository.get_for_merchant(session, merchant_id, event_id)
        if event is None:
            raise NotFound(f"No event {event_id!r}.")
        attempts = await repository.attempts_for(session, [event.id])
    return EventOut.of(event, attempts[event.id])


@router.get(
    "",
    response_model=EventList,
    summary="List events, newest first, with their delivery attempts",
    responses={400: {"description": "Unknown cursor (problem+json)."}, 401: _PROBLEMS[401]},
)
async def list_events(
    merchant: CurrentMerchant,
    runtime: RuntimeDep,
    payment_id: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
    type: Annotated[EventType | None, Query(description="e.g. payment.succeeded")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)] = None,
) -> EventList:
    async with runtime.sessions() as session:
        after = None
        if starting_after is not None:
            after = await repository.get_for_merchant(session, merchant.id, starting_after)
            if after is None:
                raise AppError(
                    400, "invalid_cursor", f"starting_after {starting_after!r} is unknown"
                )
        events, has_more = await repository.list_page(
            session,
            merchant.id,
            limit=limit,
            payment_id=payment_id,
            event_type=type.value if type else None,
            after=after,
        )
        attempts = await repository.attempts_for(session, [event.id for event in events])
    return EventList(
        data=[EventOut.of(event, attempts[event.id]) for event in events], has_more=has_more
    )


@router.get("/{event_id}", response_model=EventOut, summary="Get an event", responses=_PROBLEMS)
async def get_event(event_id: str, merchant: CurrentMerchant, runtime: RuntimeDep) -> EventOut:
    return await _event_out(runtime, merchant.id, event_id)


@router.post(
    "/{event_id}/redeliver",
    response_model=EventOut,
    status_code=202,
    summary="Queue one more delivery",
    responses=_PROBLEMS,
)
async def redeliver_event(
    event_id: str, merchant: CurrentMerchant, runtime: RuntimeDep
) -> EventOut:
    """Sends the event again (same `webhook-id`), whatever happened before: useful after
    fixing a storefront endpoint that exhausted the retries."""
    await _event_out(runtime, merchant.id, event_id)  # 404 for another merchant's event
    await runtime.delivery.redeliver(event_id)
    await runtime.notifier.events_committed([event_id])
    return await _event_out(runtime, merchant.id, event_id)
