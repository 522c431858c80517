"""The audit page: every login and action with who, when, what and from where; its filters and
its keyset pages."""

from __future__ import annotations

import re

import pytest

from app.console.pages.audit import compact_detail
from app.merchants.admin import disable_merchant
from app.operators.audit import record_action
from tests.console.helpers import ADMIN_EMAIL, VIEWER_EMAIL, make_operator, post_form, sign_in


@pytest.fixture
async def admin(client, runtime):
    await make_operator(runtime, ADMIN_EMAIL, "admin")
    assert (await sign_in(client)).status_code == 303


def rows(page: str) -> list[str]:
    table = re.search(r'<table id="audit">.*?<tbody>(.*?)</tbody>', page, re.S)
    return re.findall(r"<tr data-id=.*?</tr>", table.group(1), re.S) if table else []


async def record(runtime, count: int, *, action: str = "payment.resolve", actor: str = "cli"):
    async with runtime.sessions.begin() as session:
        for index in range(count):
            await record_action(
                session,
                operator=None,
                actor=actor,
                action=action,
                target_type="payment",
                target_id=f"pay_{index:04d}",
                source="cli",
                detail={"note": f"entry {index}"},
            )


async def test_logins_and_actions_are_listed_newest_first_with_their_address(
    client, runtime, merchant, admin
):
    await make_operator(runtime, VIEWER_EMAIL, "viewer")
    path = f"/console/merchants/{merchant.id}"
    await post_form(client, path, f"{path}/rotate-key", {"grace_seconds": "60"})
    page = await client.get("/console/audit")
    assert page.status_code == 200
    assert "<h1>Audit</h1>" in page.text
    listed = rows(page.text)
    # operator.create (admin), the admin's login, operator.create (viewer), the rotation
    assert len(listed) == 4
    newest, login = listed[0], listed[2]
    assert "merchant.rotate_key" in newest
    assert ADMIN_EMAIL in newest
    assert "127.0.0.1" in newest
    assert f'href="/console/merchants/{merchant.id}"' in newest
    assert "grace_seconds=60" in newest
    assert not re.search(r"mgw_[A-Za-z0-9_-]{20,}", newest)  # key prefixes only, never a key
    assert "console.login" in login
    assert "127.0.0.1" in login
    assert re.search(r"\d{4}, \d\d:\d\d:\d\d", newest)  # a time, with seconds


async def test_a_failed_login_is_listed_under_the_typed_email(client, runtime):
    await make_operator(runtime, ADMIN_EMAIL, "admin")
    refused = await sign_in(client, "Intruder@Example.com", "wrong password")
    assert refused.status_code == 401
    assert (await sign_in(client)).status_code == 303
    page = await client.get("/console/audit", params={"action": "console.login_failed"})
    (entry,) = rows(page.text)
    assert "intruder@example.com" in entry
    assert "127.0.0.1" in entry


async def test_filters_by_actor_action_and_target(client, runtime, merchant, other_merchant, admin):
    await disable_merchant(runtime.sessions, merchant.id, actor="ops@shop.example")
    await disable_merchant(runtime.sessions, other_merchant.id)  # actor "cli"
    await record(runtime, 2)

    by_actor = rows((await client.get("/console/audit", params={"actor": "OPS@shop.example"})).text)
    assert len(by_actor) == 1
    assert merchant.id in by_actor[0]

    by_action = (await client.get("/console/audit", params={"action": "merchant.disable"})).text
    assert len(rows(by_action)) == 2
    assert 'value="merchant.disable"' in by_action  # the filter stays filled in

    by_target = rows(
        (await client.get("/console/audit", params={"target": other_merchant.id})).text
    )
    assert len(by_target) == 1
    assert "merchant.disable" in by_target[0]

    payment = rows((await client.get("/console/audit", params={"target": "pay_0001"})).text)
    assert len(payment) == 1
    assert 'href="/console/payments/pay_0001"' in payment[0]
    assert "note=entry 1" in payment[0]

    both = await client.get("/console/audit", params={"actor": "cli", "action": "merchant.disable"})
    assert len(rows(both.text)) == 1

    nothing = await client.get("/console/audit", params={"actor": "nobody@example.com"})
    assert rows(nothing.text) == []
    assert "No audit entries match these filters." in nothing.text


async def test_pages_of_fifty_with_an_older_link(client, runtime, admin):
    await record(runtime, 120)  # after the admin's creation and login: 122 entries
    first = await client.get("/console/audit")
    assert len(rows(first.text)) == 50
    assert "pay_0119" in rows(first.text)[0]
    older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', first.text)
    assert older is not None
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert len(rows(second.text)) == 50
    assert "pay_0069" in rows(second.text)[0]
    assert ">Newest</a>" in second.text
    third_link = re.search(r'<a href="([^"]+)" rel="next">Older</a>', second.text)
    third = await client.get(third_link.group(1).replace("&amp;", "&"))
    assert len(rows(third.text)) == 22
    assert "operator.create" in rows(third.text)[-1]
    assert 'rel="next"' not in third.text

    # The filters ride along with the cursor.
    filtered = await client.get("/console/audit", params={"action": "payment.resolve"})
    link = re.search(r'<a href="([^"]+)" rel="next">Older</a>', filtered.text)
    assert link is not None
    assert "action=payment.resolve" in link.group(1)
    rest = await client.get(link.group(1).replace("&amp;", "&"))
    assert all("payment.resolve" in row for row in rows(rest.text))

    mangled = await client.get("/console/audit", params={"before": "yesterday"})
    assert mangled.status_code == 200
    assert len(rows(mangled.text)) == 50


async def test_a_viewer_reads_the_audit_log(client, runtime):
    await make_operator(runtime, VIEWER_EMAIL, "viewer")
    await sign_in(client, VIEWER_EMAIL)
    page = await client.get("/console/audit")
    assert page.status_code == 200
    assert VIEWER_EMAIL in page.text
    assert "console.login" in page.text


async def test_the_audit_page_needs_a_session(client):
    answer = await client.get("/console/audit")
    assert answer.status_code == 303


def test_compact_detail():
    assert compact_detail({}) == ""
    assert compact_detail({"from": "a", "grace": 0, "ok": True, "at": None}) == (
        "from=a grace=0 ok=true at=null"
    )
    assert compact_detail({"nested": {"x": [1, 2]}}) == 'nested={"x":[1,2]}'
    long = compact_detail({"note": "n" * 200})
    assert long == "note=" + "n" * 79 + "…"
