"""The console in a real browser: Debian's chromium driven by Playwright (never a browser
downloaded at run time), against the app served by uvicorn with its in-process jobs.

Each page visited is saved as a screenshot under ``artifacts/console/`` (kept by CI as the
test's artifact; the README's picture is one of them).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.main import create_app
from app.merchants.service import create_merchant
from app.payments.decision import Change
from app.payments.domain import Actor, PaymentStatus
from app.runtime import Runtime
from app.simulator.server import serve_in_background
from tests.conftest import make_settings
from tests.console.helpers import ADMIN_EMAIL, PASSWORD, VIEWER_EMAIL, make_operator
from tests.services import need_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
PHONES = ["256772123456", "256772987654", "256701555321"]


@dataclass
class Console:
    url: str
    runtime: Runtime
    merchant_id: str
    api_key: str
    payment_ids: dict[str, str]  # order id → payment id
    received: list[dict[str, Any]]


def storefront(received: list[dict[str, Any]]) -> Starlette:
    async def events(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"received": True})

    return Starlette(routes=[Route("/events", events, methods=["POST"])])


async def make_payment(runtime: Runtime, http: Any, order_id: str, phone: str) -> str:
    created = await http.post(
        "/v1/payments",
        json={"order_id": order_id, "amount": "50000", "phone_number": phone},
        headers={"Idempotency-Key": order_id},
    )
    assert created.status_code == 201, created.text
    payment_id: str = created.json()["id"]
    return payment_id


@pytest.fixture
async def console(clean_db, fake_providers) -> AsyncIterator[Console]:
    import httpx

    received: list[dict[str, Any]] = []
    settings = make_settings(clean_db, event_retry_base_seconds=1)
    application = create_app(settings, providers=fake_providers, background_jobs=True)
    async with (
        serve_in_background(storefront(received)) as shop_url,
        serve_in_background(application) as url,
    ):
        runtime: Runtime = application.state.runtime
        merchant = await create_merchant(
            runtime.sessions, name="Kampala Electronics", callback_url=f"{shop_url}/events"
        )
        await make_operator(runtime, ADMIN_EMAIL, "admin")
        await make_operator(runtime, VIEWER_EMAIL, "viewer")
        headers = {"Authorization": f"Bearer {merchant.api_key}"}
        payment_ids = {}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            for index, phone in enumerate(PHONES):
                order = f"ORD-{1001 + index}"
                payment_ids[order] = await make_payment(runtime, http, order, phone)
        review = payment_ids["ORD-1003"]
        moved = await runtime.payments.transition(
            review,
            Change(
                to_status=PaymentStatus.NEEDS_REVIEW,
                actor=Actor.CALLBACK,
                detail="amount 40000 != 50000",
                failure_message="Provider reported successful: amount 40000 != 50000",
            ),
        )
        assert moved is not None
        yield Console(url, runtime, merchant.id, merchant.api_key, payment_ids, received)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = need_chromium()
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
        launched = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def snapshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def log_in(page: Page, console: Console, email: str = ADMIN_EMAIL) -> None:
    await page.goto(f"{console.url}/console/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def test_an_admin_logs_in_searches_resolves_rotates_and_logs_out(console, browser):
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await log_in(page, console)
    chart = page.locator("svg#hourly-chart")
    await expect(chart).to_be_visible()
    box = await chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert box["height"] > 100
    await snapshot(page, "overview")

    # Search by order id, then by the last digits of a phone number.
    await page.get_by_role("link", name="Payments").click()
    await page.locator("#q").fill("ORD-1002")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name="ORD-1002")).to_be_visible()
    await expect(page.get_by_role("link", name="ORD-1001")).to_have_count(0)
    await page.locator("#q").fill("7654")
    await page.keyboard.press("Enter")  # the search works from the keyboard
    await expect(page.get_by_role("link", name="ORD-1002")).to_be_visible()
    await expect(page.get_by_role("link", name="ORD-1003")).to_have_count(0)
    # Never the whole number on a list.
    assert "256772987654" not in await page.content()
    await snapshot(page, "payments")

    # Open the payment in review and resolve it with a note.
    await page.locator("#q").fill("")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name="ORD-1003").click()
    await expect(page.locator(".status-needs_review").first).to_be_visible()
    await page.locator("#resolve-status").select_option("successful")
    await page.locator("#note").fill("MTN support confirmed 50,000 was collected once.")
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.locator(".notice")).to_be_visible()
    await expect(page.locator(".status-successful").first).to_be_visible()

    # The event it emitted is delivered to the storefront and shows on the timeline.
    review_id = console.payment_ids["ORD-1003"]
    deadline = time.monotonic() + 30
    timeline = page.locator("ol.timeline")
    while True:
        text = await timeline.inner_text()
        if re.search(r"payment\.succeeded.*delivered", text, re.S | re.I):
            break
        assert time.monotonic() < deadline, f"no delivered payment.succeeded on:\n{text}"
        await page.wait_for_timeout(250)  # the browser's own pause between reloads
        await page.reload()
    assert any(
        event["type"] == "payment.succeeded" and event["data"]["id"] == review_id
        for event in console.received
    )
    await snapshot(page, "payment")

    # Rotate the merchant's API key: the new key is shown once.
    await page.get_by_role("link", name="Merchants").click()
    await page.get_by_role("link", name="Kampala Electronics").click()
    await snapshot(page, "merchant")
    await page.get_by_role("button", name="Rotate API key").click()
    new_key = (await page.locator("#new-api-key").inner_text()).strip()
    match = re.search(r"mgw_[A-Za-z0-9_-]{20,}", new_key)
    assert match is not None, new_key
    await snapshot(page, "merchant-key-rotated")
    await page.goto(f"{console.url}/console/merchants/{console.merchant_id}")
    assert match.group(0) not in await page.content()

    # The audit page lists what was done, with the address it came from.
    await page.get_by_role("link", name="Audit").click()
    await expect(page.get_by_text("payment.resolve").first).to_be_visible()
    await expect(page.get_by_text("merchant.rotate_key").first).to_be_visible()
    await snapshot(page, "audit")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.goto(f"{console.url}/console/payments")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_a_viewer_sees_no_actions_and_forged_posts_are_refused(console, browser):
    page = await browser.new_page()
    await log_in(page, console, VIEWER_EMAIL)
    review_id = console.payment_ids["ORD-1003"]
    await page.goto(f"{console.url}/console/payments/{review_id}")
    await expect(page.locator("ol.timeline")).to_be_visible()
    assert await page.locator("main form").count() == 0
    assert await page.get_by_role("button", name="Resolve").count() == 0
    await snapshot(page, "payment-as-viewer")
    await page.goto(f"{console.url}/console/merchants/{console.merchant_id}")
    assert await page.locator("main form").count() == 0

    # A POST the viewer's own session forges, with a valid CSRF token: refused.
    await page.goto(f"{console.url}/console/account")
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = await page.request.post(
        f"{console.url}/console/payments/{review_id}/resolve",
        form={"csrf_token": token or "", "status": "successful", "note": "a viewer trying to act"},
    )
    assert forged.status == 403
    # And without a CSRF token at all.
    bare = await page.request.post(f"{console.url}/console/payments/{review_id}/refresh", form={})
    assert bare.status == 403
    payment = await console.runtime.payments.get_payment(console.merchant_id, review_id)
    assert payment.status == "needs_review"


async def test_a_post_without_its_csrf_token_is_refused_for_an_admin(console, browser):
    page = await browser.new_page()
    await log_in(page, console)
    review_id = console.payment_ids["ORD-1003"]
    refused = await page.request.post(
        f"{console.url}/console/payments/{review_id}/resolve",
        form={"status": "successful", "note": "no token on this form at all"},
    )
    assert refused.status == 403
    payment = await console.runtime.payments.get_payment(console.merchant_id, review_id)
    assert payment.status == "needs_review"
