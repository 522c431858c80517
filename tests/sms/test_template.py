"""Receipt templates: refused when set unless they fit one plain SMS; rendered with the amount
as people read it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.merchants.models import Merchant
from app.merchants.service import InvalidSmsTemplate, UnknownMerchant, update_sms_receipts
from app.sms.template import DEFAULT_TEMPLATE, ReceiptValues, display_amount, render


def test_amounts_read_with_thousands_separators():
    assert display_amount(50_000, "UGX") == "UGX 50,000"
    assert display_amount(5_000_000, "UGX") == "UGX 5,000,000"
    assert display_amount(123_450, "KES") == "KES 1,234.50"


def test_the_default_template_is_designs_example():
    values = ReceiptValues("UGX 50,000", "Kampala Electronics", "ORD-1001", "MP210603.1234.L06941")
    assert render(None, values) == (
        "Payment of UGX 50,000 to Kampala Electronics received. Order ORD-1001. "
        "Ref MP210603.1234.L06941"
    )


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("Paid {amount} {total}", "unknown placeholder {total}"),
        ("Paid {merchant.__class__}", "unknown placeholder"),
        ("Paid {amount:>99}", "unknown placeholder"),
        ("Paid {}", "unknown placeholder {}"),
        ("Paid {amount", "unbalanced"),
        ("Paid {amount} \u2019thanks\u2019", "GSM-7"),
        ("Paid {amount} \U0001f389", "GSM-7"),
        ("Paid {amount} {{order}}", "GSM-7"),  # a literal brace costs two septets
        ("Paid {amount} " + "x" * 160, "160"),
        ("{order} {ref} " + "x" * 115, "161 characters"),
        ("   ", "empty"),
    ],
)
async def test_a_template_that_does_not_fit_is_refused_and_nothing_changes(
    runtime, merchant, template, why
):
    with pytest.raises(InvalidSmsTemplate, match=why.replace("{", r"\{").replace("}", r"\}")):
        await update_sms_receipts(runtime.sessions, merchant.id, enabled=True, template=template)

    async with runtime.sessions() as session:
        stored = await session.get(Merchant, merchant.id)
    assert stored is not None
    assert (stored.sms_receipts, stored.sms_template) == (False, None)


async def test_a_fitting_template_is_kept_and_shown_with_an_example(runtime, merchant):
    template = "{merchant}: {amount} received for {order} (ref {ref}). Asante!"

    updated = await update_sms_receipts(
        runtime.sessions, merchant.id, enabled=True, template=template
    )

    assert updated.enabled is True
    assert updated.template == template
    assert updated.example == (
        "Kampala Electronics: UGX 50,000 received for ORD-1001 (ref MP210603.1234.L06941). Asante!"
    )
    off = await update_sms_receipts(runtime.sessions, merchant.id, enabled=False)
    assert (off.enabled, off.template) == (False, template)


async def test_switching_on_starts_the_clock_and_the_default_applies(runtime, merchant):
    updated = await update_sms_receipts(runtime.sessions, merchant.id, enabled=True)
    assert updated.template == DEFAULT_TEMPLATE
    assert updated.example.startswith("Payment of UGX 50,000 to Kampala Electronics")
    async with runtime.sessions() as session:
        since = await session.scalar(
            select(Merchant.sms_receipts_since).where(Merchant.id == merchant.id)
        )
    assert since is not None

    await update_sms_receipts(runtime.sessions, merchant.id, enabled=True)
    async with runtime.sessions() as session:
        again = await session.scalar(
            select(Merchant.sms_receipts_since).where(Merchant.id == merchant.id)
        )
    assert again == since  # already on: the clock does not restart


async def test_an_unknown_merchant_is_a_lookup_error(runtime):
    with pytest.raises(UnknownMerchant):
        await update_sms_receipts(runtime.sessions, "mer_nobody", enabled=True)
    assert issubclass(UnknownMerchant, LookupError)
