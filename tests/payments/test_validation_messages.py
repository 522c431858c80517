"""What a storefront developer reads when a request is refused: one entry per field, named as
the developer sent it (never pydantic's union branches or validator names), with a message that
says how to write the value in the payment's currency."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any, Literal

import httpx
import pytest
from fastapi import FastAPI, Query
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, StrictInt, StrictStr, ValidationError

from app.errors import field_name, install_error_handlers
from app.merchants.service import create_merchant
from app.payments.schemas import CreatePaymentRequest
from app.vocabulary import Provider
from tests.conftest import count_rows, make_settings, running_app
from tests.payments.test_create_payment import VALID, body

UGX_AMOUNT = "a whole number of shillings such as 50000"
DECIMAL_AMOUNT = "a plain decimal number such as 50000 or 12.50"

AMOUNT_MESSAGES = [
    # (amount as sent, code, message)
    ("abc", "invalid_amount", f"amount must be {UGX_AMOUNT}"),
    ("", "invalid_amount", f"amount must be {UGX_AMOUNT}"),
    ("1e5", "invalid_amount", f"amount must be {UGX_AMOUNT}"),
    ("1,000", "invalid_amount", f"amount must be {UGX_AMOUNT}"),
    ("-5", "invalid_amount", f"amount must be greater than zero: {UGX_AMOUNT}"),
    (-5, "invalid_amount", f"amount must be greater than zero: {UGX_AMOUNT}"),
    ("0", "invalid_amount", f"amount must be greater than zero: {UGX_AMOUNT}"),
    ("12.50", "invalid_amount", f"UGX has no decimals: {UGX_AMOUNT}"),
    ("NaN", "validation_error", f"amount must be {UGX_AMOUNT}"),
    (12.5, "validation_error", f"UGX has no decimals: {UGX_AMOUNT}"),
    (
        50000.0,
        "validation_error",
        f"amount must be {UGX_AMOUNT}, written without a decimal point or exponent",
    ),
    (
        1e5,
        "validation_error",
        f"amount must be {UGX_AMOUNT}, written without a decimal point or exponent",
    ),
    (True, "validation_error", f"amount must be {UGX_AMOUNT}"),
    (None, "validation_error", f"amount must be {UGX_AMOUNT}"),
    ([], "validation_error", f"amount must be {UGX_AMOUNT}"),
    ({}, "validation_error", f"amount must be {UGX_AMOUNT}"),
    ("9" * 40, "amount_out_of_range", "amount must be between 100 and 5000000 UGX"),
]


@pytest.mark.parametrize(("amount", "code", "message"), AMOUNT_MESSAGES, ids=repr)
async def test_amount_messages_speak_of_shillings(client, auth, amount, code, message):
    response = await client.post("/v1/payments", json=body(amount=amount), headers=auth)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == code
    assert problem["errors"] == [{"field": "amount", "message": message}]


@pytest.mark.parametrize("amount", ["50000", 50000, " 50000 ", "50000.00"])
async def test_whole_shillings_in_any_accepted_spelling_are_taken(client, auth, amount):
    response = await client.post("/v1/payments", json=body(amount=amount), headers=auth)

    assert response.status_code == 201, response.text
    assert response.json()["amount"] == "50000"


async def test_a_currency_with_cents_keeps_the_decimal_wording(clean_db, fake_providers):
    settings = make_settings(clean_db, mtn_momo_currency="EUR")
    async with running_app(settings, fake_providers) as (app, client):
        merchant = await create_merchant(
            app.state.runtime.sessions, name="Euro shop", callback_url="https://eu.example/h"
        )
        auth = {"Authorization": f"Bearer {merchant.api_key}"}

        async def refusal(amount: Any) -> tuple[str, list[dict[str, str]]]:
            response = await client.post(
                "/v1/payments", json=body(amount=amount, currency="EUR"), headers=auth
            )
            assert response.status_code == 422, response.text
            return response.json()["code"], response.json()["errors"]

        assert await refusal("abc") == (
            "invalid_amount",
            [{"field": "amount", "message": f"amount must be {DECIMAL_AMOUNT}"}],
        )
        assert await refusal("12.345") == (
            "invalid_amount",
            [
                {
                    "field": "amount",
                    "message": f"EUR allows at most 2 decimal places: {DECIMAL_AMOUNT}",
                }
            ],
        )
        assert await refusal(12.5) == (
            "validation_error",
            [
                {
                    "field": "amount",
                    "message": 'amount must be a string such as "12.50" or an integer such as '
                    "50000, not a JSON number with a decimal point or exponent",
                }
            ],
        )
        accepted = await client.post(
            "/v1/payments", json=body(amount="150.5", currency="EUR"), headers=auth
        )
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["amount"] == "150.50"


async def test_a_refused_currency_leaves_the_general_amount_wording(client, auth):
    response = await client.post(
        "/v1/payments", json=body(amount=12.5, currency="ugx"), headers=auth
    )

    errors = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert set(errors) == {"currency", "amount"}
    assert errors["amount"].startswith('amount must be a string such as "12.50"')


async def test_a_validator_speaks_in_its_own_words(client, auth):
    metadata = {f"k{i}": i for i in range(21)}
    response = await client.post("/v1/payments", json=body(metadata=metadata), headers=auth)

    assert response.json()["errors"] == [
        {"field": "metadata", "message": "metadata allows at most 20 keys"}
    ]


async def test_every_refused_field_is_listed_once(client, auth):
    response = await client.post("/v1/payments", json={"amount": 1.5, "extra": 1}, headers=auth)

    assert response.json()["errors"] == [
        {"field": "order_id", "message": "Field required"},
        {"field": "amount", "message": f"UGX has no decimals: {UGX_AMOUNT}"},
        {"field": "phone_number", "message": "Field required"},
        {"field": "extra", "message": "Extra inputs are not permitted"},
    ]


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/v1/payments?limit=abc&status=bogus", {"limit", "status"}),
        ("/v1/payments?order_id=a%20b&starting_after=%21", {"order_id", "starting_after"}),
        ("/v1/events?limit=0&type=payment.maybe", {"limit", "type"}),
        ("/v1/events?payment_id=%20&starting_after=%21", {"payment_id", "starting_after"}),
    ],
)
async def test_query_parameters_are_named_as_sent(client, auth, path, fields):
    response = await client.get(path, headers=auth)

    assert response.status_code == 422, response.text
    named = [error["field"] for error in response.json()["errors"]]
    assert sorted(named) == sorted(fields)


# A schema with what the payment schema avoids, to show the rendering on its own: unions of
# scalars, of a validator-wrapped type and of literals; validated dict keys; nested lists.
def _short(value: str) -> str:
    if len(value) > 3:
        raise ValueError("tags are at most 3 characters")
    return value


class _Line(BaseModel):
    sku: str
    quantity: StrictInt | Literal["all"]


class _Order(BaseModel):
    amount: StrictStr | StrictInt
    tags: dict[Annotated[str, AfterValidator(_short)], int] = {}
    lines: list[_Line] = []
    level: Annotated[int, AfterValidator(lambda v: v)] | Literal["max"] = 1


@pytest.fixture(scope="module")
def probe_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/orders")
    async def order(payload: _Order) -> dict[str, str]:
        return {}

    @app.get("/orders")
    async def orders(ids: Annotated[list[int], Query()]) -> dict[str, str]:
        return {}

    return app


async def test_union_branches_and_validator_names_never_reach_the_client(probe_app):
    sent = {
        "amount": 12.5,
        "tags": {"longer": "x"},
        "lines": [{"sku": "A1", "quantity": 1}, {"quantity": 2.5}],
        "level": "min",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=probe_app), base_url="http://probe"
    ) as client:
        posted = await client.post("/orders", json=sent)
        queried = await client.get("/orders?ids=1&ids=x")

    assert posted.json()["errors"] == [
        {"field": "amount", "message": "Input should be a valid string or a valid integer"},
        {"field": "tags.longer", "message": "tags are at most 3 characters"},
        {"field": "lines.1.sku", "message": "Field required"},
        {
            "field": "lines.1.quantity",
            "message": "Input should be a valid integer or 'all'",
        },
        {
            "field": "level",
            "message": "Input should be a valid integer, unable to parse string as an integer "
            "or 'max'",
        },
    ]
    assert queried.json()["errors"] == [
        {
            "field": "ids.1",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        }
    ]


@pytest.mark.parametrize(
    ("loc", "field"),
    [
        (("body", "amount", "str"), "amount"),
        (("body", "amount", "function-after[_check(), str]"), "amount"),
        (("body", "metadata", "cart", "[key]"), "metadata.cart"),
        (("body", "items", 0, "json-or-python[json=int,python=int]"), "items.0"),
        (("body", "kind", "literal['a','b']"), "kind"),
        (("body",), "body"),
        (("query", "limit"), "limit"),
    ],
)
def test_without_the_parsed_body_validator_names_are_still_dropped(loc, field):
    assert field_name({"loc": loc, "type": "string_type"}, None) == field


def test_the_schema_refuses_a_json_number_amount_once():
    with pytest.raises(ValidationError) as refused:
        CreatePaymentRequest.model_validate({**VALID, "amount": 12.5})

    assert [(error["loc"], error["msg"]) for error in refused.value.errors()] == [
        (("amount",), f"UGX has no decimals: {UGX_AMOUNT}")
    ]


# Any JSON at all, in any field of the creation body.
_text = st.text(max_size=20)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)
_FIELDS = tuple(VALID)
_EXTRA_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
    lambda name: name not in _FIELDS
)
_change = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(_FIELDS), _json_values),
    st.tuples(st.just("drop"), st.sampled_from(_FIELDS), st.none()),
    st.tuples(st.just("extra"), _EXTRA_NAMES, _json_values),
)
_FIELD = re.compile(
    r"^(body|(order_id|amount|currency|phone_number|provider|description|metadata)"
    r"(\.[A-Za-z0-9_\-]+)*)$"
)
# What pydantic would put in a path: union branches, validator and schema names.
_INTERNAL = re.compile(
    r"(^|\.)(str|int|float|bool|none|StrictStr|StrictInt|constrained-\w+)(\.|$)"
    r"|function-|json-or-python|lax-or-strict|literal|\[|\]"
)


def _request(changes: list[tuple[str, str, Any]]) -> tuple[bytes, set[str]]:
    sent: dict[str, Any] = dict(VALID)
    extras = set()
    for kind, name, value in changes:
        if kind == "drop":
            sent.pop(name, None)
        else:
            sent[name] = value
            if kind == "extra":
                extras.add(name)
    return json.dumps(sent).encode(), extras


def _check_refusal(response: httpx.Response, extras: set[str]) -> None:
    assert response.status_code < 500, response.text
    if response.status_code < 400:
        assert response.status_code == 201, response.text
        return
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == response.status_code
    assert problem["code"]
    fields = [error["field"] for error in problem.get("errors", [])]
    assert len(fields) == len(set(fields)), problem  # one entry per field
    for error in problem.get("errors", []):
        field, message = error["field"], error["message"]
        if field not in extras:
            assert _FIELD.match(field), problem
            assert not _INTERNAL.search(field), problem
        assert message, problem
        assert "Value error" not in message, problem
        assert message.count("Input should be") <= 1, problem
        if field == "amount":
            assert "Input should be" not in message, problem


async def test_arbitrary_json_in_any_field_is_refused_cleanly(
    client, auth, runtime, fake_providers
):
    loop = asyncio.get_running_loop()
    created: list[int] = []

    @hsettings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(changes=st.lists(_change, min_size=1, max_size=3))
    def check(changes: list[tuple[str, str, Any]]) -> None:
        content, extras = _request(changes)
        response = asyncio.run_coroutine_threadsafe(
            client.post(
                "/v1/payments",
                content=content,
                headers={**auth, "Content-Type": "application/json"},
            ),
            loop,
        ).result(timeout=30)
        if response.status_code == 201:
            created.append(1)
        _check_refusal(response, extras)

    await asyncio.to_thread(check)
    # Only the in-memory providers were asked, once per payment created.
    asked = sum(len(provider.requests) for provider in fake_providers.values())
    assert asked == len(created) == await count_rows(runtime, "payments")
    assert set(fake_providers) == {Provider.MTN_MOMO, Provider.AIRTEL_MONEY}


async def test_a_number_too_long_to_parse_is_malformed_json(client, auth):
    raw = b'{"order_id": "ORD-1", "amount": ' + b"9" * 5000 + b', "phone_number": "0772123456"}'
    response = await client.post(
        "/v1/payments", content=raw, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
