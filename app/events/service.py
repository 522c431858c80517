"""Reading a merchant's events with their delivery attempts, and queueing a redelivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.errors import NotFound
from app.events import repository
from app.events.models import DeliveryAttempt, OutboxEvent
from app.identifiers import is_identifier
from app.pagination import cursor_row
from app.payments.service import EventNotifier


@dataclass(frozen=True)
class EventWithAttempts:
    event: OutboxEvent
    attempts: list[DeliveryAttempt]  # oldest first


class EventService:
    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], notifier: EventNotifier
    ) -> None:
        self._sessions = sessions
        self._notifier = notifier

    async def get_event(self, merchant_id: str, event_id: str) -> EventWithAttempts:
        async with self._sessions() as session:
            event = None
            if is_identifier(event_id):
                event = await repository.get_for_merchant(session, merchant_id, event_id)
            if event is None:
                raise NotFound(f"No event {event_id!r}.")
            attempts = await repository.attempts_for(session, [event.id])
        return EventWithAttempts(event, attempts[event.id])

    async def list_events(
        self,
        merchant_id: str,
        *,
        limit: int,
        payment_id: str | None = None,
        event_type: str | None = None,
        starting_after: str | None = None,
    ) -> tuple[Sequence[EventWithAttempts], bool]:
        """Newest first; ``starting_after`` is the last event id of the previous page."""
        async with self._sessions() as session:
            after = await cursor_row(
                starting_after,
                lambda cursor: repository.get_for_merchant(session, merchant_id, cursor),
            )
            events, has_more = await repository.list_page(
                session,
                merchant_id,
                limit=limit,
                payment_id=payment_id,
                event_type=event_type,
                after=after,
            )
            attempts = await repository.attempts_for(session, [event.id for event in events])
        return [EventWithAttempts(event, attempts[event.id]) for event in events], has_more

    async def redeliver(self, merchant_id: str, event_id: str) -> EventWithAttempts:
        """Queue one more delivery (same event id), whatever happened before."""
        await self.get_event(merchant_id, event_id)  # 404 for another merchant's event
        async with self._sessions.begin() as session:
            await repository.queue_redelivery(session, event_id, at=utcnow())
        await self._notifier.events_committed([event_id])
        return await self.get_event(merchant_id, event_id)
