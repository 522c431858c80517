"""A storefront's event endpoint, served over real HTTP, that remembers what it was sent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.simulator.server import serve_in_background


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    url: str = ""
    fail_first: int = 0  # answer 500 to this many requests first
    down: bool = False  # answer 503 while set
    received: list[Delivery] = field(default_factory=list)  # every request, failed or not
    accepted: list[Delivery] = field(default_factory=list)  # those answered 2xx

    async def handle(self, request: Request) -> Response:
        delivery = Delivery(dict(request.headers), await request.body())
        self.received.append(delivery)
        if self.down:
            return Response(status_code=503)
        if self.fail_first > 0:
            self.fail_first -= 1
            return Response(status_code=500)
        self.accepted.append(delivery)
        return JSONResponse({"ok": True})

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.accepted)} of {count} deliveries arrived")
            await asyncio.sleep(0.02)
        return self.accepted


@asynccontextmanager
async def storefront_receiver(**options: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**options)
    app = Starlette(routes=[Route("/events", receiver.handle, methods=["POST"])])
    async with serve_in_background(app) as base_url:
        receiver.url = f"{base_url}/events"
        yield receiver
