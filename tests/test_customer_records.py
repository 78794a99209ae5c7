"""PATCH /v1/customers/{id}: the record changes, every change is audited with who and before/after,
reaches the restriction index, and a change leaving no way in flags the restriction for urgent review."""

from __future__ import annotations

from typing import Any

from gateway.appkeys import POOL
from gateway.tasks import audit_once
from tests.factory import Api, Team, bearer, insert_customer, insert_restriction
from tests.helpers import eventually

NUMBER = ("phone", "07700 900001")


async def _call(client: Any, keys: dict[str, str], number: str = "07700 900001") -> dict[str, Any]:
    r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": number})
    assert r.status == 201, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def _events(client: Any, team: Team, cid: int) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/customers/{cid}/export", headers=team.cl1.headers, params={"why": "audit test"})
    assert r.status == 200, await r.text()
    doc: dict[str, Any] = await r.json()
    return list(doc["customer_events"])


async def test_patch_changes_the_record_and_audits_who_and_what(client, api: Api, team: Team):
    cid = await api.customer("Margaret Hughes", NUMBER, ("email", "mh@example.org"))
    got = await api.change_customer(
        team.cl1,
        cid,
        name="Margaret Hughes-Brown",
        identifiers={
            "add": [{"kind": "phone", "value": "07700 900002"}],
            "remove": [{"kind": "email", "value": "MH@example.org"}],
        },
        adjustments={"text": "Hard of hearing", "flags": ["needs_email"]},
        representatives={
            "add": [
                {"name": "Ann", "relationship": "advocate", "identifiers": [{"kind": "phone", "value": "07700 900444"}]}
            ]
        },
        open_channels=["letter"],
    )
    assert got["name"] == "Margaret Hughes-Brown"
    assert got["identifiers"] == [
        {"kind": "phone", "value": "+447700900001"},
        {"kind": "phone", "value": "+447700900002"},
    ]
    assert got["adjustments"] == {"text": "Hard of hearing", "flags": ["needs_email"]}
    assert got["open_channels"] == ["letter"] and got["representatives"][0]["name"] == "Ann"
    (event,) = [e for e in await _events(client, team, cid) if e["kind"] == "updated"]
    assert event["staff_id"] == team.cl1.id and event["actor"].startswith(f"staff:{team.cl1.id}:")
    assert event["before"]["name"] == "Margaret Hughes" and event["after"]["name"] == "Margaret Hughes-Brown"
    assert {"kind": "email", "value": "mh@example.org"} in event["before"]["identifiers"]
    assert {"kind": "email", "value": "mh@example.org"} not in event["after"]["identifiers"]


async def test_representatives_change_and_go(api: Api, team: Team):
    cid = await api.customer("Jo", NUMBER, representatives=[{"name": "Ann", "relationship": "advocate"}])
    rep = (await api.change_customer(team.cl1, cid))["representatives"][0]
    changed = await api.change_customer(
        team.cl1,
        cid,
        representatives={
            "change": [
                {"id": rep["id"], "relationship": "daughter", "identifiers": [{"kind": "email", "value": "ann@x.org"}]}
            ]
        },
    )
    assert changed["representatives"][0]["relationship"] == "daughter"
    assert changed["representatives"][0]["identifiers"] == [{"kind": "email", "value": "ann@x.org"}]
    gone = await api.change_customer(team.cl1, cid, representatives={"remove": [rep["id"]]})
    assert gone["representatives"] == []


async def test_bad_identifier_or_unknown_flag_is_a_422_naming_the_field(client, api: Api, team: Team):
    cid = await api.customer("Jo", NUMBER)
    cases = [
        ({"identifiers": {"add": [{"kind": "phone", "value": "not a number"}]}}, "identifiers.add.0.value"),
        ({"adjustments": {"flags": ["can_fly"]}}, "adjustments.flags"),
        ({"identifiers": {"remove": [{"kind": "phone", "value": "07700 900999"}]}}, "identifiers.remove.0"),
        ({"representatives": {"remove": [999]}}, "representatives.remove"),
    ]
    for body, field in cases:
        r = await client.patch(f"/v1/customers/{cid}", headers=team.cl1.headers, json=body)
        assert r.status == 422, (body, await r.text())
        assert (await r.json())["error"]["details"][0]["field"] == field
    r = await client.patch(f"/v1/customers/{cid}", headers=team.agent.headers, json={"name": "X"})
    assert r.status == 403


