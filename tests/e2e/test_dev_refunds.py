"""``momo-gateway dev`` gives money back: an MTN payment refunded in two halves (each settled by
the simulator's Disbursement callback and announced to the demo storefront, signature verified),
and an Airtel payment refunded in full, once."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from tests.e2e.stack import dev_running, eventually


async def paid(http: httpx.AsyncClient, order_id: str, phone: str) -> dict[str, Any]:
    created = await http.post(
        "/v1/payments", json={"order_id": order_id, "amount": "50000", "phone_number": phone}
    )
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    payment: dict[str, Any] = {}

    async def successful() -> bool:
        payment.update((await http.get(f"/v1/payments/{payment_id}")).json())
        return payment["status"] == "successful"

    await eventually(successful, what=f"{order_id} to succeed")
    return payment


def storefront_saw(caplog: Any, event_type: str, subject_id: str) -> bool:
    return any(
        r.getMessage().startswith(f"storefront received {event_type} for {subject_id} ")
        and r.getMessage().endswith("signature verified")
        for r in caplog.records
    )


async def test_dev_refunds_an_mtn_payment_in_two_halves_and_an_airtel_one_once(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO, logger="app.dev")
    async with dev_running() as started:
        headers = {"Authorization": f"Bearer {started['api_key']}"}
        async with httpx.AsyncClient(base_url=started["api_url"], headers=headers) as http:
            payment = await paid(http, "ORD-REFUND-1", "0772 123 456")
            half = await http.post(
                "/v1/refunds",
                json={"payment_id": payment["id"], "amount": "25000", "reason": "Half back"},
            )
            assert half.status_code == 201, half.text
            rest = await http.post("/v1/refunds", json={"payment_id": payment["id"]})
            assert rest.status_code == 201, rest.text
            assert rest.json()["amount"] == "25000"
            refund_ids = [half.json()["id"], rest.json()["id"]]

            async def both_announced() -> bool:
                return all(
                    storefront_saw(caplog, "refund.succeeded", refund_id)
                    for refund_id in refund_ids
                )

            await eventually(both_announced, what="two refund.succeeded events at the storefront")
            settled = (await http.get(f"/v1/payments/{payment['id']}")).json()
            assert settled["amount_refunded"] == "50000"
            assert settled["status"] == "successful"
            listed = (await http.get(f"/v1/refunds?payment_id={payment['id']}")).json()["data"]
            assert sorted(r["status"] for r in listed) == ["succeeded", "succeeded"]
            events = (await http.get(f"/v1/events?payment_id={payment['id']}")).json()["data"]
            assert sorted(e["type"] for e in events) == [
                "payment.succeeded",
                "refund.succeeded",
                "refund.succeeded",
            ]

            airtel = await paid(http, "ORD-REFUND-2", "0752 123 456")
            assert airtel["provider"] == "airtel_money"
            assert airtel["provider_transaction_id"]
            full = await http.post("/v1/refunds", json={"payment_id": airtel["id"]})
            assert full.status_code == 201, full.text
            assert full.json()["status"] == "succeeded"  # Airtel answers at once
            again = await http.post("/v1/refunds", json={"payment_id": airtel["id"]})
            assert again.status_code == 422
            assert again.json()["code"] == "partial_refund_not_supported"

            async def airtel_announced() -> bool:
                return storefront_saw(caplog, "refund.succeeded", full.json()["id"])

            await eventually(airtel_announced, what="the Airtel refund.succeeded event")
            refunded = (await http.get(f"/v1/payments/{airtel['id']}")).json()
            assert refunded["amount_refunded"] == "50000"
