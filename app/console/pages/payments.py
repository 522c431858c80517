"""The console's payments: the list (filters, search, keyset pages, CSV export), one payment with
everything that happened to it, and an admin's actions on it.

The list's queries live in ``app.console.payment_search``. The actions go through the same
services as the CLI (``app.operators.resolution`` and ``app.operators.actions``), which write
the audit entries; each ends in a 303 back to the payment's page with a notice, or, when it is
refused, in that page again with the reason and a 4xx status. A phone number is shown whole
only in the answer to an admin's "Reveal number" POST, which is audited: never in a URL, a
cookie or a page a viewer can load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import select

from app.console.payment_search import (
    EXPORT_LIMIT,
    PAGE_SIZE,
    STATUSES,
    PaymentFilters,
    csv_text,
    find_page,
    merchant_names,
)
from app.console.web import (
    PREFIX,
    Admin,
    Console,
    ConsoleRefused,
    Viewer,
    checked_form,
    money,
    render,
    see_other,
)
from app.db import utcnow
from app.errors import AppError
from app.events.models import OutboxEvent
from app.identifiers import is_identifier
from app.merchants.models import Merchant
from app.operators.actions import (
    Acting,
    NoSuchObject,
    create_refund,
    record,
    redeliver_event,
    refresh_payment,
)
from app.operators.resolution import (
    MIN_NOTE_LENGTH,
    PAYMENT_OUTCOMES,
    REFUND_OUTCOMES,
    NothingToResolve,
    ResolutionRefused,
    resolve_payment,
    resolve_refund,
)
from app.operators.service import OperatorNotAllowed
from app.operators.timeline import TimelineEntry, payment_timeline
from app.payments.domain import PaymentStatus
from app.payments.models import Payment
from app.providers import registry
from app.providers.errors import ProviderError, ProviderNotConfigured
from app.refunds.domain import RefundStatus
from app.refunds.models import Refund
from app.refunds.schemas import REASON_MAX_LENGTH

router = APIRouter(prefix=PREFIX, include_in_schema=False)

NEEDS_REVIEW: Final = PaymentStatus.NEEDS_REVIEW.value


def provider_title(name: str) -> str:
    """``mtn_momo`` → ``MTN MoMo``; a provider no longer registered keeps its stored name."""
    return registry.spec_for(name).title if registry.is_registered(name) else name


def acting(console: Console) -> Acting:
    return Acting.operator_at(console.operator, console.address)


# --- the list ----------------------------------------------------------------------------------
@router.get("/payments", response_class=HTMLResponse)
async def payments_list(request: Request, console: Viewer) -> Response:
    filters = PaymentFilters.of(request.query_params)
    page = await find_page(
        console.runtime.sessions,
        filters,
        console.zone,
        before=request.query_params.get("before"),
        after=request.query_params.get("after"),
    )
    return render(
        request,
        "payments.html",
        console=console,
        notice=request.query_params.get("notice"),
        filters=filters,
        page=page,
        merchants=await merchant_names(console.runtime.sessions),
        statuses=STATUSES,
        providers=[(spec.name, spec.title) for spec in registry.registered()],
        provider_title=provider_title,
        newest_link=_list_link(filters),
        older_link=_list_link(filters, before=page.older) if page.older else None,
        newer_link=_list_link(filters, after=page.newer) if page.newer else None,
        export_link=f"{PREFIX}/payments.csv" + _query(filters.as_query()),
        page_size=PAGE_SIZE,
        export_limit=EXPORT_LIMIT,
    )


def _list_link(filters: PaymentFilters, **cursor: str | None) -> str:
    query = filters.as_query() | {name: value for name, value in cursor.items() if value}
    return f"{PREFIX}/payments" + _query(query)


def _query(values: Mapping[str, str]) -> str:
    return f"?{urlencode(values)}" if values else ""


@router.get("/payments.csv")
async def payments_csv(request: Request, console: Viewer) -> Response:
    """What the list shows, on all its pages (at most EXPORT_LIMIT rows), as a download. An
    export takes many payments out of the gateway at once: it is audited with its filters."""
    filters = PaymentFilters.of(request.query_params)
    await record(
        console.runtime,
        acting(console),
        "payments.export",
        target_type=None,
        target_id=None,
        detail=filters.as_query(),
    )
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        csv_text(console.runtime.sessions, filters, console.zone),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="payments-{stamp}.csv"'},
    )


# --- one payment -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentView:
    """Everything the payment's page shows."""

    payment: Payment
    merchant_name: str
    refunds: Sequence[Refund]
    events: Sequence[OutboxEvent]
    timeline: Sequence[TimelineEntry]

    @property
    def refundable_minor(self) -> int:
        """What is left to refund, as far as succeeded refunds go (the service decides, under
        a lock, counting pending ones too)."""
        return max(self.payment.amount_minor - (self.payment.amount_refunded_minor or 0), 0)


