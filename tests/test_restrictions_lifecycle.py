"""The life of a restriction through the HTTP API, one step per test, with the audit trail each
step leaves; then the whole life's trail in order, and a trail that SQL cannot change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from gateway.lifecycle import add_months
from gateway.store.transitions import lapse_expired
from tests.factory import PHONE, Api, Member, Team, restriction_body, today

pytestmark = pytest.mark.asyncio

RENEWED = "Abuse continued in June."


async def kinds_of(conn: asyncpg.Connection, rid: int) -> list[str]:
    rows = await conn.fetch("SELECT kind FROM restriction_events WHERE restriction_id = $1 ORDER BY id", rid)
    return [r["kind"] for r in rows]


async def trail(conn: asyncpg.Connection, rid: int) -> list[tuple[str, int | None]]:
    """Each event's kind and the staff member recorded as taking it."""
    rows = await conn.fetch("SELECT kind, staff_id FROM restriction_events WHERE restriction_id = $1 ORDER BY id", rid)
    return [(r["kind"], r["staff_id"]) for r in rows]


class Life:
    """One customer, a team, and each step of a restriction's life as the staff member who takes it
    asks the API to, signed in with their own key."""

    def __init__(self, client: Any, team: Team, customer_id: int) -> None:
        self.client, self.team, self.customer_id = client, team, customer_id

    async def post(self, who: Member, path: str, data: dict[str, Any], status: int = 200) -> Any:
        resp = await self.client.post(path, json=data, headers=who.headers)
        payload = await resp.json()
        assert resp.status == status, payload
        return payload

    async def propose(self) -> Any:
        """Recorded by the service caution lead and decided by one caution lead: two of the three."""
        body = restriction_body(self.customer_id, valid_from=today().isoformat())
        made = await self.post(self.team.scl, "/v1/restrictions", body, 201)
        return await self.decide(made["id"], self.team.cl1)

    async def decide(self, rid: int, who: Member) -> Any:
        return await self.post(who, f"/v1/restrictions/{rid}/decide", {})

    async def letter(self, rid: int, query: str = "") -> Any:
        return await self.client.get(f"/v1/restrictions/{rid}/letter{query}", headers=self.team.cl1.headers)

    async def send_letter(self, rid: int) -> Any:
        return await self.post(self.team.cl1, f"/v1/restrictions/{rid}/letter", {"method": "post"})

    async def appeal(self, rid: int) -> Any:
        grounds = {"lodged_on": today().isoformat(), "grounds": "I was provoked."}
        return await self.post(self.team.cl1, f"/v1/restrictions/{rid}/appeal", grounds)

    async def decide_appeal(self, rid: int, who: Member, outcome: str, notes: str, status: int = 200) -> Any:
        decision = {"outcome": outcome, "notes": notes}
        return await self.post(who, f"/v1/restrictions/{rid}/appeal/decision", decision, status)

    async def renew(self, rid: int, review_due: str) -> Any:
        review = {"outcome": "renew", "reasons": RENEWED, "review_due": review_due}
        return await self.post(self.team.cl3, f"/v1/restrictions/{rid}/review", review)

    async def read_in_full(self, rid: int) -> Any:
        path = f"/v1/restrictions/{rid}?why=monthly+review+meeting"
        return await self.client.get(path, headers=self.team.manager.headers)

    async def lift(self, rid: int) -> Any:
        return await self.post(self.team.cl1, f"/v1/restrictions/{rid}/lift", {"reason": "Behaviour improved."})


@pytest.fixture
async def life(api: Api, client: Any, team: Team) -> Life:
    return Life(client, team, await api.customer("Margaret Hughes", PHONE))


@pytest.fixture
async def active(api: Api, life: Life) -> int:
    """An active restriction: recorded by one decider, decided by the other two."""
    return int((await api.restriction(life.customer_id, deciders=life.team.deciders))["id"])


async def test_proposed_with_too_few_deciders(life: Life, conn: asyncpg.Connection) -> None:
    r = await life.propose()
    assert r["status"] == "proposed" and r["deciders"] == [life.team.scl.id, life.team.cl1.id]
    assert r["missing_deciders"] == {"caution_lead": 1}
    assert r["channels"] == ["phone", "visit"]
    assert r["review_due"] == add_months(today(), 12).isoformat()
    assert await trail(conn, r["id"]) == [("created", life.team.scl.id), ("amended", life.team.cl1.id)]


