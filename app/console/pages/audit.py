"""The console's audit log: every operator action and login, newest first.

Pages are keyset pages on the entry id (``before``: the last id of the previous page), so the
hundredth page costs what the first does on a log of millions of rows: an index scan backwards
from an id, never an OFFSET.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from app.console.web import PREFIX, Viewer, render
from app.operators.models import OperatorAction

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE_SIZE: Final = 50
DETAIL_VALUE_LIMIT: Final = 80
# What the action filter suggests (it takes any name: services add actions over time).
KNOWN_ACTIONS: Final = (
    "console.login",
    "console.login_failed",
    "console.login_locked",
    "console.logout",
    "event.redeliver",
    "merchant.create",
    "merchant.disable",
    "merchant.enable",
    "merchant.rotate_key",
    "merchant.rotate_secret",
    "merchant.update_callback_url",
    "operator.create",
    "operator.disable",
    "operator.reset_password",
    "operator.set_timezone",
    "payment.refresh",
    "payment.resolve",
    "payment.reveal_phone",
    "payments.export",
    "refund.create",
    "refund.resolve",
)
# An id says what it is by its prefix (app.db.new_id), so a search by id alone can still use
# the (target_type, target_id) index.
TARGET_TYPE_BY_PREFIX: Final[Mapping[str, str]] = {
    "pay_": "payment",
    "mer_": "merchant",
    "re_": "refund",
    "evt_": "event",
    "op_": "operator",
}


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    target: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> AuditFilters:
        return cls(
            actor=query.get("actor", "").strip().lower()[:254],
            action=query.get("action", "").strip()[:40],
            target=query.get("target", "").strip()[:64],
        )

    def as_query(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value}


@router.get("/audit", response_class=HTMLResponse)
async def audit_log(request: Request, console: Viewer) -> Response:
    filters = AuditFilters.of(request.query_params)
    before = _before(request.query_params.get("before"))
    async with console.runtime.sessions() as session:
        found = (await session.scalars(audit_page_query(filters, before))).all()
    entries, older = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    return render(
        request,
        "audit.html",
        console=console,
        notice=request.query_params.get("notice"),
        entries=[AuditRow.of(entry) for entry in entries],
        filters=filters,
        known_actions=KNOWN_ACTIONS,
        paged=before is not None,
        newest_link=_link(filters, None),
        older_link=_link(filters, entries[-1].id) if older else None,
    )


def audit_page_query(filters: AuditFilters, before: int | None) -> Any:
    """SELECT … FROM operator_actions WHERE <filters> [AND id < :before]
    ORDER BY id DESC LIMIT 51 (one more than a page: is there an older page?)."""
    query = select(OperatorAction)
    if filters.actor:
        query = query.where(OperatorAction.actor == filters.actor)
    if filters.action:
        query = query.where(OperatorAction.action == filters.action)
    if filters.target:
        target_type = _target_type_of(filters.target)
        if target_type is not None:
            query = query.where(OperatorAction.target_type == target_type)
        query = query.where(OperatorAction.target_id == filters.target)
    if before is not None:
        query = query.where(OperatorAction.id < before)
    return query.order_by(OperatorAction.id.desc()).limit(PAGE_SIZE + 1)


def _target_type_of(target_id: str) -> str | None:
    return next(
        (kind for prefix, kind in TARGET_TYPE_BY_PREFIX.items() if target_id.startswith(prefix)),
        None,
    )


def _before(value: str | None) -> int | None:
    # A mangled cursor shows the newest page rather than an error.
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _link(filters: AuditFilters, before: int | None) -> str:
    query = filters.as_query() | ({"before": str(before)} if before is not None else {})
    return f"{PREFIX}/audit" + (f"?{urlencode(query)}" if query else "")


# --- one row --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditRow:
    entry: OperatorAction
    target_href: str | None
    detail: str

    @classmethod
    def of(cls, entry: OperatorAction) -> AuditRow:
        return cls(entry, target_href(entry), compact_detail(entry.detail))


def target_href(entry: OperatorAction) -> str | None:
    """The console page of what the entry is about, when there is one."""
    if entry.target_id is None:
        return None
    if entry.target_type == "payment":
        return f"{PREFIX}/payments/{entry.target_id}"
    if entry.target_type == "merchant":
        return f"{PREFIX}/merchants/{entry.target_id}"
    payment_id = (entry.detail or {}).get("payment_id")
    if entry.target_type in ("refund", "event") and isinstance(payment_id, str):
        return f"{PREFIX}/payments/{payment_id}"  # a refund's or event's story is its payment's
    return None


def compact_detail(detail: Mapping[str, Any] | None) -> str:
    """``{"from": "a", "grace_seconds": 0}`` → ``from=a grace_seconds=0``, each value cut at
    80 characters: a line to scan, not the record (the record stays in the table)."""
    if not detail:
        return ""
    return " ".join(f"{name}={_value(value)}" for name, value in detail.items())


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= DETAIL_VALUE_LIMIT else text[: DETAIL_VALUE_LIMIT - 1] + "…"
