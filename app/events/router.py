"""``/v1/events``: what the gateway told (or is telling) the storefront, and how that went."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import CurrentMerchant, RuntimeDep
from app.events.schemas import EventList, EventOut
from app.events.service import EventWithAttempts
from app.identifiers import IDENTIFIER_PATTERN
from app.payments.domain import EventType

router = APIRouter(prefix="/v1/events", tags=["events"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key (problem+json)."},
    404: {"description": "No such event for this merchant (problem+json)."},
}


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
    events, has_more = await runtime.events.list_events(
        merchant.id,
        limit=limit,
        payment_id=payment_id,
        event_type=type.value if type else None,
        starting_after=starting_after,
    )
    return EventList(data=[_rendered(found) for found in events], has_more=has_more)


@router.get("/{event_id}", response_model=EventOut, summary="Get an event", responses=_PROBLEMS)
async def get_event(event_id: str, merchant: CurrentMerchant, runtime: RuntimeDep) -> EventOut:
    return _rendered(await runtime.events.get_event(merchant.id, event_id))


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
    return _rendered(await runtime.events.redeliver(merchant.id, event_id))


def _rendered(found: EventWithAttempts) -> EventOut:
    return EventOut.of(found.event, found.attempts)
