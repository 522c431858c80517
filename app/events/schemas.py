"""The events API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.events.models import DeliveryAttempt, OutboxEvent
from app.payments.domain import EventType


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryOut(BaseModel):
    status: Literal["pending", "delivered", "failed"]
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None


class EventOut(BaseModel):
    id: str
    object: Literal["event"] = "event"
    type: EventType
    created_at: datetime
    payment_id: str
    refund_id: str | None = Field(
        default=None, description="Set on `refund.*` events: the refund the event is about."
    )
    data: dict[str, Any]
    delivery: DeliveryOut

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "evt_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
                    "object": "event",
                    "type": "payment.succeeded",
                    "created_at": "2026-01-13T09:31:12Z",
                    "payment_id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
                    "refund_id": None,
                    "data": {
                        "id": "pay_0193b2c4f1a2d41f8e0c2b7a9d3e5f61",
                        "object": "payment",
                        "status": "successful",
                    },
                    "delivery": {
                        "status": "delivered",
                        "attempts": [
                            {
                                "at": "2026-01-13T09:31:13Z",
                                "status_code": 200,
                                "latency_ms": 84,
                                "error": None,
                            }
                        ],
                        "next_attempt_at": None,
                    },
                }
            ]
        }
    )

    @classmethod
    def of(cls, event: OutboxEvent, attempts: list[DeliveryAttempt]) -> EventOut:
        return cls(
            id=event.id,
            type=EventType(event.type),
            created_at=event.created_at,
            payment_id=event.payment_id,
            refund_id=event.refund_id,
            data=dict(event.payload.get("data", {})),
            delivery=DeliveryOut(
                status=event.delivery_status,
                attempts=[
                    AttemptOut(
                        at=a.attempted_at,
                        status_code=a.status_code,
                        latency_ms=a.latency_ms,
                        error=a.error,
                    )
                    for a in attempts
                ],
                next_attempt_at=event.next_attempt_at
                if event.delivery_status == "pending"
                else None,
            ),
        )


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EventOut]
    has_more: bool
