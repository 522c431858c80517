"""Provider callback routes fuzzed over real HTTP (uvicorn + PostgreSQL).

tests/webhooks/test_callbacks.py fuzzes bodies in-process on SQLite. This goes through the
socket and the real database, and varies what that one does not: the per-payment MTN route's
path segments, methods, content types, signatures and forwarded-for headers, and bodies shaped
like each provider's that name real payments, so the fuzz reaches the inbox and
verify-by-fetch, not only the parser. Whatever arrives, the gateway answers below 500, and every
refusal is problem+json with a code.
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
from tests.fuzz.live import LiveGateway

MTN = "/api/webhooks/mtn-momo/"
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
    return made


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


def any_bytes() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())


@st.composite
def callbacks(
    draw: st.DrawFn, targets: dict[str, Any], secret: bytes
) -> tuple[str, str, bytes, dict[str, str]]:
    mtn, airtel = targets["mtn_momo"], targets["airtel_money"]
    reference = mtn["provider_reference"]
    route = draw(st.sampled_from(["mtn", "mtn-bare", "mtn-payment", "mtn-fuzzed-path", "airtel"]))
    if route == "mtn":
        url, body = MTN, draw(mtn_bodies(reference, mtn["order_id"]) | any_bytes())
    elif route == "mtn-bare":
        url, body = MTN.rstrip("/"), draw(mtn_bodies(reference, mtn["order_id"]) | any_bytes())
    elif route == "mtn-payment":
        token = draw(st.sampled_from([callback_token(secret, reference), "forged"]))
        url = f"{MTN}{reference}/{token}"
        body = draw(mtn_bodies(reference, mtn["order_id"]) | any_bytes())
    elif route == "mtn-fuzzed-path":
        segment = text.filter(lambda s: s not in ("", ".", "..")).map(lambda s: quote(s, safe=""))
        url = f"{MTN}{draw(segment)}/{draw(segment)}"
        body = draw(any_bytes())
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


def test_fuzzed_callbacks_over_http_never_produce_a_5xx(live_gateway, targets):
    failures: dict[str, str] = {}
    secret = live_gateway.runtime.callback_secret

    with httpx.Client(base_url=live_gateway.url, timeout=30) as client:

        @settings(
            max_examples=300,
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
                    f"no answer ({type(exc).__name__}) on {method} {url.split('/')[3]}",
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
                    f"{response.status_code} {problem} on {method} {url.split('/')[3]}",
                    f"{method} {url} headers={headers} body={body[:200]!r}"
                    f" -> {response.text[:200]}",
                )

        check()

    assert failures == {}, "\n".join(f"{k}\n  {v}" for k, v in failures.items())


def test_large_and_empty_callbacks_are_refused_cleanly(live_gateway, targets):
    reference = targets["mtn_momo"]["provider_reference"]
    token = callback_token(live_gateway.runtime.callback_secret, reference)
    with httpx.Client(base_url=live_gateway.url, timeout=30) as client:
        for url in (MTN, AIRTEL, f"{MTN}{reference}/{token}"):
            too_big = client.put(url, content=b'{"a": "' + b"x" * 70_000 + b'"}')
            assert too_big.status_code == 413, too_big.text
            assert too_big.json()["code"] == "payload_too_large"
            empty = client.post(url, content=b"")
            assert 400 <= empty.status_code < 500, empty.text