async def test_the_last_decider_activates_it(life: Life, conn: asyncpg.Connection) -> None:
    rid = (await life.propose())["id"]
    r = await life.decide(rid, life.team.cl2)
    assert r["status"] == "active" and r["decided_on"] == today().isoformat()
    assert (await trail(conn, rid))[-2:] == [("amended", life.team.cl2.id), ("activated", life.team.cl2.id)]


async def test_sending_the_letter_is_recorded_with_a_copy(life: Life, active: int, conn: asyncpg.Connection) -> None:
    r = await life.send_letter(active)
    assert r["letter_sent_on"] == today().isoformat()
    assert (await kinds_of(conn, active))[-1] == "letter_sent"
    copy = await conn.fetchval("SELECT body_text FROM restriction_letters WHERE restriction_id = $1", active)
    assert "Housing Ombudsman" in copy


async def test_an_appeal_leaves_it_enforced(life: Life, active: int) -> None:
    r = await life.appeal(active)
    assert r["status"] == "under_appeal" and r["appeals"][0]["due_on"] > today().isoformat()


async def test_an_appeal_is_decided_by_an_uninvolved_senior_manager(
    life: Life, active: int, conn: asyncpg.Connection
) -> None:
    team = life.team
    await life.appeal(active)
    refused = await life.decide_appeal(active, team.scl, "lifted", "x", 403)  # a caution lead's key
    assert refused["error"]["code"] == "forbidden"
    await conn.execute(
        "UPDATE restrictions SET deciders = deciders || $2::bigint WHERE id = $1", active, team.manager.id
    )
    refused = await life.decide_appeal(active, team.manager, "lifted", "x", 409)
    assert refused["error"]["code"] == "involved"
    r = await life.decide_appeal(active, team.senior, "upheld", "Abuse is recorded.")
    assert r["status"] == "active" and r["appeals"][0]["outcome"] == "upheld"
    assert r["appeals"][0]["decided_by"] == team.senior.id
    assert (await trail(conn, active))[-2:] == [("appealed", team.cl1.id), ("appeal_decided", team.senior.id)]


async def test_an_appeal_varied_then_another_lifted(api: Api, life: Life, conn: asyncpg.Connection) -> None:
    team = life.team
    windows = [{"days": ["tue", "thu"], "start": "10:00", "end": "12:00"}]
    r = await api.restriction(life.customer_id, "set_times", params={"windows": windows}, deciders=team.deciders)
    await conn.execute("UPDATE restrictions SET letter_sent_on = current_date - 3 WHERE id = $1", r["id"])
    await life.appeal(r["id"])
    variation = {"params": {"windows": [{"days": ["wed"], "start": "14:00", "end": "16:00"}]}}
    decision = {"outcome": "varied", "notes": "Moved to Wednesdays.", "variation": variation}
    varied = await life.post(team.manager, f"/v1/restrictions/{r['id']}/appeal/decision", decision)
    assert varied["status"] == "active" and varied["params"]["windows"][0]["days"] == ["wed"]
    assert varied["letter_sent_on"] is None  # the letter sent describes Tuesdays: a new one is due
    await life.appeal(r["id"])  # a second appeal may be lodged once the first is decided
    lifted = await life.decide_appeal(r["id"], team.senior, "lifted", "Not proportionate.")
    assert lifted["status"] == "lifted" and [a["outcome"] for a in lifted["appeals"]] == ["varied", "lifted"]
    assert [a["decided_by"] for a in lifted["appeals"]] == [team.manager.id, team.senior.id]
    assert (await trail(conn, r["id"]))[-2:] == [("appeal_decided", team.senior.id), ("lifted", team.senior.id)]


async def test_a_review_renews_it_and_a_new_letter_falls_due(life: Life, active: int, conn: asyncpg.Connection) -> None:
    await life.send_letter(active)
    new_due = (today() + timedelta(days=180)).isoformat()
    r = await life.renew(active, new_due)
    assert r["reasons"] == RENEWED and r["review_due"] == new_due
    assert r["letter_sent_on"] is None and r["status"] == "active"
    reviewed = await conn.fetchrow(
        "SELECT before, after FROM restriction_events WHERE restriction_id = $1 AND kind = 'reviewed'",
        active,
    )
    assert reviewed["before"]["reasons"] != reviewed["after"]["reasons"]


