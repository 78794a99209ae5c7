from tests.conftest import bearer


async def test_healthz(client):
    r = await client.get("/healthz")
    assert r.status == 200


async def test_create_customer(client, keys):
    body = {"name": "A", "identifiers": [{"kind": "phone", "value": "07700 900123"}]}
    r = await client.post("/v1/customers", json=body, headers=bearer(keys["admin"]))
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["identifiers"] == [{"kind": "phone", "value": "+447700900123"}]
