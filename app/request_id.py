"""``X-Request-ID``: honoured when sane, generated otherwise, echoed on the response, and put in
every log line of the request. One access log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.log_config import request_id_var
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("app.access")

_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"),
            "",
        )
        request_id = given if _ACCEPTABLE.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            elapsed = time.perf_counter() - started
            # The route template, never the raw path: ids must not become label values.
            label = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], label, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], label).observe(elapsed)
            logger.info(
                "%s %s %s",
                scope["method"],
                getattr(route, "path", scope["path"]),
                status,
                extra={
                    "method": scope["method"],
                    "path": getattr(route, "path", scope["path"]),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )
            request_id_var.reset(token)