async def load_payment(console: Console, payment_id: str) -> PaymentView:
    """The payment, its merchant's name, refunds, events and timeline; a 404 page if none."""
    payment = await _payment_or_404(console, payment_id)
    async with console.runtime.sessions() as session:
        merchant_name = await session.scalar(
            select(Merchant.name).where(Merchant.id == payment.merchant_id)
        )
        events = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.payment_id == payment.id)
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
            )
        ).all()
    return PaymentView(
        payment=payment,
        merchant_name=merchant_name or payment.merchant_id,
        refunds=await console.runtime.refunds.refunds_of(payment.id),
        events=events,
        timeline=await payment_timeline(console.runtime.sessions, payment.id) or [],
    )


async def _payment_or_404(console: Console, payment_id: str) -> Payment:
    payment = None
    if is_identifier(payment_id):  # anything else names nothing
        async with console.runtime.sessions() as session:
            payment = await session.get(Payment, payment_id)
    if payment is None:
        raise _not_found("payment", payment_id)
    return payment


async def _refund_or_404(console: Console, refund_id: str) -> Refund:
    refund = None
    if is_identifier(refund_id):
        async with console.runtime.sessions() as session:
            refund = await session.get(Refund, refund_id)
    if refund is None:
        raise _not_found("refund", refund_id)
    return refund


def _not_found(kind: str, identifier: str) -> ConsoleRefused:
    return ConsoleRefused(404, "Not found", f"There is no {kind} {identifier[:64]}.")


@router.get("/payments/{payment_id}", response_class=HTMLResponse)
async def payment_page(request: Request, console: Viewer, payment_id: str) -> Response:
    return await _payment_page(
        request, console, payment_id, notice=request.query_params.get("notice")
    )


async def _payment_page(
    request: Request,
    console: Console,
    payment_id: str,
    *,
    status_code: int = 200,
    **shown: Any,
) -> HTMLResponse:
    """The payment's page; ``shown`` adds what this one answer says (a notice, an error with
    what was typed, a number revealed once)."""
    view = await load_payment(console, payment_id)
    return render(
        request,
        "payment.html",
        console=console,
        status_code=status_code,
        view=view,
        p=view.payment,
        provider_title=provider_title,
        payment_outcomes=PAYMENT_OUTCOMES,
        refund_outcomes=REFUND_OUTCOMES,
        needs_review=NEEDS_REVIEW,
        refundable=view.payment.status == PaymentStatus.SUCCESSFUL.value,
        refund_in_review=RefundStatus.NEEDS_REVIEW.value,
        min_note=MIN_NOTE_LENGTH,
        reason_max=REASON_MAX_LENGTH,
        **({"typed": {}} | shown),
    )


def _payment_path(payment_id: str) -> str:
    return f"{PREFIX}/payments/{payment_id}"


# --- an admin's actions ------------------------------------------------------------------------
@router.post("/payments/{payment_id}/reveal-phone", response_class=HTMLResponse)
async def reveal_phone(request: Request, console: Admin, payment_id: str) -> Response:
    """The whole number, in this answer only (audited: who looked at whose number)."""
    await checked_form(request, console)
    payment = await _payment_or_404(console, payment_id)
    await record(
        console.runtime,
        acting(console),
        "payment.reveal_phone",
        target_type="payment",
        target_id=payment.id,
        detail={"merchant_id": payment.merchant_id},
    )
    return await _payment_page(
        request,
        console,
        payment.id,
        revealed_phone=payment.phone_number,
        notice="The number is shown on this page only; looking at it is in the audit log.",
    )


@router.post("/payments/{payment_id}/refresh")
async def refresh(request: Request, console: Admin, payment_id: str) -> Response:
    """Ask the provider now. A provider that cannot be reached is a notice, not an error page:
    nothing changed, and the reconciler keeps asking."""
    await checked_form(request, console)
    payment = await _payment_or_404(console, payment_id)
    title = provider_title(payment.provider)
    try:
        refreshed = await refresh_payment(console.runtime, payment.id, acting(console))
    except NoSuchObject:
        raise _not_found("payment", payment_id) from None
    except ProviderNotConfigured:
        notice = f"{title} is not configured on this gateway; the payment stays {payment.status}."
    except ProviderError as unreachable:
        notice = (
            f"{title} could not be reached ({type(unreachable).__name__}); the payment stays "
            f"{payment.status}. Try again in a minute."
        )
    except AppError as refused:  # e.g. its provider is not configured here at all
        notice = f"Not refreshed: {refused.detail}"
    else:
        notice = _refreshed_notice(title, payment.status, refreshed.status)
    return see_other(_payment_path(payment.id), notice=notice)


