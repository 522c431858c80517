"""The operator's commands: ``operators``, ``payments``, ``events`` and the merchant actions.

Each prints JSON on stdout and exits 0, or prints one ``error: …`` line on stderr and exits 2
for a refusal (an unknown id, a missing note, a viewer trying to act). Every action is written
to the operator audit log with ``source="cli"``; the actor is ``--operator`` when given, else
``cli:<user>`` (the account that ran the command).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from app.config import Settings

EXIT_REFUSED = 2
SOURCE = "cli"
MAX_LIST = 500

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, Any]]


class Refused(Exception):
    """A refusal to print as one line (exit 2)."""


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    """An argparse ``func`` running ``command`` and printing what it returns as JSON."""

    def run(args: argparse.Namespace) -> int:
        try:
            result: Any = asyncio.run(command(args))
        except Refused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        print(json.dumps(result, indent=2, default=str))
        return 0

    return run


def _refusals() -> tuple[type[BaseException], ...]:
    """The service errors that are the operator's input being refused, not failures."""
    from app.errors import AppError
    from app.merchants.admin import InvalidGracePeriod
    from app.merchants.service import InvalidCallbackUrl, UnknownMerchant
    from app.operators.passwords import WeakPassword
    from app.operators.resolution import NothingToResolve, ResolutionRefused
    from app.operators.service import (
        InvalidEmail,
        InvalidRole,
        OperatorExists,
        OperatorNotAllowed,
        UnknownOperator,
    )

    return (
        AppError,
        InvalidGracePeriod,
        InvalidCallbackUrl,
        UnknownMerchant,
        WeakPassword,
        NothingToResolve,
        ResolutionRefused,
        InvalidEmail,
        InvalidRole,
        OperatorExists,
        OperatorNotAllowed,
        UnknownOperator,
    )


def _describe(exc: BaseException) -> str:
    from app.errors import AppError
    from app.merchants.service import UnknownMerchant

    if isinstance(exc, AppError):
        return f"{exc.code}: {exc.detail}"
    if isinstance(exc, UnknownMerchant):
        return f"no merchant {exc}"
    return str(exc).strip("'\"")


async def _refusing(work: Awaitable[Any]) -> Any:
    try:
        return await work
    except _refusals() as exc:
        raise Refused(_describe(exc)) from None


def _actor(args: argparse.Namespace) -> str:
    return str(args.operator) if getattr(args, "operator", None) else f"cli:{getpass.getuser()}"


def _read_password(args: argparse.Namespace) -> str | None:
    if not getattr(args, "password_stdin", False):
        return None
    return sys.stdin.readline().rstrip("\r\n")


# --- operators -----------------------------------------------------------------------------------


async def _with_sessions(work: Callable[[Any], Awaitable[Any]]) -> Any:
    from app.db import create_engine, create_sessionmaker

    engine = create_engine(Settings().database_url)
    try:
        return await _refusing(work(create_sessionmaker(engine)))
    finally:
        await engine.dispose()


async def _operators_create(args: argparse.Namespace) -> dict[str, Any]:
    from app.operators.service import create_operator, operator_json

    password = _read_password(args)

    async def work(sessions: Any) -> dict[str, Any]:
        operator, shown = await create_operator(
            sessions, args.email, args.role, password, actor=_actor(args), source=SOURCE
        )
        return {**operator_json(operator), "password": shown}

    created: dict[str, Any] = await _with_sessions(work)
    print("Keep the password now: it is stored hashed and cannot be shown again.", file=sys.stderr)
    return {key: created[key] for key in ("id", "email", "role", "password")}


async def _operators_list(args: argparse.Namespace) -> list[dict[str, Any]]:
    from app.operators.service import list_operators, operator_json

    async def work(sessions: Any) -> list[dict[str, Any]]:
        return [operator_json(operator) for operator in await list_operators(sessions)]

    listed: list[dict[str, Any]] = await _with_sessions(work)
    return listed


async def _operators_disable(args: argparse.Namespace) -> dict[str, Any]:
    from app.operators.service import disable_operator, operator_json

    async def work(sessions: Any) -> dict[str, Any]:
        operator = await disable_operator(sessions, args.email, actor=_actor(args), source=SOURCE)
        return operator_json(operator)

    disabled: dict[str, Any] = await _with_sessions(work)
    return disabled


