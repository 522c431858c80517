"""The merchants pages: the list, one merchant, and an admin's changes (each audited), over
HTTP with the in-process client."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.merchants.models import Merchant
from app.operators.models import OperatorAction
from tests.conftest import count_rows
from tests.console.helpers import (
    ADMIN_EMAIL,
    VIEWER_EMAIL,
    csrf_of,
    make_operator,
    post_form,
    sign_in,
)

KEY = re.compile(r"mgw_[A-Za-z0-9_-]{40,}")
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]{20,}")


@pytest.fixture
async def admin(client, runtime):
    await make_operator(runtime, ADMIN_EMAIL, "admin")
    assert (await sign_in(client)).status_code == 303


@pytest.fixture
async def viewer(client, runtime):
    await make_operator(runtime, VIEWER_EMAIL, "viewer")
    assert (await sign_in(client, VIEWER_EMAIL)).status_code == 303


def shown_once(page: str, element_id: str, pattern: re.Pattern[str]) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert found is not None, f"no #{element_id} on the page"
    value = found.group(1).strip()
    assert pattern.fullmatch(value), value
    assert page.count(value) == 1
    return value


async def audit_entries(runtime, action: str) -> list[OperatorAction]:
    async with runtime.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(OperatorAction)
                    .where(OperatorAction.action == action)
                    .order_by(OperatorAction.id)
                )
            ).all()
        )


async def stored(runtime, merchant_id: str) -> Merchant:
    async with runtime.sessions() as session:
        found = await session.get(Merchant, merchant_id)
        assert found is not None
        return found


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def main_part(page: str) -> str:
    return page.split("<main", 1)[1]


# --- the list and creation --------------------------------------------------------------------
async def test_the_list_shows_each_merchant_without_its_secrets(client, runtime, merchant, admin):
    page = await client.get("/console/merchants")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Merchants</h1>" in html
    assert f'href="/console/merchants/{merchant.id}">Kampala Electronics</a>' in html
    assert "https://shop.example/hooks" in html
    assert merchant.api_key[:12] in html  # the prefix, to tell keys apart
    assert merchant.api_key not in html
    assert merchant.webhook_secret not in html
    assert "status-enabled" in html
    assert "Create merchant" in html


async def test_creating_a_merchant_shows_its_key_once_and_the_key_works(client, runtime, admin):
    created = await post_form(
        client,
        "/console/merchants",
        "/console/merchants",
        {"name": "  Gulu Hardware ", "callback_url": "https://gulu.example/events?token=abc"},
    )
    assert created.status_code == 201
    html = created.text
    assert "<h1>Gulu Hardware</h1>" in html
    api_key = shown_once(html, "new-api-key", KEY)
    secret = shown_once(html, "new-webhook-secret", SECRET)

    (entry,) = await audit_entries(runtime, "merchant.create")
    assert entry.actor == ADMIN_EMAIL
    assert entry.source == "127.0.0.1"
    assert entry.detail["name"] == "Gulu Hardware"
    assert entry.detail["callback_url"] == "https://gulu.example/events"  # no query: a token
    merchant = await stored(runtime, entry.target_id)
    assert merchant.webhook_secret == secret

    listing = await client.get("/v1/payments", headers=bearer(api_key))
    assert listing.status_code == 200, listing.text

    again = await client.get(f"/console/merchants/{merchant.id}")
    assert again.status_code == 200
    assert api_key not in again.text
    assert secret not in again.text
    assert 'id="new-api-key"' not in again.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  ", "callback_url": "https://ok.example/hooks"}, "name must not be empty"),
        ({"name": "Mbale Shop", "callback_url": "ftp://nope.example"}, "absolute http"),
        ({"name": "Mbale Shop", "callback_url": "https://u:p@x.example/"}, "credentials"),
    ],
)
async def test_bad_input_for_a_new_merchant_answers_422(client, runtime, admin, fields, message):
    answer = await post_form(client, "/console/merchants", "/console/merchants", fields)
    assert answer.status_code == 422
    assert message in answer.text
    assert 'class="error"' in answer.text
    assert await count_rows(runtime, "merchants") == 0
    assert await audit_entries(runtime, "merchant.create") == []


# --- one merchant -------------------------------------------------------------------------------
async def test_the_merchant_page_shows_its_fields_and_the_admin_actions(client, merchant, admin):
    page = await client.get(f"/console/merchants/{merchant.id}")
    assert page.status_code == 200
    html = page.text
    assert merchant.id in html
    assert "https://shop.example/hooks" in html
    assert merchant.api_key not in html
    assert merchant.webhook_secret not in html
    for button in ("Save callback URL", "Rotate API key", "Rotate webhook secret", "Disable"):
        assert f">{button}</button>" in html
    assert ">Enable</button>" not in html
    assert 'name="grace_seconds"' in html
    assert 'value="86400"' in html


async def test_an_unknown_merchant_is_a_404_page(client, admin):
    answer = await client.get("/console/merchants/mer_nope")
    assert answer.status_code == 404
    assert "There is no merchant mer_nope" in answer.text


async def test_rotating_the_key_shows_it_once_and_the_old_one_lasts_its_grace(
    client, runtime, merchant, admin
):
    path = f"/console/merchants/{merchant.id}"
    rotated = await post_form(client, path, f"{path}/rotate-key", {"grace_seconds": "3600"})
    assert rotated.status_code == 200
    new_key = shown_once(rotated.text, "new-api-key", KEY)
    assert "The previous key keeps working until" in rotated.text

    assert (await client.get("/v1/payments", headers=bearer(new_key))).status_code == 200
    old = await client.get("/v1/payments", headers=bearer(merchant.api_key))
    assert old.status_code == 200  # still within its hour of grace

    reloaded = await client.get(path)
    assert new_key not in reloaded.text
    assert 'id="new-api-key"' not in reloaded.text

    (entry,) = await audit_entries(runtime, "merchant.rotate_key")
    assert (entry.actor, entry.target_id, entry.source) == (ADMIN_EMAIL, merchant.id, "127.0.0.1")
    assert entry.detail["grace_seconds"] == 3600


async def test_rotating_with_no_grace_stops_the_old_key_at_once(client, merchant, admin):
    path = f"/console/merchants/{merchant.id}"
    rotated = await post_form(client, path, f"{path}/rotate-key", {"grace_seconds": "0"})
    new_key = shown_once(rotated.text, "new-api-key", KEY)
    assert (await client.get("/v1/payments", headers=bearer(merchant.api_key))).status_code == 401
    assert (await client.get("/v1/payments", headers=bearer(new_key))).status_code == 200


@pytest.mark.parametrize("grace", ["soon", "-1", "99999999", "1.5"])
async def test_an_invalid_grace_period_answers_422(client, runtime, merchant, admin, grace):
    path = f"/console/merchants/{merchant.id}"
    for action in ("rotate-key", "rotate-secret"):
        answer = await post_form(client, path, f"{path}/{action}", {"grace_seconds": grace})
        assert answer.status_code == 422
        assert "grace period" in answer.text
        assert 'id="new-api-key"' not in answer.text
    assert (await stored(runtime, merchant.id)).api_key_prefix == merchant.api_key[:12]
    assert await count_rows(runtime, "operator_actions", "action LIKE 'merchant.rotate%'") == 0


async def test_rotating_the_webhook_secret_shows_it_once(client, runtime, merchant, admin):
    path = f"/console/merchants/{merchant.id}"
    rotated = await post_form(client, path, f"{path}/rotate-secret", {"grace_seconds": "86400"})
    assert rotated.status_code == 200
    secret = shown_once(rotated.text, "new-webhook-secret", SECRET)
    assert "signed with both the new and the previous secret" in rotated.text
    row = await stored(runtime, merchant.id)
    assert (row.webhook_secret, row.previous_webhook_secret) == (secret, merchant.webhook_secret)
    assert secret not in (await client.get(path)).text
    (entry,) = await audit_entries(runtime, "merchant.rotate_secret")
    assert entry.target_id == merchant.id
    assert entry.source == "127.0.0.1"


async def test_disabling_refuses_the_key_and_enabling_restores_it(client, runtime, merchant, admin):
    path = f"/console/merchants/{merchant.id}"
    disabled = await post_form(client, path, f"{path}/disable", {})
    assert disabled.status_code == 303
    assert disabled.headers["location"].startswith(f"{path}?notice=")
    refused = await client.get("/v1/payments", headers=bearer(merchant.api_key))
    assert refused.status_code == 401
    assert refused.json()["code"] == "merchant_disabled"
    page = await client.get(disabled.headers["location"])
    assert "Merchant disabled" in page.text  # the notice
    assert "status-disabled" in page.text
    assert ">Enable</button>" in page.text

    enabled = await post_form(client, path, f"{path}/enable", {})
    assert enabled.status_code == 303
    assert (await client.get("/v1/payments", headers=bearer(merchant.api_key))).status_code == 200
    assert [e.target_id for e in await audit_entries(runtime, "merchant.disable")] == [merchant.id]
    assert [e.target_id for e in await audit_entries(runtime, "merchant.enable")] == [merchant.id]


async def test_changing_the_callback_url(client, runtime, merchant, admin):
    path = f"/console/merchants/{merchant.id}"
    saved = await post_form(
        client, path, f"{path}/callback-url", {"callback_url": "https://new.example/momo"}
    )
    assert saved.status_code == 303
    assert (await stored(runtime, merchant.id)).callback_url == "https://new.example/momo"
    page = await client.get(saved.headers["location"])
    assert "Callback URL saved." in page.text
    assert 'value="https://new.example/momo"' in page.text
    (entry,) = await audit_entries(runtime, "merchant.update_callback_url")
    assert entry.detail == {"from": "https://shop.example/hooks", "to": "https://new.example/momo"}
    assert "merchant.update_callback_url" in page.text  # its history

    bad = await post_form(client, path, f"{path}/callback-url", {"callback_url": "not a url"})
    assert bad.status_code == 422
    assert "absolute http" in bad.text
    assert (await stored(runtime, merchant.id)).callback_url == "https://new.example/momo"


# --- who may act --------------------------------------------------------------------------------
ACTIONS = [
    ("", {"name": "Forged", "callback_url": "https://forged.example/"}),
    ("/{id}/callback-url", {"callback_url": "https://forged.example/"}),
    ("/{id}/rotate-key", {"grace_seconds": "0"}),
    ("/{id}/rotate-secret", {"grace_seconds": "0"}),
    ("/{id}/disable", {}),
    ("/{id}/enable", {}),
]


async def test_a_viewer_sees_no_forms_and_forged_posts_are_refused(
    client, runtime, merchant, viewer
):
    listing = await client.get("/console/merchants")
    page = await client.get(f"/console/merchants/{merchant.id}")
    for html in (listing.text, page.text):
        assert "<form" not in main_part(html)
        assert "Rotate API key" not in html
        assert "Create merchant" not in html
    token = csrf_of(page)  # the viewer's own, valid token (from the logout form)
    for suffix, fields in ACTIONS:
        action = "/console/merchants" + suffix.format(id=merchant.id)
        forged = await client.post(action, data={**fields, "csrf_token": token})
        assert forged.status_code == 403, action
        assert "Only an admin" in forged.text
    row = await stored(runtime, merchant.id)
    assert (row.api_key_prefix, row.webhook_secret) == (
        merchant.api_key[:12],
        merchant.webhook_secret,
    )
    assert row.disabled_at is None
    assert row.callback_url == "https://shop.example/hooks"
    assert await count_rows(runtime, "merchants") == 1
    assert await count_rows(runtime, "operator_actions", "action LIKE 'merchant.%'") == 0


async def test_an_admin_post_without_its_csrf_token_is_refused(client, runtime, merchant, admin):
    for suffix, fields in ACTIONS:
        action = "/console/merchants" + suffix.format(id=merchant.id)
        bare = await client.post(action, data=fields)
        assert bare.status_code == 403, action
        wrong = await client.post(action, data={**fields, "csrf_token": "not-the-token"})
        assert wrong.status_code == 403, action
    assert (await stored(runtime, merchant.id)).api_key_prefix == merchant.api_key[:12]
    assert await count_rows(runtime, "operator_actions", "action LIKE 'merchant.%'") == 0
