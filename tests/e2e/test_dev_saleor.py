"""``momo-gateway dev`` shows the Saleor flow: its fake Saleor has the gateway installed, a
checkout there is paid through the simulator and Saleor is told CHARGE_SUCCESS; after a restart
(a new fake Saleor, new keys and token) the app is reinstalled and works again."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.stack import dev_running, eventually, free_dev_ports


async def checkout_is_reported(saleor_url: str) -> dict[str, Any]:
    root = saleor_url.removesuffix("/graphql/")
    async with httpx.AsyncClient(base_url=root, timeout=30) as saleor:
        # The README's example.
        checkout = await saleor.post(
            "/demo/checkout", json={"amount": 50000, "phone_number": "0772 123 456"}
        )
        assert checkout.status_code == 200, checkout.text
        answer = checkout.json()["app_answer"]
        assert answer["result"] == "CHARGE_ACTION_REQUIRED", answer
        payment_id = answer["pspReference"]
        reports: list[dict[str, Any]] = []

        async def told() -> bool:
            reports[:] = [
                r
                for r in (await saleor.get("/demo/reports")).json()
                if r["psp_reference"] == payment_id
            ]
            return bool(reports)

        await eventually(told, timeout=30, what="the fake Saleor to hear the outcome")
        return reports[0]


async def test_dev_pays_a_saleor_checkout_before_and_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    ports = free_dev_ports()
    async with dev_running(ports=ports) as started:
        report = await checkout_is_reported(started["saleor_url"])
        assert (report["type"], report["amount"]) == ("CHARGE_SUCCESS", "50000")
    async with dev_running(ports=ports) as restarted:
        report = await checkout_is_reported(restarted["saleor_url"])
        assert report["type"] == "CHARGE_SUCCESS"
