"""``X-Request-ID``: honoured when sane, generated otherwise, echoed on the response, and put in
every log line of the request. One access log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.log_config import request_id_var
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

logger = logging.getLogger("app.access")

_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# The route label of a request no route took (a real 404, a slash redirect).
UNMATCHED = "unmatched"


def route_template(before: Scope, after: Scope) -> str | None:
    """The template of the application's route that took the request, or None.

    ``before`` is the scope as the application received it, ``after`` the same scope once the
    request is served. FastAPI names the route it ran in the scope, but plain Starlette routes
    (the docs pages) and mounts leave no such trace, and a route inside a mounted application
    names a path relative to its mount: for those, the application's own routes are matched
    again, as the router does (first full match, else the first partial one, which answered
    405). A mount is labelled by its own path, whatever it serves below it.
    """
    route = after.get("route")
    descended = after.get("root_path", "") != before.get("root_path", "")
    if route is not None and not descended:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
    router = getattr(before.get("app"), "router", None)
    partial = None
    for candidate in getattr(router, "routes", ()):
        path = getattr(candidate, "path", None)
        if not isinstance(path, str):
            continue  # included routers: their routes name themselves in the scope
        match, _ = candidate.matches(before)
        if match is Match.FULL:
            return path or "/"
        if match is Match.PARTIAL and partial is None:
            partial = path or "/"
    return partial


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
        # Routing rewrites the scope (a mount moves root_path): keep it as it came.
        received = dict(scope)
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
            elapsed = time.perf_counter() - started
            # The route template, never the raw path: ids must not become label values.
            template = route_template(received, scope)
            label = template or UNMATCHED
            HTTP_REQUESTS.labels(scope["method"], label, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], label).observe(elapsed)
            path = template or received["path"]
            logger.info(
                "%s %s %s",
                scope["method"],
                path,
                status,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )
            request_id_var.reset(token)