async def _operators_reset_password(args: argparse.Namespace) -> dict[str, Any]:
    from app.operators.service import get_operator, reset_password

    password = _read_password(args)

    async def work(sessions: Any) -> dict[str, Any]:
        new = await reset_password(
            sessions, args.email, password, actor=_actor(args), source=SOURCE
        )
        operator = await get_operator(sessions, args.email)
        return {"id": operator.id, "email": operator.email, "password": new}

    reset: dict[str, Any] = await _with_sessions(work)
    return reset


# --- merchants ----------------------------------------------------------------------------------


async def _merchant_action(args: argparse.Namespace, action: str) -> Any:
    from app.merchants import admin
    from app.operators.service import operator_for_action

    async def work(sessions: Any) -> Any:
        operator = await operator_for_action(sessions, args.operator) if args.operator else None
        common: dict[str, Any] = {"actor": _actor(args), "source": SOURCE, "operator": operator}
        if action == "list":
            return [merchant.as_json() for merchant in await admin.list_merchants(sessions)]
        if action == "rotate-key":
            return await admin.rotate_api_key(
                sessions, args.merchant_id, args.grace_seconds, **common
            )
        if action == "rotate-secret":
            return await admin.rotate_webhook_secret(
                sessions, args.merchant_id, args.grace_seconds, **common
            )
        switch = admin.disable_merchant if action == "disable" else admin.enable_merchant
        return (await switch(sessions, args.merchant_id, **common)).as_json()

    return await _with_sessions(work)


