async def test_create_and_get(client, auth):
    r = await client.post("/v1/payments", json={"order_id": "ORD-1", "amount": "50000", "phone_number": "0772 123 456"}, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    r2 = await client.get(f"/v1/payments/{body['id']}", headers=auth)
    assert r2.json() == body
