"""``momo-gateway dev`` texts the payer: once a demo payment succeeds, its SMS receipt goes out
through the simulator's Africa's Talking, the log says so without the full number, and the
simulator's delivery report marks it delivered."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from tests.e2e.stack import dev_running, eventually

MASKED_PAYER = "2567*****456"


async def test_dev_sends_the_sms_receipt_and_records_its_delivery(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO, logger="app.sms")
    async with dev_running() as started:
        headers = {"Authorization": f"Bearer {started['api_key']}"}
        async with httpx.AsyncClient(base_url=started["api_url"], headers=headers) as http:
            created = await http.post(
                "/v1/payments",
                headers={"Idempotency-Key": "demo-sms-1"},
                json={"order_id": "ORD-1001", "amount": "50000", "phone_number": "0772 123 456"},
            )
            assert created.status_code == 201
            payment_id = created.json()["id"]

            async def successful() -> bool:
                response = await http.get(f"/v1/payments/{payment_id}")
                return response.json()["status"] == "successful"

            await eventually(successful, what="the payment to succeed")

            def sent_lines() -> list[str]:
                return [
                    r.getMessage()
                    for r in caplog.records
                    if r.name == "app.sms" and r.getMessage().startswith("SMS receipt sent to")
                ]

            async def logged() -> bool:
                return any(f"SMS receipt sent to {MASKED_PAYER} (ATXid_" in m for m in sent_lines())

            await eventually(logged, timeout=10, what="the SMS receipt in the log")

            receipts: list[dict[str, Any]] = []

            async def delivered() -> bool:
                response = await http.get(f"/v1/payments/{payment_id}/sms")
                assert response.status_code == 200, response.text
                receipts[:] = response.json()["data"]
                return [r["status"] for r in receipts] == ["delivered"]

            await eventually(delivered, timeout=10, what="the SMS receipt reported delivered")

        [receipt] = receipts
        assert receipt["object"] == "sms_receipt"
        assert receipt["payment_id"] == payment_id
        assert receipt["to"] == MASKED_PAYER
        assert "UGX 50,000" in receipt["message"]
        assert "ORD-1001" in receipt["message"]
        assert receipt["status_code"] == 101
        # Never the whole number, anywhere in the log.
        assert not any("256772123456" in r.getMessage() for r in caplog.records)
