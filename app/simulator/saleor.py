"""A small fake Saleor: enough of one to install the gateway as a payment app and drive a
checkout through it, with no Saleor and no internet.

It does what Saleor does at the wire: its own RSA key pair and ``/.well-known/jwks.json``;
a GraphQL endpoint that answers ``{ app { id } }`` for the token it issued and records
``transactionEventReport`` calls (de-duplicated on pspReference, amount and type, as Saleor
does); and webhooks signed as a detached-payload RS256 JWS with ``Saleor-Signature``. The
``/demo/…`` routes let a person (or ``momo-gateway dev``) install the app and pay.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import api_jws
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.saleor.events import SaleorEvent

APP_ID = base64.b64encode(b"App:1").decode()


def global_id(kind: str) -> str:
    """An id shaped like Saleor's: base64 of ``Type:uuid`` (longer than 64, with ``=``)."""
    return base64.b64encode(f"{kind}:{uuid.uuid4()}".encode()).decode()


@dataclass
class Report:
    transaction_id: str
    type: str
    amount: str
    psp_reference: str
    message: str


@dataclass
class FakeSaleor:
    """One Saleor instance; ``api_url`` is set once it is served (its GraphQL endpoint)."""

    api_url: str = ""
    kid: str = "fake-saleor-1"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    app_token: str = field(default_factory=lambda: "saleor-app-token-" + secrets.token_hex(16))
    reports: list[Report] = field(default_factory=list)
    target_urls: dict[str, str] = field(default_factory=dict)  # event → the app's URL for it
    jwks_requests: int = 0

    # --- what Saleor publishes and answers ------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def graphql(self, authorization: str, request: dict[str, Any]) -> dict[str, Any]:
        if authorization != f"Bearer {self.app_token}":
            return {"errors": [{"message": "Invalid token.", "code": "UNAUTHORIZED"}]}
        query = str(request.get("query", ""))
        if "transactionEventReport" in query:
            return {"data": {"transactionEventReport": self._report(request.get("variables"))}}
        if "app" in query:
            return {"data": {"app": {"id": APP_ID}}}
        return {"errors": [{"message": "Not supported by the fake Saleor."}]}

    def _report(self, variables: Any) -> dict[str, Any]:
        v = variables if isinstance(variables, dict) else {}
        report = Report(
            transaction_id=str(v.get("id")),
            type=str(v.get("type")),
            amount=str(v.get("amount")),
            psp_reference=str(v.get("pspReference")),
            message=str(v.get("message") or ""),
        )
        for seen in self.reports:
            if (seen.psp_reference, seen.type) == (report.psp_reference, report.type):
                if seen.amount != report.amount:
                    error = {"field": "amount", "code": "INCORRECT_DETAILS", "message": "amount"}
                    return {"alreadyProcessed": False, "transactionEvent": None, "errors": [error]}
                return {"alreadyProcessed": True, "transactionEvent": {"id": "seen"}, "errors": []}
        self.reports.append(report)
        return {"alreadyProcessed": False, "transactionEvent": {"id": "ev"}, "errors": []}

    def reported(self, psp_reference: str, type_: str) -> list[Report]:
        return [r for r in self.reports if (r.psp_reference, r.type) == (psp_reference, type_)]

    # --- what Saleor sends --------------------------------------------------------------------
    def sign(
        self, body: bytes, key: rsa.RSAPrivateKey | None = None, kid: str | None = None
    ) -> str:
        return api_jws.encode(
            body,
            key=key or self.key,
            algorithm="RS256",
            headers={"kid": kid or self.kid, "crit": ["b64"]},
            is_payload_detached=True,
        )

    def event_body(self, event: SaleorEvent, **fields: Any) -> dict[str, Any]:
        """A subscription payload for ``event``, addressed to the installed app."""
        return {
            "__typename": event.spec.typename,
            "issuedAt": datetime.now(UTC).isoformat(),
            "recipient": {"id": APP_ID},
            **fields,
        }

    def headers(self, event: SaleorEvent, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Saleor-Event": event.value.lower(),
            "Saleor-Domain": httpx.URL(self.api_url).host,
            "Saleor-Api-Url": self.api_url,
            "Saleor-Signature": self.sign(body),
        }

    async def install(self, http: httpx.AsyncClient, manifest_url: str) -> httpx.Response:
        """What Saleor does on "Install app": read the manifest, send the token."""
        manifest = (await http.get(manifest_url)).json()
        for hook in manifest["webhooks"]:
            for event in hook["syncEvents"]:
                self.target_urls[event] = hook["targetUrl"]
        return await http.post(
            manifest["tokenTargetUrl"],
            json={"auth_token": self.app_token},
            headers={"saleor-api-url": self.api_url},
        )

    async def send(
        self, http: httpx.AsyncClient, event: SaleorEvent, payload: dict[str, Any]
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await http.post(
            self.target_urls[event.value], content=body, headers=self.headers(event, body)
        )

    # --- a checkout, as a storefront drives it through Saleor ----------------------------------
    async def initialize(
        self,
        http: httpx.AsyncClient,
        *,
        amount: float | str,
        phone_number: str,
        provider: str | None = None,
        transaction_id: str | None = None,
        currency: str = "UGX",
    ) -> tuple[str, httpx.Response]:
        """``transactionInitialize``: returns the transaction id and the app's answer."""
        transaction_id = transaction_id or global_id("TransactionItem")
        data: dict[str, Any] = {"phone_number": phone_number}
        if provider:
            data["provider"] = provider
        payload = self.event_body(
            SaleorEvent.TRANSACTION_INITIALIZE_SESSION,
            idempotencyKey=secrets.token_hex(16),
            data=data,
            merchantReference=transaction_id,
            action={"amount": amount, "currency": currency, "actionType": "CHARGE"},
            transaction={"id": transaction_id, "pspReference": ""},
            sourceObject={"__typename": "Checkout", "id": global_id("Checkout")},
        )
        return transaction_id, await self.send(
            http, SaleorEvent.TRANSACTION_INITIALIZE_SESSION, payload
        )

    async def refund(
        self, http: httpx.AsyncClient, *, transaction_id: str, psp_reference: str, amount: Any
    ) -> httpx.Response:
        payload = self.event_body(
            SaleorEvent.TRANSACTION_REFUND_REQUESTED,
            action={"amount": amount, "currency": "UGX", "actionType": "REFUND"},
            transaction={"id": transaction_id, "pspReference": psp_reference},
            grantedRefund=None,
        )
        return await self.send(http, SaleorEvent.TRANSACTION_REFUND_REQUESTED, payload)


def create_fake_saleor_app(saleor: FakeSaleor) -> Starlette:
    """The fake served over HTTP. ``/demo/…`` drive it by hand (see the README)."""

    async def jwks(request: Request) -> JSONResponse:
        saleor.jwks_requests += 1
        return JSONResponse(saleor.jwks())

    async def graphql(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"errors": [{"message": "Body is not JSON."}]}, status_code=400)
        return JSONResponse(saleor.graphql(request.headers.get("authorization", ""), body))

    async def demo_install(request: Request) -> JSONResponse:
        manifest_url = (await request.json())["manifest_url"]
        async with httpx.AsyncClient(timeout=20) as http:
            answer = await saleor.install(http, manifest_url)
        return JSONResponse({"status": answer.status_code, "answer": answer.json()})

    async def demo_checkout(request: Request) -> JSONResponse:
        order = await request.json()
        async with httpx.AsyncClient(timeout=20) as http:
            transaction_id, answer = await saleor.initialize(
                http,
                amount=order.get("amount", 50000),
                phone_number=order["phone_number"],
                provider=order.get("provider"),
            )
        return JSONResponse({"transaction_id": transaction_id, "app_answer": answer.json()})

    async def demo_reports(request: Request) -> JSONResponse:
        return JSONResponse([report.__dict__ for report in saleor.reports])

    return Starlette(
        routes=[
            Route("/.well-known/jwks.json", jwks),
            Route("/graphql/", graphql, methods=["POST"]),
            Route("/demo/install", demo_install, methods=["POST"]),
            Route("/demo/checkout", demo_checkout, methods=["POST"]),
            Route("/demo/reports", demo_reports),
        ]
    )
