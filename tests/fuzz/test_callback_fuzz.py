"""Provider callback routes fuzzed over real HTTP (uvicorn + PostgreSQL).

tests/webhooks/test_callbacks.py fuzzes bodies in-process on SQLite. This goes through the
socket and the real database, and varies what that one does not: the per-payment MTN route's
path segments, methods, content types, signatures and forwarded-for headers, and bodies shaped
like each provider's that name real payments, so the fuzz reaches the inbox and
verify-by-fetch, not only the parser. The per-refund MTN route
(``/api/webhooks/mtn-momo/refunds/{reference}/{token}``) is aimed at a real pending refund and
a settled one, with their valid tokens and forged ones (a payment's token among them), fuzzed
path segments, bodies shaped like MTN's refund status and garbage. Whatever arrives, the gateway
answers below 500, and every refusal is problem+json with a code.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.callback_tokens import callback_token
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.fuzz.live import LiveGateway

MTN = "/api/webhooks/mtn-momo/"
MTN_REFUNDS = "/api/webhooks/mtn-momo/refunds/"
AIRTEL = "/api/webhooks/airtel-money/"

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
# NUL is what PostgreSQL cannot store: make sure the fuzz tries it often, not once in a while.
text = text | st.builds(lambda a, b: f"{a}\x00{b}", text, text)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def targets(live_gateway: LiveGateway) -> dict[str, Any]:
    """Two real payments (one per provider) for the fuzz to aim at."""
    made = {}
    for provider, phone in (("mtn_momo", "0772123456"), ("airtel_money", "0700123456")):
        response = httpx.post(
            f"{live_gateway.url}/v1/payments",
            json={"order_id": f"FUZZ-{provider}", "amount": "1000", "phone_number": phone},
            headers=live_gateway.auth,
            timeout=30,
        )
        assert response.status_code in (201, 409), response.text
        listed = httpx.get(
            f"{live_gateway.url}/v1/payments",
            params={"order_id": f"FUZZ-{provider}"},
            headers=live_gateway.auth,
            timeout=30,
        ).json()["data"][0]
        made[provider] = listed
    made.update(refund_targets(live_gateway))
    return made


def refund_targets(gateway: LiveGateway) -> dict[str, Any]:
    """An MTN payment the provider confirmed, with two refunds of it: one pending (MTN keeps
    answering PENDING for it), one settled by its own callback before the fuzz starts."""
    auth, url = gateway.auth, gateway.url
    created = httpx.post(
        f"{url}/v1/payments",
        json={"order_id": "FUZZ-refunds", "amount": "5000", "phone_number": "0772123457"},
        headers=auth,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    mtn = gateway.providers[Provider.MTN_MOMO]
    mtn.status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=5000,
        currency="UGX",
        provider_transaction_id="fuzz-refunds-txn",
    )
    try:
        refreshed = httpx.post(
            f"{url}/v1/payments/{payment['id']}/refresh", headers=auth, timeout=30
        )
    finally:
        mtn.status = None
    assert refreshed.json()["status"] == "successful", refreshed.text

    def refund(amount: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{url}/v1/refunds",
            json={"payment_id": payment["id"], "amount": amount, "reason": "Fuzz"},
            headers=auth,
            timeout=30,
        )
        # 422 refunds_not_configured here means the fuzz would never reach a refund.
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "pending", answer.text
        made: dict[str, Any] = answer.json()
        return made

    pending, settled = refund("2000"), refund("1000")
    refunds = gateway.refunds[Provider.MTN_MOMO]
    refunds.status = StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=1000,
        currency="UGX",
        provider_transaction_id="fuzz-refund-txn",
    )
    reference = settled["provider_reference"]
    token = callback_token(gateway.runtime.callback_secret, reference)
    try:
        callback = httpx.put(
            f"{url}{MTN_REFUNDS}{reference}/{token}",
            content=json.dumps({"status": "SUCCESSFUL", "amount": "1000"}).encode(),
            timeout=30,
        )
    finally:
        refunds.status = None
    assert callback.status_code == 200, callback.text
    settled = httpx.get(f"{url}/v1/refunds/{settled['id']}", headers=auth, timeout=30).json()
    assert settled["status"] == "succeeded", settled
    assert httpx.get(f"{url}/v1/refunds/{pending['id']}", headers=auth, timeout=30).json()[
        "status"
    ] == ("pending")
    return {"refunded_payment": payment, "mtn_refund": pending, "mtn_refund_settled": settled}


def mtn_bodies(reference: str, order_id: str) -> st.SearchStrategy[bytes]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "referenceId": st.sampled_from([reference, "not-a-reference"]) | text,
            "externalId": st.sampled_from([order_id]) | text,
            "status": st.sampled_from(["SUCCESSFUL", "FAILED", "PENDING", "", "successful"])
            | json_values,
            "financialTransactionId": text | st.integers(),
            "amount": st.sampled_from(["1000", "1000.00", "-1", "1e309", "NaN"]) | json_values,
            "currency": st.sampled_from(["UGX", "EUR", ""]) | json_values,
            "reason": text | st.fixed_dictionaries({"code": text, "message": text}) | json_values,
            "payer": json_values,
        },
    )
    return fields.map(lambda body: json.dumps(body).encode())


def mtn_refund_bodies(refund: dict[str, Any], order_id: str) -> st.SearchStrategy[bytes]:
    """Shaped like MTN's refund status (``GET /disbursement/v1_0/refund/{ref}``), which is what
    a refund callback carries."""
    fields = st.fixed_dictionaries(
        {},
        optional={
            "amount": st.sampled_from([refund["amount"], "5000", "0", "-1", "1e309", "NaN"])
            | json_values,
            "currency": st.sampled_from(["UGX", "EUR", ""]) | json_values,
            "financialTransactionId": text | st.integers(),
            "externalId": st.sampled_from([order_id]) | text,
            "payee": st.fixed_dictionaries(
                {},
                optional={
                    "partyIdType": st.sampled_from(["MSISDN", "PARTY_CODE"]) | text,
                    "partyId": st.sampled_from(["256772123457"]) | text,
                },
            )
            | json_values,
            "payerMessage": text,
            "payeeNote": text,
            "status": st.sampled_from(["SUCCESSFUL", "FAILED", "PENDING", "", "REJECTED"])
            | json_values,
            "reason": st.sampled_from(["NOT_ENOUGH_FUNDS", "PAYEE_NOT_FOUND", "NOT_ALLOWED"])
            | text
            | st.fixed_dictionaries({"code": text, "message": text})
            | json_values,
            "referenceId": st.sampled_from([refund["provider_reference"]]) | text,
        },
    )
    return fields.map(lambda body: json.dumps(body).encode())


def airtel_bodies(reference: str) -> st.SearchStrategy[bytes]:
    transaction = st.fixed_dictionaries(
        {},
        optional={
            "id": st.sampled_from([reference]) | text | st.integers(),
            "status_code": st.sampled_from(["TS", "TF", "TA", "TIP", "TE"]) | json_values,
            "message": text,
            "airtel_money_id": text | st.none(),
        },
    )
    body = st.fixed_dictionaries(
        {"transaction": transaction | json_values}, optional={"hash": text | json_values}
    )
    return body.map(lambda value: json.dumps(value).encode())


path_segments = text.filter(lambda s: s not in ("", ".", "..")).map(lambda s: quote(s, safe=""))


def any_bytes() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())


@st.composite
def callbacks(
    draw: st.DrawFn, targets: dict[str, Any], secret: bytes
) -> tuple[str, str, bytes, dict[str, str]]:
    mtn, airtel = targets["mtn_momo"], targets["airtel_money"]
    reference = mtn["provider_reference"]
    route = draw(
        st.sampled_from(
            [
                "mtn",
                "mtn-bare",
                "mtn-payment",
                "mtn-fuzzed-path",
                "airtel",
                "mtn-refund",
                "mtn-refund",  # twice: the new route gets its share of the examples
                "mtn-refund-fuzzed-path",
            ]
        )
    )
    if route == "mtn":
        url, body = MTN, draw(mtn_bodies(reference, mtn["order_id"]) | any_bytes())
    elif route == "mtn-bare":
        url, body = MTN.rstrip("/"), draw(mtn_bodies(reference, mtn["order_id"]) | any_bytes())
    elif route == "mtn-payment":
        token = draw(st.sampled_from([callback_token(secret, reference), "forged"]))
        url = f"{MTN}{reference}/{token}"
        body = draw(mtn_bodies(reference, mtn["order_id"]) | any_bytes())
    elif route == "mtn-fuzzed-path":
        url = f"{MTN}{draw(path_segments)}/{draw(path_segments)}"
        body = draw(any_bytes())
    elif route == "mtn-refund":
        refund = draw(st.sampled_from([targets["mtn_refund"], targets["mtn_refund_settled"]]))
        refund_reference = refund["provider_reference"]
        # The refund's reference with its own token, a forged one, and a payment's reference
        # and token (valid on the payment route, not here) — on either route.
        path_reference, token = draw(
            st.sampled_from(
                [
                    (refund_reference, callback_token(secret, refund_reference)),
                    (refund_reference, "forged"),
                    (refund_reference, callback_token(secret, reference)),
                    (reference, callback_token(secret, reference)),
                    (refund_reference.upper(), callback_token(secret, refund_reference)),
                ]
            )
        )
        base = draw(st.sampled_from([MTN_REFUNDS, MTN_REFUNDS, MTN]))
        url = f"{base}{path_reference}/{token}"
        body = draw(
            mtn_refund_bodies(refund, targets["refunded_payment"]["order_id"])
            | mtn_bodies(reference, mtn["order_id"])
            | any_bytes()
        )
    elif route == "mtn-refund-fuzzed-path":
        refund_reference = targets["mtn_refund"]["provider_reference"]
        first = draw(st.sampled_from([refund_reference]) | path_segments)
        url = f"{MTN_REFUNDS}{first}/{draw(path_segments)}"
        body = draw(mtn_refund_bodies(targets["mtn_refund"], "FUZZ-refunds") | any_bytes())
    else:
        url, body = (
            draw(st.sampled_from([AIRTEL, AIRTEL.rstrip("/")])),
            draw(airtel_bodies(airtel["provider_reference"]) | any_bytes()),
        )
    headers = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "Content-Type": st.sampled_from(
                    ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
                ),
                "X-Signature": st.sampled_from(["", "00" * 32, "zz"])
                | st.text(alphabet="0123456789abcdef", max_size=64),
                "X-Forwarded-For": st.sampled_from(
                    ["41.202.207.5", "1.2.3.4, 127.0.0.1", "not-an-ip", "::1"]
                ),
            },
        )
    )
    method = draw(st.sampled_from(["PUT", "POST"]))
    return method, url, body, headers


def route_of(url: str) -> str:
    """Which route a fuzzed URL aims at, to group failures by."""
    if url.startswith(MTN_REFUNDS):
        return "mtn-momo/refunds"
    return url.split("/")[3]


def test_fuzzed_callbacks_over_http_never_produce_a_5xx(live_gateway, targets):
    failures: dict[str, str] = {}
    secret = live_gateway.runtime.callback_secret

    with httpx.Client(base_url=live_gateway.url, timeout=30) as client:

        @settings(
            max_examples=400,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=callbacks(targets, secret))
        def check(request: tuple[str, str, bytes, dict[str, str]]) -> None:
            method, url, body, headers = request
            try:
                response = client.request(method, url, content=body, headers=headers)
            except httpx.TransportError as exc:
                failures.setdefault(
                    f"no answer ({type(exc).__name__}) on {method} {route_of(url)}",
                    f"{method} {url} headers={headers} body={body[:200]!r}",
                )
                return
            problem = None
            if response.status_code >= 500:
                problem = "server error"
            elif response.status_code >= 400:
                content_type = response.headers.get("content-type", "")
                if not content_type.startswith("application/problem+json"):
                    problem = f"refusal as {content_type!r}"
                elif not response.json().get("code"):
                    problem = "problem without a code"
            if problem is not None:
                failures.setdefault(
                    f"{response.status_code} {problem} on {method} {route_of(url)}",
                    f"{method} {url} headers={headers} body={body[:200]!r}"
                    f" -> {response.text[:200]}",
                )

        check()

    assert failures == {}, "\n".join(f"{k}\n  {v}" for k, v in failures.items())
    # The fuzz got past the token check to the refund service's verify-by-fetch.
    asked = live_gateway.refunds[Provider.MTN_MOMO].status_calls
    assert targets["mtn_refund"]["provider_reference"] in asked


def test_large_and_empty_callbacks_are_refused_cleanly(live_gateway, targets):
    reference = targets["mtn_momo"]["provider_reference"]
    token = callback_token(live_gateway.runtime.callback_secret, reference)
    refund_reference = targets["mtn_refund"]["provider_reference"]
    refund_token = callback_token(live_gateway.runtime.callback_secret, refund_reference)
    with httpx.Client(base_url=live_gateway.url, timeout=30) as client:
        for url in (
            MTN,
            AIRTEL,
            f"{MTN}{reference}/{token}",
            f"{MTN_REFUNDS}{refund_reference}/{refund_token}",
        ):
            too_big = client.put(url, content=b'{"a": "' + b"x" * 70_000 + b'"}')
            assert too_big.status_code == 413, too_big.text
            assert too_big.json()["code"] == "payload_too_large"
            empty = client.post(url, content=b"")
            assert 400 <= empty.status_code < 500, empty.text


def test_fuzzed_callbacks_leave_the_refunds_as_the_provider_says(live_gateway, targets):
    """However many forged or well-formed callbacks arrived, the refunds are what MTN (the fake,
    still answering PENDING) says: the pending one pending, the settled one succeeded, and the
    payment's refunded total that one refund."""
    with httpx.Client(base_url=live_gateway.url, headers=live_gateway.auth, timeout=30) as client:
        pending = client.get(f"/v1/refunds/{targets['mtn_refund']['id']}").json()
        settled = client.get(f"/v1/refunds/{targets['mtn_refund_settled']['id']}").json()
        payment = client.get(f"/v1/payments/{targets['refunded_payment']['id']}").json()
    assert (pending["status"], settled["status"]) == ("pending", "succeeded")
    assert payment["amount_refunded"] == "1000"
