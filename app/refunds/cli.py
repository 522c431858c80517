"""``momo-gateway refunds create``: an operator refunds a payment from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.config import Settings
from app.errors import AppError

EXIT_REFUSED = 2


def add_refunds_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    refunds = subparsers.add_parser("refunds", help="give money back for a successful payment")
    commands = refunds.add_subparsers(dest="refund_command", required=True)
    create = commands.add_parser(
        "create",
        help="refund a payment (all that is left, or --amount); print the refund as JSON",
        description="Refund a successful payment through its provider, under the same rules as "
        "POST /v1/refunds. A pending MTN refund is settled by the worker (or `serve`'s "
        "in-process jobs) like any other; `refund.*` events go to the storefront.",
    )
    create.add_argument("--payment", required=True, metavar="PAY_ID")
    create.add_argument("--amount", help="in the payment's currency, e.g. 20000 (default: all)")
    create.add_argument("--reason", help="shown to the payer where the provider allows it")
    create.set_defaults(func=_create, uses_database=True)
    resolve = commands.add_parser(
        "resolve", help="settle a needs_review refund by hand, with a note; emits its event"
    )
    resolve.add_argument("refund_id", metavar="ID")
    resolve.add_argument("--status", required=True, choices=["succeeded", "failed"])
    resolve.add_argument("--note", required=True, help="why (at least 10 characters)")
    resolve.add_argument("--operator", required=True, metavar="EMAIL", help="the admin acting")
    resolve.set_defaults(func=_resolve, uses_database=True)


def _resolve(args: argparse.Namespace) -> int:
    return asyncio.run(_resolve_refund(args.refund_id, args.status, args.note, args.operator))


async def _resolve_refund(refund_id: str, status: str, note: str, operator: str) -> int:
    from app.operators.resolution import NothingToResolve, ResolutionRefused, resolve_refund
    from app.operators.service import OperatorNotAllowed
    from app.refunds.schemas import refund_json
    from app.runtime import build_runtime

    runtime = await build_runtime(Settings())
    try:
        resolved = await resolve_refund(
            runtime, refund_id, status=status, note=note, operator_email=operator, source="cli"
        )
    except (NothingToResolve, ResolutionRefused, OperatorNotAllowed) as exc:
        print(f"error: {str(exc).strip(chr(39))}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        await runtime.aclose()
    print(json.dumps(refund_json(resolved), indent=2))
    return 0


def _create(args: argparse.Namespace) -> int:
    return asyncio.run(_create_refund(args.payment, args.amount, args.reason))


async def _create_refund(payment_id: str, amount: str | None, reason: str | None) -> int:
    from app.payments import repository as payments_repository
    from app.refunds.schemas import REASON_MAX_LENGTH, refund_json
    from app.refunds.service import NewRefund
    from app.runtime import build_runtime

    if reason is not None and len(reason) > REASON_MAX_LENGTH:
        print(f"error: --reason is at most {REASON_MAX_LENGTH} characters", file=sys.stderr)
        return EXIT_REFUSED
    runtime = await build_runtime(Settings())
    try:
        async with runtime.sessions() as session:
            payment = await payments_repository.get(session, payment_id)
        if payment is None:
            print(f"error: no payment {payment_id}", file=sys.stderr)
            return EXIT_REFUSED
        new = NewRefund(
            payment_id=payment.id,
            amount=amount,
            reason=reason,
            metadata={},
            audit_detail="created from the command line",
        )
        try:
            refund = await runtime.refunds.create_refund(payment.merchant_id, new)
        except AppError as exc:
            print(f"error: {exc.code}: {exc.detail}", file=sys.stderr)
            return EXIT_REFUSED
        print(json.dumps(refund_json(refund), indent=2))
        return 0
    finally:
        await runtime.aclose()
