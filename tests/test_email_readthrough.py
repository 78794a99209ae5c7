"""The read-through lane: a closed-issue email is filed on its case (not reopened), acknowledged and
listed for a person, who marks it "read, nothing new" or "new information" (→ the case owner, flagged);
a new, unrelated report from the same customer is routed as usual with the banner."""

from __future__ import annotations

import pytest

from tests.factory import bearer
from tests.helpers import logged_contacts, running
from tests.test_channel_email import EMAIL, NOVAK, mime

LANE = "/v1/readthrough"


@pytest.fixture
async def lane(settings, conn, keys, api):
    async with running(settings, conn) as (client, _):
        team = await api.team()  # their own keys: a mark is a person's step
        yield client, team


async def send(client, keys, raw: bytes) -> dict:
    r = await client.post(EMAIL, data=raw, headers={**bearer(keys["channel"]), "Content-Type": "message/rfc822"})
    assert r.status == 201, await r.text()
    return await r.json()


async def listed(client, member) -> list[dict]:
    r = await client.get(LANE, headers=member.headers)
    assert r.status == 200, await r.text()
    return (await r.json())["items"]


async def test_closed_issue_waits_in_the_lane_and_unrelated_mail_does_not(lane, keys, conn):
    client, team = lane
    about = await send(client, keys, mime("RE: CMP-2041 I still disagree"))
    other = await send(client, keys, mime("A new leak in the bathroom"))
    assert other["action"] == "route" and other["banner"]
    items = await listed(client, team.agent)
    assert [i["contact_id"] for i in items] == [about["contact_id"]]
    assert items[0]["case_ref"] == "CMP-2041" and items[0]["subject"] == "RE: CMP-2041 I still disagree"
    assert await listed(client, team.cl1) == items
    status = await conn.fetchval("SELECT status FROM cases WHERE reference = 'CMP-2041'")
    assert status == "exhausted"  # filed, never reopened


async def test_read_nothing_new(lane, keys, conn):
    client, team = lane
    about = await send(client, keys, mime("Re: [CMP-2041]"))
    path = f"{LANE}/{about['contact_id']}"
    r = await client.post(
        path, headers=team.agent.headers, json={"outcome": "read_nothing_new", "note": "Same points."}
    )
    assert r.status == 200, await r.text()
    marked = await r.json()
    assert marked["staff_id"] == team.agent.id and marked["target"] is None
    assert await listed(client, team.agent) == []
    event = await conn.fetchrow("SELECT * FROM case_events WHERE contact_id = $1", about["contact_id"])
    assert event["kind"] == "read_nothing_new" and event["staff_id"] == team.agent.id
    r = await client.post(path, headers=team.cl1.headers, json={"outcome": "new_information"})
    assert r.status == 409


async def test_new_information_goes_to_the_case_owner_flagged(lane, keys, conn, api):
    client, team = lane
    case_id = await conn.fetchval("SELECT id FROM cases WHERE reference = 'CMP-2041'")
    r = await client.patch(f"/v1/cases/{case_id}", headers=bearer(keys["admin"]), json={"owner_id": team.cl2.id})
    assert r.status == 200 and (await r.json())["owner_id"] == team.cl2.id
    about = await send(client, keys, mime("RE: CMP-2041 a new surveyor's report"))
    r = await client.post(
        f"{LANE}/{about['contact_id']}", headers=team.cl1.headers, json={"outcome": "new_information"}
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["target"] == {"type": "staff", "id": str(team.cl2.id)}
    row = (await logged_contacts(conn, "id = $1", about["contact_id"]))[0]
    assert row["target"] == {"type": "staff", "id": str(team.cl2.id)} and row["flagged"]
    kinds = [e["kind"] for e in await conn.fetch("SELECT kind FROM case_events WHERE case_id = $1", case_id)]
    assert kinds == ["new_information"]


async def test_new_information_without_an_owner_goes_to_the_caution_leads(lane, keys):
    client, team = lane
    about = await send(client, keys, mime("RE: CMP-2041"))
    r = await client.post(
        f"{LANE}/{about['contact_id']}", headers=team.agent.headers, json={"outcome": "new_information"}
    )
    assert (await r.json())["target"] == {"type": "queue", "id": "caution"}


async def test_who_may_use_the_lane(lane, keys):
    client, team = lane
    about = await send(client, keys, mime("RE: CMP-2041"))
    assert (await client.get(LANE, headers=bearer(keys["channel"]))).status == 403
    path = f"{LANE}/{about['contact_id']}"
    r = await client.post(path, headers=bearer(keys["admin"]), json={"outcome": "read_nothing_new"})
    assert r.status == 403  # a mark is a person's, and an admin key is no one
    r = await client.post(f"{LANE}/not-a-uuid", headers=team.agent.headers, json={"outcome": "read_nothing_new"})
    assert r.status == 422
    r = await client.post(
        f"{LANE}/00000000-0000-0000-0000-000000000000", headers=team.agent.headers, json={"outcome": "read_nothing_new"}
    )
    assert r.status == 404
    r = await client.post(path, headers=team.agent.headers, json={"outcome": "maybe"})
    assert r.status == 422


async def test_a_web_form_about_the_closed_complaint_waits_in_the_same_lane(lane, keys):
    """The lane is the channel's choice of nothing: writing through the portal's form about an
    exhausted complaint is listed for a person exactly as an email about it is."""
    client, team = lane
    body = {"name": "Peter Novak", "email": NOVAK, "reference": "CMP-2041", "message": "I still disagree."}
    r = await client.post("/v1/channels/webform", headers=bearer(keys["channel"]), json=body)
    made = await r.json()
    assert r.status == 201, made
    assert [i["contact_id"] for i in await listed(client, team.agent)] == [made["contact_id"]]
