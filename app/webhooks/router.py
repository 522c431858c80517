"""Provider callback routes, at the original integration guide's paths.

Each registered provider names its routes (``ProviderSpec.callback_routes``). PUT and POST are
both accepted everywhere (MTN's docs say one or the other). A per-payment route,
``…/{reference}/{token}``, carries the payment's reference and a token bound to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import RuntimeDep
from app.errors import problem
from app.providers.spec import CALLBACK_PREFIX, CallbackRoute, ProviderSpec
from app.vocabulary import Provider
from app.webhooks.service import CallbackReply, CallbackSubject, InboundCallback

_METHODS = ["PUT", "POST"]
_RESPONSES: dict[int | str, dict[str, str]] = {
    200: {
        "description": '`{"status": "success", "message": "Webhook processed"}` (or "Already '
        'processed" for a repeat).'
    },
    400: {"description": "Body is not JSON of the provider's shape (problem+json)."},
    401: {"description": "Bad or missing signature, or wrong callback token (problem+json)."},
    403: {"description": "Source address not allowed (problem+json)."},
    404: {"description": "No such payment (problem+json)."},
}


def _render(reply: CallbackReply) -> JSONResponse:
    if reply.problem_code is not None:
        return problem(reply.status_code, reply.problem_code, str(reply.body.get("detail")))
    return JSONResponse(reply.body, status_code=reply.status_code)


def _headers(request: Request) -> dict[str, str]:
    """Lower-case names; a header sent several times keeps every value, comma-joined in
    order, so X-Forwarded-For is read from the right even when a client adds its own line."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


async def _receive(
    runtime: RuntimeDep,
    request: Request,
    provider: Provider,
    reference: str | None = None,
    token: str | None = None,
    subject: CallbackSubject = CallbackSubject.PAYMENT,
) -> JSONResponse:
    callback = InboundCallback(
        provider=provider,
        raw_body=await request.body(),
        headers=_headers(request),
        peer=request.client.host if request.client else None,
        path_reference=reference,
        path_token=token,
        subject=subject,
    )
    return _render(await runtime.callbacks.receive(callback))


def _route_for(
    spec: ProviderSpec[Any], route: CallbackRoute, subject: CallbackSubject
) -> Callable[..., Any]:
    """The endpoint for one of a provider's callback routes (a per-payment or per-refund route
    passes the reference and token from its path)."""
    provider = spec.name
    if route.per_payment:

        async def per_payment(
            runtime: RuntimeDep, request: Request, reference: str, token: str
        ) -> JSONResponse:
            return await _receive(runtime, request, provider, reference[:64], token[:128], subject)

        endpoint: Callable[..., Any] = per_payment
    else:

        async def shared(runtime: RuntimeDep, request: Request) -> JSONResponse:
            return await _receive(runtime, request, provider)

        endpoint = shared
    endpoint.__name__ = route.operation
    endpoint.__doc__ = route.description
    return endpoint


def build_callback_router(specs: Sequence[ProviderSpec[Any]]) -> APIRouter:
    """Every registered provider's callback routes, PUT and POST, each also without its
    trailing slash; one operation per method with a stable id: ``{operation}_put|_post``."""
    router = APIRouter(prefix=CALLBACK_PREFIX, tags=["provider callbacks"])
    for spec in specs:
        routes = [(route, CallbackSubject.PAYMENT) for route in spec.callback_routes]
        if spec.refunds is not None:
            routes += [(route, CallbackSubject.REFUND) for route in spec.refunds.callback_routes]
        for route, subject in routes:
            endpoint = _route_for(spec, route, subject)
            for method in _METHODS:
                router.add_api_route(
                    route.path,
                    endpoint,
                    methods=[method],
                    summary=route.summary,
                    responses=_RESPONSES,
                    operation_id=f"{route.operation}_{method.lower()}",
                )
            if route.path.endswith("/"):
                router.add_api_route(
                    route.path.rstrip("/"), endpoint, methods=_METHODS, include_in_schema=False
                )
    return router
