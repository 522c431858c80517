"""``/saleor/api/``: the manifest, installation, and Saleor's payment webhooks.

Every webhook is checked before anything is read from it, in this order: the ``Saleor-Api-Url``
names an installation; ``Saleor-Signature`` is that Saleor's RS256 signature of the raw body;
the body is addressed to the installed app (``recipient.id``) and is the event of its URL.
Anything else is refused with 401 (or 400 for a misaddressed event) and changes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse

from app.deps import RuntimeDep
from app.errors import AppError, Unauthorized
from app.saleor.events import SaleorEvent
from app.saleor.installations import MAX_TOKEN_LENGTH, Installations
from app.saleor.manifest import APP_NAME, PREFIX, manifest
from app.saleor.models import SaleorInstallation
from app.saleor.signature import BadSignature, UnknownKey, verify_signature
from app.saleor.transactions import SaleorTransactions

logger = logging.getLogger(__name__)

# Saleor's protocol, not the storefront API: documented in the README ("Use it with Saleor"),
# left out of /openapi.json.
router = APIRouter(prefix=PREFIX, tags=["saleor"], include_in_schema=False)

_APP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>{name}</h1>
<p>Customers pay with <strong>MTN Mobile Money</strong> or <strong>Airtel Money</strong>: at
checkout they give their mobile number, approve the payment on their phone, and the order is
marked paid once the money has moved. Refunds made in Saleor go back to the same phone.</p>
<p>Payments, refunds and their history are in the gateway's operator console
(<code>/console/</code> on the gateway).</p>
</body></html>
"""


@router.get("/manifest", summary="Saleor app manifest")
async def get_manifest(request: Request, runtime: RuntimeDep) -> JSONResponse:
    base_url = runtime.settings.saleor_app_url or str(request.base_url)
    return JSONResponse(manifest(base_url))


@router.get("/app", response_class=HTMLResponse)
async def app_page() -> HTMLResponse:
    """What Saleor's dashboard shows for the app."""
    return HTMLResponse(_APP_PAGE.format(name=APP_NAME))


@router.post("/register", summary="Install the app (called by Saleor)")
async def register(
    runtime: RuntimeDep,
    body: Annotated[dict[str, Any], Body()],
    saleor_api_url: Annotated[str | None, Header(alias="saleor-api-url")] = None,
) -> JSONResponse:
    token = body.get("auth_token")
    if not saleor_api_url:
        raise AppError(400, "missing_saleor_api_url", "The saleor-api-url header is required.")
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise AppError(400, "missing_auth_token", 'The body must be {"auth_token": "..."}.')
    installed = await runtime.saleor_installations.register(saleor_api_url, token)
    return JSONResponse({"success": True, "created": installed.created})


@router.post("/webhooks/{event_slug}", summary="A Saleor payment webhook")
async def webhook(event_slug: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
    event = SaleorEvent.from_slug(event_slug)
    if event is None:
        raise AppError(404, "not_found", "No such Saleor webhook.")
    raw_body = await request.body()
    installations = runtime.saleor_installations
    installation = await installations.for_api_url(request.headers.get("saleor-api-url", ""))
    if installation is None:
        raise _refused("unknown Saleor-Api-Url", event)
    await _check_signature(installations, installation, request, raw_body, event)
    payload = _payload(raw_body)
    recipient = payload.get("recipient")
    if not isinstance(recipient, dict) or recipient.get("id") != installation.app_id:
        raise _refused("recipient is not the installed app", event)
    saleor_event = request.headers.get("saleor-event", event.value)
    if payload.get("__typename") != event.spec.typename or saleor_event.upper() != event.value:
        raise AppError(400, "wrong_saleor_event", f"This URL takes {event.value} only.")
    reply = await SaleorTransactions(runtime).answer(event, installation, payload, raw_body)
    return JSONResponse(reply)


async def _check_signature(
    installations: Installations,
    installation: SaleorInstallation,
    request: Request,
    raw_body: bytes,
    event: SaleorEvent,
) -> None:
    signature = request.headers.get("saleor-signature", "")
    try:
        verify_signature(signature, raw_body, installation.jwks)
        return
    except UnknownKey:
        # Saleor may have rotated its keys since the install: look once more, rate limited.
        jwks = await installations.refetched_jwks(installation)
        if jwks is not None:
            try:
                verify_signature(signature, raw_body, jwks)
                return
            except BadSignature as exc:
                raise _refused(str(exc), event) from None
        raise _refused("signed with an unknown key", event) from None
    except BadSignature as exc:
        raise _refused(str(exc), event) from None


def _payload(raw_body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw_body)
    except ValueError:
        raise AppError(400, "malformed_json", "The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise AppError(400, "malformed_json", "The body is not a JSON object.")
    return payload


def _refused(reason: str, event: SaleorEvent) -> Unauthorized:
    logger.warning("Saleor webhook refused: %s", reason, extra={"saleor_event": event.value})
    return Unauthorized("The webhook could not be verified.")
