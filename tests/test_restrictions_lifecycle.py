"""The whole life of a restriction through the HTTP API, with the audit trail at each step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from gateway.lifecycle import add_months
from tests.conftest import bearer
from tests.restriction_factory import TODAY, body, make_customer, make_team

pytestmark = pytest.mark.asyncio


async def kinds_of(conn: asyncpg.Connection, rid: int) -> list[str]:
    rows = await conn.fetch("SELECT kind FROM restriction_events WHERE restriction_id = $1 ORDER BY id", rid)
    return [r["kind"] for r in rows]


async def post(client: Any, key: str, path: str, data: dict[str, Any], status: int = 200) -> Any:
    resp = await client.post(path, json=data, headers=bearer(key))
    payload = await resp.json()
    assert resp.status == status, payload
    return payload


async def test_whole_life(client: Any, conn: asyncpg.Connection, keys: dict[str, str]) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn)
    lead, manager = keys["caution_lead"], keys["manager"]

    # Proposed with two deciders: not enough for the rule.
    r = await post(client, lead, "/v1/restrictions", body(cid, deciders=[team.scl, team.cl1]), 201)
    rid = r["id"]
    assert r["status"] == "proposed"
    assert r["missing_deciders"] == {"caution_lead": 1}
    assert r["channels"] == ["phone", "visit"]
    assert r["review_due"] == add_months(TODAY, 12).isoformat()
    assert await kinds_of(conn, rid) == ["created"]

    # The third decider activates it.
    r = await post(client, lead, f"/v1/restrictions/{rid}/decide", {"staff_id": team.cl2})
    assert r["status"] == "active" and r["decided_on"] == TODAY.isoformat()
    assert await kinds_of(conn, rid) == ["created", "amended", "activated"]

    # Letter rendered (text and HTML) and marked sent.
    resp = await client.get(f"/v1/restrictions/{rid}/letter?format=text", headers=bearer(lead))
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain"
    for needed in (
        "Housing Ombudsman",
        "appeal",
        "Margaret Hughes",
        "review it by",
        "aggressive, abusive",
        "in writing",
    ):
        assert needed in text
    resp = await client.get(f"/v1/restrictions/{rid}/letter", headers=bearer(lead))
    assert resp.content_type == "text/html" and "<h1>" in await resp.text()
    r = await post(client, lead, f"/v1/restrictions/{rid}/letter", {"method": "post"})
    assert r["letter_sent_on"] == TODAY.isoformat()
    assert (await kinds_of(conn, rid))[-1] == "letter_sent"
    copy = await conn.fetchval("SELECT body_text FROM restriction_letters WHERE restriction_id = $1", rid)
    assert "Housing Ombudsman" in copy

    # Appeal: lodged, stays enforced; a decider may not decide it, an uninvolved manager may.
    r = await post(
        client,
        lead,
        f"/v1/restrictions/{rid}/appeal",
        {"lodged_on": TODAY.isoformat(), "grounds": "I was provoked."},
    )
    assert r["status"] == "under_appeal" and r["appeals"][0]["due_on"] > TODAY.isoformat()
    refused = await post(
        client,
        manager,
        f"/v1/restrictions/{rid}/appeal/decision",
        {"staff_id": team.scl, "outcome": "lifted", "notes": "x"},
        403,
    )
    assert refused["error"]["code"] == "not_senior"
    await conn.execute("UPDATE restrictions SET deciders = deciders || $2::bigint WHERE id = $1", rid, team.manager)
    refused = await post(
        client,
        manager,
        f"/v1/restrictions/{rid}/appeal/decision",
        {"staff_id": team.manager, "outcome": "lifted", "notes": "x"},
        409,
    )
    assert refused["error"]["code"] == "involved"
    r = await post(
        client,
        manager,
        f"/v1/restrictions/{rid}/appeal/decision",
        {"staff_id": team.senior, "outcome": "upheld", "notes": "Abuse is recorded."},
    )
    assert r["status"] == "active" and r["appeals"][0]["outcome"] == "upheld"
    assert r["appeals"][0]["decided_by"] == team.senior
    assert (await kinds_of(conn, rid))[-2:] == ["appealed", "appeal_decided"]

    # Review renews: new reasons and review date, a new letter becomes due.
    new_due = (TODAY + timedelta(days=180)).isoformat()
    r = await post(
        client,
        lead,
        f"/v1/restrictions/{rid}/review",
        {
            "outcome": "renew",
            "staff_id": team.cl3,
            "reasons": "Abuse continued in June.",
            "review_due": new_due,
        },
    )
    assert r["reasons"] == "Abuse continued in June." and r["review_due"] == new_due
    assert r["letter_sent_on"] is None and r["status"] == "active"
    reviewed = await conn.fetchrow(
        "SELECT before, after FROM restriction_events WHERE restriction_id = $1 AND kind = 'reviewed'",
        rid,
    )
    assert reviewed["before"]["reasons"] != reviewed["after"]["reasons"]

    # Full read is audited with who and why.
    resp = await client.get(f"/v1/restrictions/{rid}?why=monthly+review+meeting", headers=bearer(manager))
    assert resp.status == 200 and (await resp.json())["incidents"]
    viewed = await conn.fetchrow(
        "SELECT actor, why FROM restriction_events WHERE kind = 'viewed' ORDER BY id DESC LIMIT 1"
    )
    assert viewed["why"] == "monthly review meeting" and viewed["actor"].startswith("key:")

    r = await post(client, lead, f"/v1/restrictions/{rid}/lift", {"reason": "Behaviour improved."})
    assert r["status"] == "lifted"
    assert await kinds_of(conn, rid) == [
        "created",
        "amended",
        "activated",
        "viewed",
        "viewed",
        "letter_sent",
        "appealed",
        "appeal_decided",
        "reviewed",
        "viewed",
        "lifted",
    ]

    # The audit trail refuses changes in SQL.
    for sql in (
        "UPDATE restriction_events SET why = 'x' WHERE restriction_id = $1",
        "DELETE FROM restriction_events WHERE restriction_id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql, rid)


async def test_roles_and_least_disclosure(client: Any, conn: asyncpg.Connection, keys: dict[str, str]) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn)
    r = await post(
        client,
        keys["caution_lead"],
        "/v1/restrictions",
        body(cid, deciders=[team.scl, team.cl1, team.cl2]),
        201,
    )
    assert r["status"] == "active"
    for role in ("agent", "channel"):
        resp = await client.get(f"/v1/restrictions/{r['id']}?why=curious", headers=bearer(keys[role]))
        assert resp.status == 403
    resp = await client.post("/v1/restrictions", json=body(cid), headers=bearer(keys["manager"]))
    assert resp.status == 403
    resp = await client.get(f"/v1/restrictions/{r['id']}", headers=bearer(keys["manager"]))
    assert resp.status == 422 and "why" in (await resp.json())["error"]["message"]


async def test_export_gathers_everything(client: Any, conn: asyncpg.Connection, keys: dict[str, str]) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn)
    r = await post(
        client,
        keys["caution_lead"],
        "/v1/restrictions",
        body(cid, deciders=[team.scl, team.cl1, team.cl2]),
        201,
    )
    await post(client, keys["caution_lead"], f"/v1/restrictions/{r['id']}/letter", {})
    resp = await client.get(f"/v1/customers/{cid}/export", headers=bearer(keys["caution_lead"]))
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
