"""``momo-gateway dev`` started twice on the same database keeps its one demo merchant: the
same API key works after a restart and still sees the payments made before it."""

from __future__ import annotations

import sqlite3

import httpx

from tests.e2e.stack import dev_running, free_dev_ports


async def test_a_restart_keeps_the_demo_merchant_its_key_and_its_payments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)

    ports = free_dev_ports()  # a restart, as `make dev` twice: the same ports
    async with dev_running(ports=ports) as first:
        headers = {"Authorization": f"Bearer {first['api_key']}"}
        async with httpx.AsyncClient(base_url=first["api_url"], headers=headers) as http:
            created = await http.post(
                "/v1/payments",
                json={"order_id": "ORD-1", "amount": "50000", "phone_number": "0772123456"},
            )
            assert created.status_code == 201

    async with dev_running(callback_url="https://shop.example/momo/events", ports=ports) as second:
        assert second["api_key"] == first["api_key"]
        assert second["merchant_id"] == first["merchant_id"]
        headers = {"Authorization": f"Bearer {second['api_key']}"}
        async with httpx.AsyncClient(base_url=second["api_url"], headers=headers) as http:
            listed = (await http.get("/v1/payments")).json()["data"]
        assert [p["id"] for p in listed] == [created.json()["id"]]

    with sqlite3.connect(tmp_path / "momo_gateway.db") as connection:
        merchants = connection.execute(
            "SELECT callback_url FROM merchants"
            " WHERE id NOT IN (SELECT merchant_id FROM saleor_installations)"
        ).fetchall()
        installations = connection.execute("SELECT count(*) FROM saleor_installations").fetchone()
    # One demo merchant, now sending its events where the latest run said; and the fake Saleor's
    # one installation (reinstalled by the second run, not installed again).
    assert merchants == [("https://shop.example/momo/events",)]
    assert installations == (1,)