def add_merchant_admin_commands(
    merchant_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``merchants list | rotate-key | rotate-secret | disable | enable`` (``create`` and
    ``update`` are the CLI's own)."""
    listing = merchant_commands.add_parser("list", help="every merchant (never its key or secret)")
    _operator_option(listing)
    listing.set_defaults(func=_run(partial(_merchant_action, action="list")), uses_database=True)
    for name, what in (
        ("rotate-key", "a new API key, printed once; the old one works for --grace-seconds"),
        ("rotate-secret", "a new webhook secret; deliveries are signed with both during the grace"),
    ):
        rotate = merchant_commands.add_parser(name, help=what)
        rotate.add_argument("merchant_id", metavar="ID")
        rotate.add_argument(
            "--grace-seconds",
            type=int,
            default=24 * 3600,
            help="how long the old one keeps working (default 86400; 0 = stops at once; "
            "at most 30 days)",
        )
        _operator_option(rotate)
        rotate.set_defaults(func=_run(partial(_merchant_action, action=name)), uses_database=True)
    for name, what in (
        ("disable", "refuse the merchant's API key (401 merchant_disabled); its events wait"),
        ("enable", "accept the merchant's key again; its waiting events go out"),
    ):
        switch = merchant_commands.add_parser(name, help=what)
        switch.add_argument("merchant_id", metavar="ID")
        _operator_option(switch)
        switch.set_defaults(func=_run(partial(_merchant_action, action=name)), uses_database=True)


def _operator_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--operator",
        metavar="EMAIL",
        required=required,
        help="the admin acting, for the audit log" + ("" if required else " (default: cli:<user>)"),
    )


# --- payments and events ----------------------------------------------------------------------


async def _with_runtime(work: Callable[[Any], Awaitable[Any]]) -> Any:
    from app.runtime import build_runtime

    runtime = await build_runtime(Settings())
    try:
        return await _refusing(work(runtime))
    finally:
        await runtime.aclose()


async def _payments_show(args: argparse.Namespace) -> dict[str, Any]:
    from app.operators.payments import payment_details

    async def work(runtime: Any) -> dict[str, Any]:
        details = await payment_details(runtime.sessions, args.payment_id, timeline=args.timeline)
        if details is None:
            raise Refused(f"no payment {args.payment_id}")
        return details

    shown: dict[str, Any] = await _with_runtime(work)
    return shown


async def _payments_list(args: argparse.Namespace) -> list[dict[str, Any]]:
    from app.operators.payments import list_payments

    async def work(runtime: Any) -> list[dict[str, Any]]:
        return await list_payments(
            runtime.sessions, status=args.status, merchant_id=args.merchant, limit=args.limit
        )

    listed: list[dict[str, Any]] = await _with_runtime(work)
    return listed


async def _payments_resolve(args: argparse.Namespace) -> dict[str, Any]:
    from app.operators.payments import payment_details
    from app.operators.resolution import resolve_payment

    async def work(runtime: Any) -> dict[str, Any]:
        await resolve_payment(
            runtime,
            args.payment_id,
            status=args.status,
            note=args.note,
            operator_email=args.operator,
            source=SOURCE,
        )
        details = await payment_details(runtime.sessions, args.payment_id)
        assert details is not None
        return details

    resolved: dict[str, Any] = await _with_runtime(work)
    return resolved


async def _events_redeliver(args: argparse.Namespace) -> dict[str, Any]:
    from app.events.schemas import EventOut
    from app.operators.actions import Acting, NoSuchObject, redeliver_event

    async def work(runtime: Any) -> dict[str, Any]:
        try:
            queued = await redeliver_event(
                runtime, args.event_id, Acting(operator=None, actor=_actor(args), source=SOURCE)
            )
        except NoSuchObject as missing:
            raise Refused(str(missing)) from None
        return EventOut.of(queued.event, list(queued.attempts)).model_dump(mode="json")

    redelivered: dict[str, Any] = await _with_runtime(work)
    return redelivered


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``operators``, ``payments`` and ``events``."""
    operators = commands.add_parser("operators", help="the people who run the gateway")
    operator_commands = operators.add_subparsers(dest="operator_command", required=True)
    create = operator_commands.add_parser("create", help="a new operator; its password once")
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=["admin", "viewer"], default="viewer")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    create.set_defaults(func=_run(_operators_create), uses_database=True)
    listing = operator_commands.add_parser("list", help="every operator (never a password)")
    listing.set_defaults(func=_run(_operators_list), uses_database=True)
    disable = operator_commands.add_parser("disable", help="no more logins or actions")
    disable.add_argument("email", metavar="EMAIL")
    disable.set_defaults(func=_run(_operators_disable), uses_database=True)
    reset = operator_commands.add_parser("reset-password", help="a new password, printed once")
    reset.add_argument("email", metavar="EMAIL")
    reset.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    reset.set_defaults(func=_run(_operators_reset_password), uses_database=True)

    payments = commands.add_parser("payments", help="look at payments; resolve what needs review")
    payment_commands = payments.add_subparsers(dest="payment_command", required=True)
    show = payment_commands.add_parser("show", help="one payment, its refunds and events")
    show.add_argument("payment_id", metavar="ID")
    show.add_argument("--timeline", action="store_true", help="everything that happened to it")
    show.set_defaults(func=_run(_payments_show), uses_database=True)
    listing = payment_commands.add_parser("list", help="payments, newest first")
    listing.add_argument(
        "--status", choices=["pending", "successful", "failed", "expired", "needs_review"]
    )
    listing.add_argument("--merchant", metavar="ID")
    listing.add_argument(
        "--limit", type=int, default=50, choices=range(1, MAX_LIST + 1), metavar=f"1..{MAX_LIST}"
    )
    listing.set_defaults(func=_run(_payments_list), uses_database=True)
    resolve = payment_commands.add_parser(
        "resolve", help="settle a needs_review payment by hand, with a note; emits its event"
    )
    resolve.add_argument("payment_id", metavar="ID")
    resolve.add_argument("--status", required=True, choices=["successful", "failed"])
    resolve.add_argument("--note", required=True, help="why (at least 10 characters)")
    _operator_option(resolve, required=True)
    resolve.set_defaults(func=_run(_payments_resolve), uses_database=True)

    events = commands.add_parser("events", help="storefront events")
    event_commands = events.add_subparsers(dest="event_command", required=True)
    redeliver = event_commands.add_parser("redeliver", help="send an event once more")
    redeliver.add_argument("event_id", metavar="ID")
    _operator_option(redeliver)
    redeliver.set_defaults(func=_run(_events_redeliver), uses_database=True)
