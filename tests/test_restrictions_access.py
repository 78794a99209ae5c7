"""Who may read or make a restriction, and what a customer's export gathers and records."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.factory import PHONE, Api, bearer, restriction_body

pytestmark = pytest.mark.asyncio


async def test_roles_and_least_disclosure(api: Api, client: Any, keys: dict[str, str]) -> None:
    team = await api.team()
    cid = await api.customer("Margaret Hughes", PHONE)
    r = await api.restriction(cid, deciders=team.deciders)
    for role in ("agent", "channel"):
        resp = await client.get(f"/v1/restrictions/{r['id']}?why=curious", headers=bearer(keys[role]))
        assert resp.status == 403
    resp = await client.post("/v1/restrictions", json=restriction_body(cid), headers=bearer(keys["manager"]))
    assert resp.status == 403
    resp = await client.get(f"/v1/restrictions/{r['id']}", headers=bearer(keys["manager"]))
    assert resp.status == 422 and "why" in (await resp.json())["error"]["message"]


async def test_export_gathers_everything(api: Api, client: Any, conn: asyncpg.Connection, keys: dict[str, str]) -> None:
    team = await api.team()
    cid = await api.customer("Margaret Hughes", PHONE)
    r = await api.restriction(cid, deciders=team.deciders)
    lead = bearer(keys["caution_lead"])
    sent = await client.post(f"/v1/restrictions/{r['id']}/letter", json={}, headers=lead)
    assert sent.status == 200, await sent.text()
    resp = await client.get(f"/v1/customers/{cid}/export", headers=lead)
    doc = await resp.json()
    assert resp.status == 200
    assert doc["customer"]["identifiers"][0]["value"] == "+447700900001"
    assert doc["restrictions"][0]["incidents"][0]["description"].startswith("Swore")
    assert len(doc["letters"]) == 1 and "contacts" in doc and "cases" in doc
    assert [e["kind"] for e in doc["events"]][:2] == ["created", "activated"]
    exported = await conn.fetchval(
        "SELECT count(*) FROM restriction_events WHERE kind = 'exported' AND customer_id = $1", cid
    )
    assert exported == 1
