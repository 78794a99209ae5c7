"""PATCH /v1/customers/{id}: the record changes, every change is audited with who and before/after,
reaches the restriction index, and a change leaving no way in flags the restriction for urgent review."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime
from typing import Any

from gateway import lifecycle as lc
from gateway.appkeys import POOL
from gateway.contact import InboundContact
from gateway.decide.context import make_context
from gateway.models.people import CustomerPatch
from gateway.rules.context import Match
from gateway.rules.engine import decide
from gateway.rules.params import PERSONAL
from gateway.store import customers, people
from gateway.store import index as index_store
from gateway.tasks import audit_once
from tests.factory import Api, Team, bearer, insert_customer, insert_restriction
from tests.helpers import eventually
from tests.rules.factories import DEFAULT, PARAMS

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
        postal_address="Flat 2, 1 River Street\nLeeds ls11aa",
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
    # Text is read into lines and a postcode (checked and written the standard way).
    assert got["postal_address"] == {"lines": ["Flat 2, 1 River Street", "Leeds"], "postcode": "LS1 1AA"}
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
    csv_text = await (await client.get("/v1/reviews/due?format=csv", headers=team.cl1.headers)).text()
    header, first_row = csv_text.splitlines()[:2]
    assert ",urgent_review_since,urgent_review_why," in header and "no way in" in first_row

    # A representative who can write for them is a way in, but the need to speak is still shut.
    with_rep = await api.change_customer(
        team.cl1, cid, representatives={"add": [{"name": "Ann", "relationship": "daughter"}]}
    )
    assert "reasonable adjustment shut" in with_rep["urgent_reviews"][0]["why"]
    assert [e["kind"] for e in await _events(client, team, cid)][-2:] == ["updated", "no_way_in"]
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


async def test_the_audit_clears_a_stale_mark_and_waits_only_on_drifted_customers(conn, client, team: Team):
    pool = client.server.app[POOL]
    stale = await insert_customer(conn, "Jo", NUMBER)
    rid = await insert_restriction(conn, stale, {"kind": "written_only"})
    # Marked for urgent review straight in the database, although the customer can write to us.
    await conn.execute(
        """UPDATE restrictions SET urgent_review_since = now(), urgent_review_why = 'no way in: stale',
               urgent_review_channels = '{phone}' WHERE id = $1""",
        rid,
    )
    right = await insert_customer(
        conn, "Al", ("phone", "07700 900005"), adjustments={"text": "", "flags": ["cannot_write"]}
    )
    await insert_restriction(conn, right, {"kind": "written_only"})
    assert [c for c, _ in await audit_once(pool)] == [right]  # its drift (no mark yet) is recorded once
    marks = await conn.fetchrow("SELECT urgent_review_since, urgent_review_why FROM restrictions WHERE id = $1", rid)
    assert tuple(marks) == (None, None)
    events = await conn.fetch("SELECT kind FROM customer_events WHERE customer_id = $1", stale)
    assert [e["kind"] for e in events] == ["way_in_restored"]
    # A customer being changed (their row locked) whose marks are right does not hold the audit up.
    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT id FROM customers WHERE id = $1 FOR UPDATE", right)
        assert [c for c, _ in await asyncio.wait_for(audit_once(pool), 5)] == [right]


async def test_property_every_change_leaves_a_way_in_or_an_urgent_review(conn):
    """Random customers, restrictions and sequences of changes through the store, each followed by
    what the index would load and decide: a way in or an urgent review, and never declined on the
    channel their adjustment needs."""
    rng = random.Random(14)
    actor = lc.Actor("test")
    for n in range(25):
        cid = await insert_customer(conn, f"Customer {n}", ("phone", f"07700 9{n:05d}"))
        for kind in rng.sample(
            ["written_only", "no_personal_contact", "set_times", "contact_limit"], rng.randint(1, 2)
        ):
            await insert_restriction(conn, cid, PARAMS[kind].model_dump(mode="json"), channels=_some(rng, PERSONAL))
        for _ in range(4):
            patch = _random_patch(rng, await people.get_customer(conn, cid))
            await customers.patch_customer(conn, cid, CustomerPatch.model_validate(patch), actor)
            await _holds(conn, cid)


def _some(rng: random.Random, channels: frozenset[str]) -> list[str]:
    return rng.sample(sorted(channels), rng.randint(1, len(channels)))


def _random_patch(rng: random.Random, now: Any) -> dict[str, Any]:
    if rng.random() < 0.7:
        return {"adjustments": {"flags": rng.sample(sorted(lc.FLAG_NEEDS), rng.randint(0, 2))}}
    if now.representatives:
        return {"representatives": {"remove": [now.representatives[0].id]}}
    return {"representatives": {"add": [{"name": "Ann", "relationship": "daughter"}]}}


async def _holds(conn: Any, cid: int) -> None:
    bundle = (await index_store.load(conn, date.today(), [cid])).bundles[cid]
    flags = bundle.customer.adjustments_flags
    closings = [lc.Closing(r.id, r.kind, r.channels) for r in bundle.restrictions]
    urgent = [r for r in bundle.restrictions if r.urgent is not None]
    assert lc.open_channels(closings, flags, bool(bundle.representatives)) or urgent, bundle
    closed = frozenset().union(*(c.closes for c in closings))
    needed = [ch for f in flags if lc.FLAG_NEEDS.get(f, {"-"}) <= closed for ch in lc.FLAG_NEEDS[f]]
    for channel in needed:
        ctx = make_context(Match(bundles=(bundle,), sender_kind="phone"), DEFAULT)
        contact = InboundContact.model_validate({"channel": channel, "from": "07700 900001"})
        now = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
        assert decide(contact, ctx, now).action != "deflect", (bundle, channel)