async def test_a_removed_number_no_longer_reaches_the_customer(client, keys, api: Api, team: Team):
    cid = await api.customer("Jo", NUMBER, ("email", "jo@x.org"))
    await api.restriction(cid, deciders=team.deciders)

    async def deflected() -> bool:
        return (await _call(client, keys))["action"] == "deflect"

    await eventually(deflected, timeout=1.0)
    await api.change_customer(team.cl1, cid, identifiers={"remove": [{"kind": "phone", "value": NUMBER[1]}]})

    async def unmatched() -> bool:
        return (await _call(client, keys))["matched"]["customer_ids"] == []

    assert await eventually(unmatched, timeout=1.0) < 1.0


async def test_cannot_write_under_written_only_flags_urgent_review_and_routes_calls(client, keys, api: Api, team: Team):
    cid = await api.customer("Jo", NUMBER)
    made = await api.restriction(cid, deciders=team.deciders)
    changed = await api.change_customer(
        team.cl1, cid, adjustments={"text": "Cannot read or write", "flags": ["cannot_write"]}
    )
    (urgent,) = changed["urgent_reviews"]
    assert urgent["restriction_id"] == made["id"] and "no way in" in urgent["why"]
    assert sorted(urgent["channels"]) == ["phone", "visit"]

    async def routed() -> bool:
        d = await _call(client, keys)
        return d["action"] == "route" and d["target"] == {"type": "queue", "id": "caution"}

    await eventually(routed, timeout=1.0)
    d = await _call(client, keys)
    assert d["flagged"] is True and d["customer_message"] is None
    assert "Urgent review" in d["banner"]["text"]
    r = await client.get("/v1/reviews/due", headers=team.cl1.headers)
    first = (await r.json())["items"][0]
    assert first["restriction_id"] == made["id"] and "urgent_review" in first["issues"]
    assert first["urgent_review"]["why"] == urgent["why"] and first["urgent_review"]["since"]
    kinds = [e["kind"] for e in await _events(client, team, cid)]
    assert kinds == ["updated", "no_way_in"]

    # A representative who can write for them is a way in, but the need to speak is still shut.
    with_rep = await api.change_customer(
        team.cl1, cid, representatives={"add": [{"name": "Ann", "relationship": "daughter"}]}
    )
    assert "reasonable adjustment shut" in with_rep["urgent_reviews"][0]["why"]
    # The adjustment was recorded in error: once corrected the flag clears and calls are declined again.
    cleared = await api.change_customer(team.cl1, cid, adjustments={"text": "", "flags": []})
    assert cleared["urgent_reviews"] == []

    async def deflected() -> bool:
        return (await _call(client, keys))["action"] == "deflect"

    await eventually(deflected, timeout=1.0)
    assert [e["kind"] for e in await _events(client, team, cid)][-1] == "way_in_restored"


async def test_the_periodic_audit_catches_drift_from_any_source(conn, client, team: Team):
    cid = await insert_customer(conn, "Jo", NUMBER, adjustments={"text": "", "flags": ["cannot_write"]})
    fine = await insert_customer(conn, "Al", ("phone", "07700 900005"))
    # Written straight into the database: no check ran when it was saved.
    rid = await insert_restriction(conn, cid, {"kind": "written_only"})
    await insert_restriction(conn, fine, {"kind": "written_only"})
    failing = await audit_once(client.server.app[POOL])
    assert [c for c, _ in failing] == [cid]
    got = await (await client.get(f"/v1/customers/{cid}", headers=team.cl1.headers)).json()
    assert [u["restriction_id"] for u in got["urgent_reviews"]] == [rid]
    assert await audit_once(client.server.app[POOL]) == failing  # still reported, not re-recorded
    events = await conn.fetch("SELECT kind, actor FROM customer_events WHERE customer_id = $1", cid)
    assert [(e["kind"], e["actor"]) for e in events] == [("no_way_in", "system:way-in-audit")]