def _refreshed_notice(title: str, before: str, after: str) -> str:
    if before == after:
        return f"Asked {title}: the payment is still {after}."
    return f"Asked {title}: the payment is now {after} (was {before})."


@router.post("/payments/{payment_id}/resolve", response_class=HTMLResponse)
async def resolve(request: Request, console: Admin, payment_id: str) -> Response:
    fields = await checked_form(request, console)
    payment = await _payment_or_404(console, payment_id)
    status, note = fields.get("status", ""), fields.get("note", "")
    try:
        await resolve_payment(
            console.runtime,
            payment.id,
            status=status,
            note=note,
            operator_email=console.operator.email,
            source=console.address,
        )
    except NothingToResolve:
        raise _not_found("payment", payment_id) from None
    except ResolutionRefused as refused:
        return await _payment_page(
            request,
            console,
            payment.id,
            status_code=422,
            error=f"Not resolved: {refused}.",
            typed={"resolve": {"status": status, "note": note}},
        )
    except OperatorNotAllowed as refused:
        raise ConsoleRefused(403, "Not allowed", str(refused)) from None
    return see_other(
        _payment_path(payment.id),
        notice=f"Payment resolved as {status}; the storefront is sent the event.",
    )


@router.post("/refunds/{refund_id}/resolve", response_class=HTMLResponse)
async def resolve_a_refund(request: Request, console: Admin, refund_id: str) -> Response:
    fields = await checked_form(request, console)
    refund = await _refund_or_404(console, refund_id)
    status, note = fields.get("status", ""), fields.get("note", "")
    try:
        await resolve_refund(
            console.runtime,
            refund.id,
            status=status,
            note=note,
            operator_email=console.operator.email,
            source=console.address,
        )
    except NothingToResolve:
        raise _not_found("refund", refund_id) from None
    except ResolutionRefused as refused:
        return await _payment_page(
            request,
            console,
            refund.payment_id,
            status_code=422,
            error=f"Refund {refund.id} not resolved: {refused}.",
            typed={f"refund:{refund.id}": {"status": status, "note": note}},
        )
    except OperatorNotAllowed as refused:
        raise ConsoleRefused(403, "Not allowed", str(refused)) from None
    return see_other(
        _payment_path(refund.payment_id),
        notice=f"Refund {refund.id} resolved as {status}; the storefront is sent the event.",
    )


@router.post("/events/{event_id}/redeliver")
async def redeliver(request: Request, console: Admin, event_id: str) -> Response:
    await checked_form(request, console)
    try:
        queued = await redeliver_event(console.runtime, event_id, acting(console))
    except NoSuchObject:
        raise _not_found("event", event_id) from None
    return see_other(
        _payment_path(queued.event.payment_id),
        notice=f"Event {queued.event.type} queued to be delivered again.",
    )


@router.post("/payments/{payment_id}/refund", response_class=HTMLResponse)
async def refund(request: Request, console: Admin, payment_id: str) -> Response:
    """A refund made through the refund service, with every rule the API applies; a refusal
    (not refundable, too much, not supported) is the page again with the service's reason."""
    fields = await checked_form(request, console)
    payment = await _payment_or_404(console, payment_id)
    typed = {"amount": fields.get("amount", ""), "reason": fields.get("reason", "")}
    reason = " ".join(typed["reason"].split()) or None
    if reason is not None and len(reason) > REASON_MAX_LENGTH:
        return await _refund_refused(
            request,
            console,
            payment.id,
            422,
            f"the reason is at most {REASON_MAX_LENGTH} characters",
            typed,
        )
    try:
        made = await create_refund(
            console.runtime,
            payment.id,
            acting(console),
            amount=_typed_amount(typed["amount"]),
            reason=reason,
        )
    except NoSuchObject:
        raise _not_found("payment", payment_id) from None
    except AppError as refused:
        # Nothing was refunded: whatever the service's status, the operator's request is what
        # cannot be done (never a 500 page).
        status = refused.status if 400 <= refused.status < 500 else 409
        return await _refund_refused(request, console, payment.id, status, refused.detail, typed)
    return see_other(
        _payment_path(payment.id),
        notice=f"Refund {made.id} of {money(made.amount_minor, made.currency)} is {made.status}.",
    )


def _typed_amount(typed: str) -> str | None:
    """The amount field: empty → None (everything still refundable); thousands separators
    dropped (``20,000``: the console writes amounts so, so operators type them so too)."""
    text = typed.replace(",", "").replace(" ", "").strip()
    return text or None


async def _refund_refused(
    request: Request,
    console: Console,
    payment_id: str,
    status_code: int,
    reason: str,
    typed: Mapping[str, str],
) -> HTMLResponse:
    return await _payment_page(
        request,
        console,
        payment_id,
        status_code=status_code,
        error=f"Not refunded: {reason.rstrip('.')}.",
        typed={"refund": dict(typed)},
    )
