"""Answering Saleor's payment webhooks with the gateway's payments and refunds.

A Saleor transaction becomes a gateway payment made exactly as ``POST /v1/payments`` makes one
(same checks, Saleor's idempotency key as the Idempotency-Key), for the installation's merchant.
The first answer is always ``CHARGE_ACTION_REQUIRED``: the money has not moved until the payer
approves on their phone, and a checkout must not look paid before then. The outcome reaches
Saleor later as a ``transactionEventReport`` (``app.saleor.reporting``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.db import utcnow
from app.errors import AppError
from app.idempotency import request_fingerprint
from app.idempotency_http import IdempotentCreation, create_idempotently
from app.identifiers import is_identifier
from app.merchants.models import Merchant
from app.money import parse_amount
from app.payments.domain import PaymentStatus
from app.payments.models import Payment
from app.payments.schemas import CreatePaymentRequest, PaymentOut
from app.payments.validation import validate_new_payment
from app.phone import mask
from app.providers import registry
from app.refunds.models import Refund
from app.refunds.schemas import RefundOut
from app.refunds.service import NewRefund
from app.runtime import Runtime
from app.saleor.events import MESSAGE_LIMIT, TRANSACTION_ID_KEY, SaleorEvent
from app.saleor.models import SaleorInstallation
from app.sms.template import display_amount

Reply = dict[str, Any]
Created = TypeVar("Created")


class SaleorTransactions:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def answer(
        self,
        event: SaleorEvent,
        installation: SaleorInstallation,
        payload: dict[str, Any],
        raw_body: bytes,
    ) -> Reply:
        if event is SaleorEvent.PAYMENT_GATEWAY_INITIALIZE_SESSION:
            return self._gateway_data()
        if event in _MOVES_MONEY and await self._merchant_disabled(installation.merchant_id):
            # As the REST API refuses a disabled merchant's key: no new payment or refund.
            result = (
                "REFUND_FAILURE"
                if event is SaleorEvent.TRANSACTION_REFUND_REQUESTED
                else "CHARGE_FAILURE"
            )
            return _failure(result, "Mobile money payments are switched off for this shop.")
        if event is SaleorEvent.TRANSACTION_INITIALIZE_SESSION:
            return await self._initialize(installation.merchant_id, payload)
        if event is SaleorEvent.TRANSACTION_PROCESS_SESSION:
            return await self._process(installation.merchant_id, payload)
        if event is SaleorEvent.TRANSACTION_REFUND_REQUESTED:
            return await self._refund(installation.merchant_id, payload, raw_body)
        if event is SaleorEvent.TRANSACTION_CHARGE_REQUESTED:
            return _failure(
                "CHARGE_FAILURE",
                "Mobile money has no separate capture: a payment is charged when the payer "
                "approves it. Use the CHARGE transaction flow strategy for this channel.",
                psp_reference=_psp_reference(payload),
            )
        return _failure(
            "CANCEL_FAILURE",
            "A mobile money request cannot be cancelled once sent: it expires if the payer "
            "does not approve it, and Saleor is told then.",
            psp_reference=_psp_reference(payload),
        )

    # --- PAYMENT_GATEWAY_INITIALIZE_SESSION ----------------------------------------------------
    def _gateway_data(self) -> Reply:
        configured = [
            spec for spec in registry.registered() if spec.name in self._runtime.providers
        ]
        return {
            "data": {
                "providers": [
                    {
                        "id": spec.name,
                        "name": spec.title,
                        "currency": spec.settings_from(self._runtime.settings).currency,
                    }
                    for spec in configured
                ],
                "phone_number_required": True,
                "data_fields": {
                    "phone_number": "The payer's mobile number, e.g. 0772123456.",
                    "provider": "Optional, one of the ids above; else found from the number.",
                },
            }
        }

    # --- TRANSACTION_INITIALIZE_SESSION --------------------------------------------------------
    async def _initialize(self, merchant_id: str, payload: dict[str, Any]) -> Reply:
        if _action_type(payload) == "AUTHORIZATION":
            return _failure(
                "AUTHORIZATION_FAILURE",
                "Mobile money charges at once: use the CHARGE transaction flow strategy.",
            )
        transaction_id = _transaction_id(payload)
        if transaction_id is None:
            return _failure("CHARGE_FAILURE", "The event names no transaction.")
        try:
            request = _payment_request(payload, transaction_id)
        except _Refused as exc:
            return _failure("CHARGE_FAILURE", str(exc))
        body = request.model_dump(mode="json")
        key = payload.get("idempotencyKey")
        if not isinstance(key, str) or not key.strip():
            key = f"saleor:{transaction_id}"
        runtime = self._runtime

        async def create(hooks: IdempotentCreation[Payment] | None) -> Payment:
            new = validate_new_payment(request, runtime.payment_rules)
            return await runtime.payments.create_payment(merchant_id, new, hooks)

        ok, created = await self._as_the_api_would(
            merchant_id,
            key=key[:255],
            fingerprint=request_fingerprint("POST", "/v1/payments", body),
            create=create,
            render=lambda payment: PaymentOut.of(payment).model_dump(mode="json"),
        )
        return _charge_reply(created) if ok else _failure("CHARGE_FAILURE", _problem(created))

    # --- TRANSACTION_PROCESS_SESSION -----------------------------------------------------------
    async def _process(self, merchant_id: str, payload: dict[str, Any]) -> Reply:
        payment = await self._payment(merchant_id, _psp_reference(payload))
        if payment is None:
            return _failure("CHARGE_FAILURE", "No payment was started for this transaction.")
        return _charge_reply(PaymentOut.of(payment).model_dump(mode="json"))

    # --- TRANSACTION_REFUND_REQUESTED ----------------------------------------------------------
    async def _refund(self, merchant_id: str, payload: dict[str, Any], raw_body: bytes) -> Reply:
        payment_id = _psp_reference(payload)
        payment = await self._payment(merchant_id, payment_id)
        if payment is None:
            return _failure("REFUND_FAILURE", "No gateway payment has this pspReference.")
        try:
            amount = _action_amount(payload, payment.currency)
        except _Refused as exc:
            return _failure("REFUND_FAILURE", str(exc))
        metadata = {TRANSACTION_ID_KEY: (payment.payment_metadata or {}).get(TRANSACTION_ID_KEY)}
        body = {"payment_id": payment.id, "amount": amount, "metadata": metadata}
        new = NewRefund(
            payment_id=payment.id,
            amount=amount,
            reason="Refund requested in Saleor",
            metadata=metadata,
            audit_detail="created from Saleor",
        )
        runtime = self._runtime

        async def create(hooks: IdempotentCreation[Refund] | None) -> Refund:
            return await runtime.refunds.create_refund(merchant_id, new, hooks)

        # Saleor sends no idempotency key with a refund request: the same signed body again
        # (a retry, a replay) is the same request; a new request differs at least in issuedAt.
        key = "saleor-refund:" + hashlib.sha256(raw_body).hexdigest()
        ok, refund = await self._as_the_api_would(
            merchant_id,
            key=key,
            fingerprint=request_fingerprint("POST", "/v1/refunds", body),
            create=create,
            render=lambda refund: RefundOut.of(refund).model_dump(mode="json"),
        )
        return _refund_reply(refund) if ok else _failure("REFUND_FAILURE", _problem(refund))

    async def _as_the_api_would(
        self,
        merchant_id: str,
        *,
        key: str,
        fingerprint: str,
        create: Callable[[IdempotentCreation[Created] | None], Awaitable[Created]],
        render: Callable[[Created], dict[str, Any]],
    ) -> tuple[bool, dict[str, Any]]:
        """Create under an Idempotency-Key exactly as the REST API does (a repeat gets the
        first answer back). Returns (created, the object's JSON or the problem's)."""
        answer = await create_idempotently(
            self._runtime.idempotency,
            merchant_id=merchant_id,
            key=key,
            fingerprint=fingerprint,
            create=create,
            render=lambda created: JSONResponse(render(created), status_code=201),
        )
        decoded: dict[str, Any] = json.loads(bytes(answer.body))
        return answer.status_code < 400, decoded

    async def _merchant_disabled(self, merchant_id: str) -> bool:
        async with self._runtime.sessions() as session:
            merchant = await session.get(Merchant, merchant_id)
        return merchant is None or merchant.disabled_at is not None

    async def _payment(self, merchant_id: str, payment_id: str | None) -> Payment | None:
        if not is_identifier(payment_id):
            return None
        try:
            return await self._runtime.payments.get_payment(merchant_id, payment_id)
        except AppError:
            return None


_MOVES_MONEY = (
    SaleorEvent.TRANSACTION_INITIALIZE_SESSION,
    SaleorEvent.TRANSACTION_REFUND_REQUESTED,
)


# --- requests ----------------------------------------------------------------------------------
class _Refused(Exception):
    """What Saleor sent cannot become a payment or refund; the message says why."""


def _payment_request(payload: dict[str, Any], transaction_id: str) -> CreatePaymentRequest:
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("phone_number"), str):
        raise _Refused(
            'Send the payer\'s number in the transaction data: {"phone_number": "0772123456"}.'
        )
    action = payload.get("action") if isinstance(payload.get("action"), dict) else {}
    currency = action.get("currency") if isinstance(action, dict) else None
    if not isinstance(currency, str):
        raise _Refused("The event has no currency.")
    fields: dict[str, Any] = {
        "order_id": saleor_order_id(transaction_id),
        "currency": currency,
        "amount": _action_amount(payload, currency),
        "phone_number": data["phone_number"],
        "description": _description(payload),
        "metadata": {TRANSACTION_ID_KEY: transaction_id, **_source(payload)},
    }
    if data.get("provider") is not None:
        fields["provider"] = data["provider"]
    try:
        return CreatePaymentRequest.model_validate(fields)
    except ValidationError as exc:
        raise _Refused("; ".join(_validation_messages(exc))) from None


def saleor_order_id(transaction_id: str) -> str:
    """The gateway order id for a Saleor transaction: the id itself when it is a valid order id,
    else (Saleor's ids are base64 and may hold ``=`` and be longer than 64) a digest of it. The
    full id stays in the payment's metadata."""
    if is_identifier(transaction_id):
        return transaction_id
    return "saleor-" + hashlib.sha256(transaction_id.encode()).hexdigest()[:40]


def _action_amount(payload: dict[str, Any], currency: str) -> str:
    action = payload.get("action")
    raw = action.get("amount") if isinstance(action, dict) else None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _Refused("The event has no amount.")
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        raise _Refused(f"{str(raw)[:40]!r} is not an amount.") from None
    if not amount.is_finite() or amount <= 0:
        raise _Refused("The amount must be greater than zero.")
    # Saleor sends decimals (50000.0 for UGX 50,000): the gateway takes "50000".
    normalized = amount.normalize()
    text = f"{normalized:f}"
    if currency == "UGX" and normalized != normalized.to_integral_value():
        raise _Refused(f"UGX has no decimals: {text}.")
    return text


def _description(payload: dict[str, Any]) -> str | None:
    source = payload.get("sourceObject")
    if isinstance(source, dict) and source.get("__typename") == "Order":
        number = source.get("number")
        if isinstance(number, str | int) and str(number).isalnum():
            return f"Order {str(number)[:40]}"
    return None


def _source(payload: dict[str, Any]) -> dict[str, str]:
    """The Saleor checkout or order behind the transaction, for operators looking it up."""
    source = payload.get("sourceObject")
    if not isinstance(source, dict):
        return {}
    kind, source_id = source.get("__typename"), source.get("id")
    if kind in ("Checkout", "Order") and isinstance(source_id, str) and len(source_id) <= 200:
        return {f"saleor_{str(kind).lower()}_id": source_id}
    return {}


def _transaction_id(payload: dict[str, Any]) -> str | None:
    transaction = payload.get("transaction")
    value = transaction.get("id") if isinstance(transaction, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 255 else None


def _psp_reference(payload: dict[str, Any]) -> str | None:
    transaction = payload.get("transaction")
    value = transaction.get("pspReference") if isinstance(transaction, dict) else None
    return value if is_identifier(value) else None


def _action_type(payload: dict[str, Any]) -> str | None:
    action = payload.get("action")
    value = action.get("actionType") if isinstance(action, dict) else None
    return value if isinstance(value, str) else None


def _validation_messages(exc: ValidationError) -> list[str]:
    return [
        f"{error['loc'][0]}: {error['msg']}" if error["loc"] else error["msg"]
        for error in exc.errors()
    ]


# --- replies -----------------------------------------------------------------------------------
def _problem(problem: dict[str, Any]) -> str:
    detail = str(problem.get("detail") or problem.get("title") or "Refused.")
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        detail += " " + "; ".join(
            f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict)
        )
    return detail[:MESSAGE_LIMIT]


def _now() -> str:
    return _iso(utcnow())


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _failure(result: str, message: str, *, psp_reference: str | None = None) -> Reply:
    reply: Reply = {"result": result, "message": message[:MESSAGE_LIMIT], "time": _now()}
    if psp_reference is not None:
        reply["pspReference"] = psp_reference
    return reply


def _charge_reply(payment: dict[str, Any]) -> Reply:
    """A transaction session's answer for the payment as it now is (the API's JSON)."""
    status = PaymentStatus(payment["status"])
    amount, currency = payment["amount"], payment["currency"]
    reply: Reply = {
        "pspReference": payment["id"],
        "amount": amount,
        "time": _now(),
        "data": _storefront_data(payment),
        "paymentMethodDetails": {"type": "OTHER", "name": _provider_title(payment["provider"])},
    }
    if status is PaymentStatus.SUCCESSFUL:
        return {**reply, "result": "CHARGE_SUCCESS", "actions": ["REFUND"], "message": "Paid."}
    if status in (PaymentStatus.FAILED, PaymentStatus.EXPIRED):
        why = payment.get("failure_message") or payment.get("failure_code") or status.value
        message = f"The payment did not go through: {why}."[:MESSAGE_LIMIT]
        return {**reply, "result": "CHARGE_FAILURE", "actions": [], "message": message}
    pending_message = (
        f"Approve the payment of {_display(amount, currency)} on the phone "
        f"{mask(payment['phone_number'])}."
        if status is PaymentStatus.PENDING
        else "The payment is being checked with the provider; the result follows."
    )
    return {**reply, "result": "CHARGE_ACTION_REQUIRED", "actions": [], "message": pending_message}


def _storefront_data(payment: dict[str, Any]) -> dict[str, Any]:
    """What the storefront gets back in ``data``: enough to tell the payer what to do next."""
    status = payment["status"]
    return {
        "payment_id": payment["id"],
        "status": status,
        "provider": payment["provider"],
        "provider_name": _provider_title(payment["provider"]),
        "phone_number": mask(payment["phone_number"]),
        "amount": payment["amount"],
        "currency": payment["currency"],
        "next_step": "approve_on_phone" if status == PaymentStatus.PENDING else "none",
        "instructions": (
            f"Check the phone {mask(payment['phone_number'])} for the "
            f"{_provider_title(payment['provider'])} prompt and enter the PIN to approve "
            f"{_display(payment['amount'], payment['currency'])}."
            if status == PaymentStatus.PENDING
            else ""
        ),
    }


def _refund_reply(refund: dict[str, Any]) -> Reply:
    status = refund["status"]
    if status == "succeeded":
        return {
            "pspReference": refund["id"],
            "result": "REFUND_SUCCESS",
            "amount": refund["amount"],
            "time": _now(),
            "message": "Refunded.",
        }
    if status == "failed":
        why = refund.get("failure_message") or refund.get("failure_code") or "refused"
        return _failure("REFUND_FAILURE", f"The refund failed: {why}.", psp_reference=refund["id"])
    # Pending (or being checked): the outcome is reported when the provider confirms it.
    return {"pspReference": refund["id"]}


def _provider_title(name: str) -> str:
    return registry.spec_for(name).title if registry.is_registered(name) else name


def _display(amount: str, currency: str) -> str:
    return display_amount(parse_amount(amount, currency), currency)
