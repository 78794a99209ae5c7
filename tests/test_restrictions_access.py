"""Who may read or make a restriction, and what a customer's export gathers and records."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.factory import PHONE, Api, Team, bearer, restriction_body

pytestmark = pytest.mark.asyncio


async def test_roles_and_least_disclosure(api: Api, client: Any, keys: dict[str, str], team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    r = await api.restriction(cid, deciders=team.deciders)
    for who in (team.agent.headers, bearer(keys["channel"])):
        resp = await client.get(f"/v1/restrictions/{r['id']}?why=curious", headers=who)
        assert resp.status == 403
    resp = await client.post("/v1/restrictions", json=restriction_body(cid), headers=team.manager.headers)
    assert resp.status == 403
    resp = await client.get(f"/v1/restrictions/{r['id']}", headers=team.manager.headers)
    assert resp.status == 422 and "why" in (await resp.json())["error"]["message"]


async def test_export_gathers_everything(api: Api, client: Any, conn: asyncpg.Connection, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    r = await api.restriction(cid, deciders=team.deciders)
    lead = team.cl3.headers
    sent = await client.post(f"/v1/restrictions/{r['id']}/letter", json={}, headers=lead)
    assert sent.status == 200, await sent.text()
    resp = await client.get(f"/v1/customers/{cid}/export", headers=lead)
    doc = await resp.json()
    assert resp.status == 200
    assert doc["customer"]["identifiers"][0]["value"] == "+447700900001"
    assert doc["restrictions"][0]["incidents"][0]["description"].startswith("Swore")
    assert len(doc["letters"]) == 1 and "contacts" in doc and "cases" in doc
    assert [e["kind"] for e in doc["events"]][:4] == ["created", "amended", "amended", "activated"]
    assert [e["staff_id"] for e in doc["events"]][:4] == [team.scl.id, team.cl1.id, team.cl2.id, team.cl2.id]
    assert doc["letters"][0]["recorded_by"] == f"staff:{team.cl3.id}:Ravi Kumar"
    exported = await conn.fetchrow(
        "SELECT count(*) AS n, min(staff_id) AS staff_id FROM restriction_events WHERE kind = 'exported' "
        "AND customer_id = $1",
        cid,
    )
    assert (exported["n"], exported["staff_id"]) == (1, team.cl3.id)
