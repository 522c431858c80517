"""The console's merchants: the list, one merchant, and an admin's changes to them.

Every change goes through ``app.merchants.admin``, which writes the audit entry. A new API key
or webhook secret is shown once, in the answer to the POST that made it: it is never put in a
URL, a cookie or the database in clear, so reloading the merchant's page cannot show it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.console.web import (
    PREFIX,
    Admin,
    Console,
    ConsoleRefused,
    Viewer,
    checked_form,
    render,
    see_other,
)
from app.merchants.admin import (
    DEFAULT_GRACE_SECONDS,
    MAX_GRACE_SECONDS,
    InvalidCallbackUrl,
    InvalidGracePeriod,
    MerchantSummary,
    UnknownMerchant,
    create_audited_merchant,
    disable_merchant,
    enable_merchant,
    get_merchant,
    list_merchants,
    rotate_api_key,
    rotate_webhook_secret,
    update_callback_url,
)
from app.operators.audit import list_actions

router = APIRouter(prefix=PREFIX, include_in_schema=False)

HISTORY_SHOWN: Final = 20


# --- reading ------------------------------------------------------------------------------------
@router.get("/merchants", response_class=HTMLResponse)
async def merchants_list(request: Request, console: Viewer) -> Response:
    return await _list_page(request, console)


@router.get("/merchants/{merchant_id}", response_class=HTMLResponse)
async def merchant_page(request: Request, console: Viewer, merchant_id: str) -> Response:
    return await _merchant_page(
        request, console, merchant_id, notice=request.query_params.get("notice")
    )


async def _list_page(
    request: Request,
    console: Console,
    *,
    status_code: int = 200,
    error: str | None = None,
    typed: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "merchants.html",
        console=console,
        status_code=status_code,
        notice=request.query_params.get("notice"),
        merchants=await list_merchants(console.runtime.sessions),
        error=error,
        typed=typed or {},
    )


async def _merchant_page(
    request: Request,
    console: Console,
    merchant_id: str,
    *,
    status_code: int = 200,
    **shown: Any,
) -> HTMLResponse:
    """The merchant's page; ``shown`` adds what this one answer says (a notice, an error, a
    new key or secret shown once)."""
    merchant = await _merchant(console, merchant_id)
    history = await list_actions(
        console.runtime.sessions, target_type="merchant", target_id=merchant.id, limit=HISTORY_SHOWN
    )
    return render(
        request,
        "merchant.html",
        console=console,
        status_code=status_code,
        merchant=merchant,
        history=history,
        default_grace=DEFAULT_GRACE_SECONDS,
        max_grace=MAX_GRACE_SECONDS,
        **shown,
    )


async def _merchant(console: Console, merchant_id: str) -> MerchantSummary:
    try:
        return await get_merchant(console.runtime.sessions, merchant_id)
    except UnknownMerchant:
        message = f"There is no merchant {merchant_id[:64]}."
        raise ConsoleRefused(404, "Not found", message) from None


# --- acting (admins) ----------------------------------------------------------------------------
@router.post("/merchants", response_class=HTMLResponse)
async def create(request: Request, console: Admin) -> Response:
    fields = await checked_form(request, console)
    name = fields.get("name", "")
    callback_url = fields.get("callback_url", "")
    try:
        created = await create_audited_merchant(
            console.runtime.sessions,
            name=name,
            callback_url=callback_url,
            operator=console.operator,
            source=console.address,
        )
    except ValueError as refused:  # an empty name, an invalid callback URL
        return await _list_page(
            request,
            console,
            status_code=422,
            error=f"The merchant was not created: {refused}.",
            typed={"name": name, "callback_url": callback_url},
        )
    return await _merchant_page(
        request,
        console,
        created.id,
        status_code=201,
        notice=f"Merchant {created.name} created.",
        new_api_key=created.api_key,
        new_webhook_secret=created.webhook_secret,
    )


@router.post("/merchants/{merchant_id}/callback-url")
async def change_callback_url(request: Request, console: Admin, merchant_id: str) -> Response:
    fields = await checked_form(request, console)
    try:
        await update_callback_url(
            console.runtime.sessions,
            merchant_id,
            fields.get("callback_url", ""),
            operator=console.operator,
            source=console.address,
        )
    except InvalidCallbackUrl as refused:
        return await _merchant_page(
            request, console, merchant_id, status_code=422, error=f"Not saved: {refused}."
        )
    except UnknownMerchant:
        return await _merchant_page(request, console, merchant_id)  # its 404
    return see_other(_path(merchant_id), notice="Callback URL saved.")


@router.post("/merchants/{merchant_id}/rotate-key", response_class=HTMLResponse)
async def rotate_key(request: Request, console: Admin, merchant_id: str) -> Response:
    fields = await checked_form(request, console)
    try:
        rotated = await rotate_api_key(
            console.runtime.sessions,
            merchant_id,
            _grace_seconds(fields),
            operator=console.operator,
            source=console.address,
            keys=console.runtime.merchant_keys,
        )
    except InvalidGracePeriod as refused:
        return await _merchant_page(
            request, console, merchant_id, status_code=422, error=f"Not rotated: {refused}."
        )
    except UnknownMerchant:
        return await _merchant_page(request, console, merchant_id)
    return await _merchant_page(
        request,
        console,
        merchant_id,
        notice="API key rotated.",
        new_api_key=rotated["api_key"],
    )


@router.post("/merchants/{merchant_id}/rotate-secret", response_class=HTMLResponse)
async def rotate_secret(request: Request, console: Admin, merchant_id: str) -> Response:
    fields = await checked_form(request, console)
    try:
        rotated = await rotate_webhook_secret(
            console.runtime.sessions,
            merchant_id,
            _grace_seconds(fields),
            operator=console.operator,
            source=console.address,
        )
    except InvalidGracePeriod as refused:
        return await _merchant_page(
            request, console, merchant_id, status_code=422, error=f"Not rotated: {refused}."
        )
    except UnknownMerchant:
        return await _merchant_page(request, console, merchant_id)
    return await _merchant_page(
        request,
        console,
        merchant_id,
        notice="Webhook secret rotated.",
        new_webhook_secret=rotated["webhook_secret"],
    )


@router.post("/merchants/{merchant_id}/disable")
async def disable(request: Request, console: Admin, merchant_id: str) -> Response:
    return await _switch(
        request,
        console,
        merchant_id,
        disable_merchant,
        notice="Merchant disabled: its API key is refused, its events wait.",
    )


@router.post("/merchants/{merchant_id}/enable")
async def enable(request: Request, console: Admin, merchant_id: str) -> Response:
    return await _switch(request, console, merchant_id, enable_merchant, notice="Merchant enabled.")


async def _switch(
    request: Request,
    console: Console,
    merchant_id: str,
    switch: Callable[..., Awaitable[object]],
    *,
    notice: str,
) -> Response:
    """Disable or enable (``switch``), audited by the admin service; an unknown merchant gets
    its 404 page."""
    await checked_form(request, console)
    try:
        await switch(
            console.runtime.sessions,
            merchant_id,
            operator=console.operator,
            source=console.address,
            keys=console.runtime.merchant_keys,
        )
    except UnknownMerchant:
        return await _merchant_page(request, console, merchant_id)
    return see_other(_path(merchant_id), notice=notice)


def _grace_seconds(fields: Mapping[str, str]) -> int:
    """The form's grace period; InvalidGracePeriod (a 422 page) if it is not a whole number."""
    typed = fields.get("grace_seconds", "").strip()
    if not typed:
        return DEFAULT_GRACE_SECONDS
    try:
        return int(typed)
    except ValueError:
        raise InvalidGracePeriod(
            f"grace period must be a whole number of seconds, not {typed[:20]!r}"
        ) from None


def _path(merchant_id: str) -> str:
    return f"{PREFIX}/merchants/{merchant_id}"