async def test_a_full_read_is_audited_with_who_and_why(life: Life, active: int, conn: asyncpg.Connection) -> None:
    resp = await life.read_in_full(active)
    assert resp.status == 200 and (await resp.json())["incidents"]
    viewed = await conn.fetchrow(
        "SELECT actor, staff_id, why FROM restriction_events WHERE kind = 'viewed' ORDER BY id DESC LIMIT 1"
    )
    assert viewed["why"] == "monthly review meeting"
    assert viewed["staff_id"] == life.team.manager.id
    assert viewed["actor"] == f"staff:{life.team.manager.id}:Helen Morris"


async def test_lifting_ends_it(life: Life, active: int) -> None:
    assert (await life.lift(active))["status"] == "lifted"


async def test_the_trail_of_a_whole_life_in_order(life: Life, conn: asyncpg.Connection) -> None:
    """Each step is recorded as taken by the staff member whose key took it."""
    team = life.team
    rid = (await life.propose())["id"]
    await life.decide(rid, team.cl2)
    await life.letter(rid, "?format=text")
    await life.letter(rid)
    await life.send_letter(rid)
    await life.appeal(rid)
    await life.decide_appeal(rid, team.senior, "upheld", "Abuse is recorded.")
    await life.renew(rid, (today() + timedelta(days=180)).isoformat())
    await life.read_in_full(rid)
    await life.lift(rid)
    assert await trail(conn, rid) == [
        ("created", team.scl.id),
        ("amended", team.cl1.id),
        ("amended", team.cl2.id),
        ("activated", team.cl2.id),
        ("viewed", team.cl1.id),
        ("viewed", team.cl1.id),
        ("letter_sent", team.cl1.id),
        ("appealed", team.cl1.id),
        ("appeal_decided", team.senior.id),
        ("reviewed", team.cl3.id),
        ("viewed", team.manager.id),
        ("lifted", team.cl1.id),
    ]


async def test_the_audit_trail_refuses_changes_in_sql(active: int, conn: asyncpg.Connection) -> None:
    for sql in (
        "UPDATE restriction_events SET why = 'x' WHERE restriction_id = $1",
        "DELETE FROM restriction_events WHERE restriction_id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql, active)


async def test_an_appeal_open_when_its_restriction_is_lifted_or_lapses_is_ended(
    life: Life, active: int, api: Api, conn: asyncpg.Connection
) -> None:
    """Nothing is left to decide: the appeal is closed as 'ended' on that day, by no one, so no
    appeal stays open against a restriction no longer in force (and the lift's event says so)."""
    await life.appeal(active)
    lifted = await life.lift(active)
    (appeal,) = lifted["appeals"]
    assert (appeal["outcome"], appeal["decided_on"], appeal["decided_by"]) == ("ended", today().isoformat(), None)
    assert "lifted by staff" in appeal["notes"]
    after = await conn.fetchval(
        "SELECT after FROM restriction_events WHERE restriction_id = $1 AND kind = 'lifted'", active
    )
    assert after["appeal_ended"] == appeal["id"]
    await life.decide_appeal(active, life.team.senior, "upheld", "Too late.", status=409)

    # One that lapses under appeal: its appeal ends the day after its last day.
    second = await api.restriction(life.customer_id, "appointment_only", deciders=life.team.deciders)
    await life.appeal(second["id"])
    await conn.execute(
        "UPDATE restrictions SET valid_from = $2, valid_to = $3 WHERE id = $1",
        second["id"],
        today() - timedelta(days=30),
        today() - timedelta(days=3),
    )
    await conn.execute(
        "UPDATE appeals SET lodged_on = $2 WHERE restriction_id = $1", second["id"], today() - timedelta(days=10)
    )
    assert await lapse_expired(conn, today()) == [(second["id"], life.customer_id)]
    row = await conn.fetchrow("SELECT outcome, decided_on FROM appeals WHERE restriction_id = $1", second["id"])
    assert (row["outcome"], row["decided_on"]) == ("ended", today() - timedelta(days=2))
