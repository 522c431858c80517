"""Provider callback routes, at the original integration guide's paths.

MTN sends PUT (older docs) or POST (newer docs): both are accepted everywhere. Each request-to-pay
names its own MTN callback URL, ``/api/webhooks/mtn-momo/{reference}/{token}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import RuntimeDep
from app.errors import problem
from app.payments.domain import Provider
from app.webhooks.service import CallbackReply, InboundCallback

router = APIRouter(prefix="/api/webhooks", tags=["provider callbacks"])

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
) -> JSONResponse:
    callback = InboundCallback(
        provider=provider,
        raw_body=await request.body(),
        headers=_headers(request),
        peer=request.client.host if request.client else None,
        path_reference=reference,
        path_token=token,
    )
    return _render(await runtime.callbacks.receive(callback))


Handler = Callable[..., Awaitable[JSONResponse]]


def callback_route(path: str, *, summary: str, name: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for PUT and POST at ``path`` (and without its trailing slash), one
    operation per method with a stable id: ``{name}_put`` and ``{name}_post``."""

    def register(handler: Handler) -> Handler:
        for method in _METHODS:
            router.add_api_route(
                path,
                handler,
                methods=[method],
                summary=summary,
                responses=_RESPONSES,
                operation_id=f"{name}_{method.lower()}",
            )
        if path.endswith("/"):
            router.add_api_route(
                path.rstrip("/"), handler, methods=_METHODS, include_in_schema=False
            )
        return handler

    return register


@callback_route("/mtn-momo/", summary="MTN MoMo callback", name="mtn_callback")
async def mtn_callback(runtime: RuntimeDep, request: Request) -> JSONResponse:
    """The original guide's MTN route: the body names the payment (`referenceId` or
    `externalId`); the provider's status endpoint decides what happened."""
    return await _receive(runtime, request, Provider.MTN_MOMO)


@callback_route(
    "/mtn-momo/{reference}/{token}",
    summary="MTN MoMo per-payment callback",
    name="mtn_payment_callback",
)
async def mtn_payment_callback(
    runtime: RuntimeDep, request: Request, reference: str, token: str
) -> JSONResponse:
    """The `X-Callback-Url` given with each request-to-pay: MTN's callback carries no reference
    id, so the URL does, with a token bound to it."""
    return await _receive(runtime, request, Provider.MTN_MOMO, reference[:64], token[:128])


@callback_route("/airtel-money/", summary="Airtel Money callback", name="airtel_callback")
async def airtel_callback(runtime: RuntimeDep, request: Request) -> JSONResponse:
    """Airtel posts to the one URL registered in its portal; `transaction.id` is ours."""
    return await _receive(runtime, request, Provider.AIRTEL_MONEY)
