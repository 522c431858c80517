"""What the README says of ``description`` is what the API stores and the provider is sent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.payments.test_create_payment import VALID

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_default() -> str:
    bullet = re.search(r"^- `description`.*?(?=^- )", README.read_text(), re.M | re.S)
    assert bullet, "README has no `description` bullet"
    default = re.search(r"omitted or blank, it is `([^`]+)`", " ".join(bullet.group(0).split()))
    assert default, "README does not say what an omitted description becomes"
    return default.group(1)


@pytest.mark.parametrize("given", [None, "", "   "])
async def test_an_omitted_or_blank_description_is_the_documented_default(
    client, auth, fake_providers, given
):
    body = {k: v for k, v in VALID.items() if k != "description"}
    if given is not None:
        body["description"] = given
    response = await client.post("/v1/payments", json=body, headers=auth)

    assert response.status_code == 201, response.text
    expected = documented_default().replace("<order_id>", VALID["order_id"])
    assert response.json()["description"] == expected
    (sent,) = [r for fake in fake_providers.values() for r in fake.requests]
    assert sent.description == expected


async def test_a_given_description_is_stored_trimmed(client, auth):
    response = await client.post(
        "/v1/payments", json={**VALID, "description": "  Two shoes, size 42 "}, headers=auth
    )
    assert response.json()["description"] == "Two shoes, size 42"
