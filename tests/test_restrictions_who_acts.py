"""Who acts is who is signed in (DESIGN §7, policy 000 §6.2-6.3): a key belongs to one staff member and
follows them; each decider decides with their own key; a body naming someone else is refused; an
appeal goes to a manager who took no part."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.factory import PHONE, Api, Member, Team, bearer, insert_unowned_key, restriction_body, today

pytestmark = pytest.mark.asyncio


async def post(client: Any, who: Member | dict[str, str], path: str, data: dict[str, Any]) -> tuple[int, Any]:
    headers = who.headers if isinstance(who, Member) else who
    resp = await client.post(path, json=data, headers=headers)
    return resp.status, await resp.json()


async def status_of(conn: asyncpg.Connection, rid: int) -> str:
    return str(await conn.fetchval("SELECT status FROM restrictions WHERE id = $1", rid))


@pytest.fixture
async def customer(api: Api) -> int:
    return await api.customer("Margaret Hughes", PHONE)


async def test_one_caution_lead_cannot_activate_a_restriction_by_naming_others(
    client: Any, team: Team, customer: int, conn: asyncpg.Connection
) -> None:
    named = restriction_body(customer, deciders=[team.scl.id, team.cl1.id, team.cl2.id])
    status, body = await post(client, team.cl1, "/v1/restrictions", named)
    assert status == 403 and body["error"]["code"] == "not_you"
    assert "each other decider adds themselves with their own key" in body["error"]["message"]
    assert await conn.fetchval("SELECT count(*) FROM restrictions") == 0
    # Recorded alone, it waits for the others; the same key naming them one by one is refused.
    status, made = await post(client, team.cl1, "/v1/restrictions", restriction_body(customer))
    assert status == 201 and made["deciders"] == [team.cl1.id] and made["status"] == "proposed"
    for other in (team.scl, team.cl2):
        status, body = await post(client, team.cl1, f"/v1/restrictions/{made['id']}/decide", {"staff_id": other.id})
        assert status == 403 and body["error"]["code"] == "not_you"
    status, body = await post(client, team.cl1, f"/v1/restrictions/{made['id']}/decide", {})
    assert status == 409 and body["error"]["code"] == "duplicate_decider"
    assert await status_of(conn, made["id"]) == "proposed"
    # Each of the others, with their own key, makes three distinct people: now it is active.
    await post(client, team.scl, f"/v1/restrictions/{made['id']}/decide", {"staff_id": team.scl.id})
    status, done = await post(client, team.cl2, f"/v1/restrictions/{made['id']}/decide", {})
    assert status == 200 and done["status"] == "active" and done["deciders"] == [team.cl1.id, team.scl.id, team.cl2.id]


async def test_a_body_naming_someone_else_is_refused_at_every_step(
    api: Api, client: Any, team: Team, customer: int, conn: asyncpg.Connection
) -> None:
    rid = (await api.restriction(customer, deciders=team.deciders))["id"]
    base = f"/v1/restrictions/{rid}"
    for who, step, body in [
        (team.cl3, "/review", {"outcome": "renew", "reasons": "Still needed.", "staff_id": team.scl.id}),
        (team.cl3, "/lift", {"reason": "Behaviour improved.", "staff_id": team.scl.id}),
    ]:
        status, refused = await post(client, who, base + step, body)
        assert status == 403 and refused["error"]["code"] == "not_you", refused
        assert f"staff_id names staff member {team.scl.id}" in refused["error"]["message"]
        assert f"signed in as staff member {team.cl3.id}" in refused["error"]["message"]
    await post(client, team.cl1, base + "/appeal", {"lodged_on": today().isoformat(), "grounds": "Unfair."})
    decision = {"outcome": "lifted", "notes": "Not proportionate.", "staff_id": team.senior.id}
    status, refused = await post(client, team.manager, base + "/appeal/decision", decision)
    assert status == 403 and refused["error"]["code"] == "not_you"
    assert await status_of(conn, rid) == "under_appeal"
    # Naming yourself is what a caller that still sends the field does: accepted.
    status, decided = await post(client, team.senior, base + "/appeal/decision", decision)
    assert status == 200 and decided["status"] == "lifted" and decided["appeals"][0]["decided_by"] == team.senior.id


async def test_a_caution_lead_key_cannot_decide_an_appeal(
    api: Api, client: Any, team: Team, customer: int, conn: asyncpg.Connection
) -> None:
    rid = (await api.restriction(customer, deciders=team.deciders))["id"]
    await post(client, team.cl1, f"/v1/restrictions/{rid}/appeal", {"lodged_on": today().isoformat(), "grounds": "x"})
    for lead in (team.cl3, team.scl):  # uninvolved, or a service caution lead: still not a manager
        status, body = await post(
            client, lead, f"/v1/restrictions/{rid}/appeal/decision", {"outcome": "lifted", "notes": "x"}
        )
        assert status == 403 and body["error"]["code"] == "forbidden"
    assert await status_of(conn, rid) == "under_appeal"


async def test_an_appeal_is_refused_to_a_manager_who_took_part(
    api: Api, client: Any, team: Team, conn: asyncpg.Connection
) -> None:
    """A caution lead who decided, since promoted to manager, and the manager who signed the equality
    note both took part; a senior manager who did not decides."""
    customer = await api.customer("Eileen Murphy", PHONE, adjustments={"flags": ["needs_phone"]})
    note = {"staff_id": team.manager.id, "note": "Email suits her; considered under the Equality Act."}
    rid = (await api.restriction(customer, deciders=team.deciders, equality_note=note, note_signer=team.manager))["id"]
    await post(client, team.cl3, f"/v1/restrictions/{rid}/appeal", {"lodged_on": today().isoformat(), "grounds": "x"})
    await conn.execute("UPDATE staff SET role = 'manager' WHERE id = $1", team.cl2.id)
    promoted = bearer(await api.key_of(team.cl2.id))  # their key role follows their staff role
    decision = {"outcome": "lifted", "notes": "Not proportionate."}
    for who in (promoted, team.manager):
        status, body = await post(client, who, f"/v1/restrictions/{rid}/appeal/decision", decision)
        assert status == 409 and body["error"]["code"] == "involved", body
    status, body = await post(client, team.senior, f"/v1/restrictions/{rid}/appeal/decision", decision)
    assert status == 200 and body["status"] == "lifted"


async def test_a_deactivated_staff_members_key_is_refused(
    api: Api, client: Any, team: Team, customer: int, conn: asyncpg.Connection
) -> None:
    await conn.execute("UPDATE staff SET active = false WHERE id = $1", team.cl3.id)
    resp = await client.get(f"/v1/customers/{customer}", headers=team.cl3.headers)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    status, _ = await post(client, team.cl3, "/v1/restrictions", restriction_body(customer))
    assert status == 401
    assert (await client.get(f"/v1/customers/{customer}", headers=team.cl1.headers)).status == 200


async def test_a_step_by_a_member_who_left_since_their_key_was_checked_is_refused(
    client: Any, team: Team, customer: int, conn: asyncpg.Connection
) -> None:
    """Within the key cache's 30 s the key still gets in; the step itself reads the staff row."""
    status, made = await post(client, team.cl1, "/v1/restrictions", restriction_body(customer))
    assert status == 201
    await conn.execute("UPDATE staff SET active = false WHERE id = $1", team.cl1.id)
    status, body = await post(client, team.cl1, f"/v1/restrictions/{made['id']}/lift", {"reason": "x"})
    assert status == 403 and body["error"]["code"] == "not_active"
    assert await status_of(conn, made["id"]) == "proposed"


async def test_a_key_follows_its_staff_members_role(
    api: Api, client: Any, team: Team, customer: int, conn: asyncpg.Connection
) -> None:
    # cl3's key has not been used yet, so nothing has cached what it was.
    await conn.execute("UPDATE staff SET role = 'agent' WHERE id = $1", team.cl3.id)
    assert (await client.get("/v1/banners?customer_id=1", headers=team.cl3.headers)).status == 200
    status, _ = await post(client, team.cl3, "/v1/restrictions", restriction_body(customer))
    assert status == 403
    listed = {k["staff_id"]: k["role"] for k in await conn.fetch("SELECT staff_id, role FROM api_keys")}
    assert listed[team.scl.id] == "caution_lead" and listed[team.senior.id] == "manager"


async def test_keys_without_a_staff_member_may_only_read(
    api: Api, client: Any, keys: dict[str, str], team: Team, customer: int, conn: asyncpg.Connection
) -> None:
    old = bearer(await insert_unowned_key(conn, "caution_lead"))
    assert (await client.get(f"/v1/customers/{customer}", headers=old)).status == 200
    status, body = await post(client, old, "/v1/restrictions", restriction_body(customer))
    assert status == 403 and "belongs to no staff member" in body["error"]["message"]
    status, _ = await post(client, old, "/v1/cases", {"customer_id": customer, "reference": "CMP-9", "subject": "x"})
    assert status == 403
    # The admin key is no one: it reads the full record but takes no step.
    rid = (await api.restriction(customer, deciders=team.deciders))["id"]
    admin = bearer(keys["admin"])
    assert (await client.get(f"/v1/restrictions/{rid}?why=audit+check", headers=admin)).status == 200
    status, body = await post(client, admin, f"/v1/restrictions/{rid}/lift", {"reason": "x"})
    assert status == 403 and body["error"]["code"] == "forbidden"
    viewed = await conn.fetchrow("SELECT actor, staff_id FROM restriction_events WHERE kind = 'viewed'")
    assert viewed["staff_id"] is None and viewed["actor"].startswith("key:")


async def test_who_made_each_key_is_recorded_and_cannot_be_rewritten(
    client: Any, conn: asyncpg.Connection, keys: dict[str, str]
) -> None:
    """A key is a credential: the admin key that minted one is named in its trail, which is append-only."""
    admin = bearer(keys["admin"])
    status, made = await post(client, admin, "/v1/keys", {"role": "channel", "name": "Genesys"})
    assert status == 201
    minter = await conn.fetchrow("SELECT id, name FROM api_keys WHERE role = 'admin' AND name = 'test admin'")
    event = await conn.fetchrow("SELECT kind, actor, staff_id FROM api_key_events WHERE key_id = $1", made["id"])
    assert dict(event) == {"kind": "created", "actor": f"key:{minter['id']}:{minter['name']}", "staff_id": None}
    for change in (
        "UPDATE api_key_events SET actor = 'someone else'",
        "DELETE FROM api_key_events",
        "TRUNCATE api_key_events",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(change)


async def test_keys_are_made_for_staff_members_or_systems(client: Any, keys: dict[str, str], team: Team) -> None:
    admin = bearer(keys["admin"])
    status, made = await post(client, admin, "/v1/keys", {"staff_id": team.scl.id, "name": "Priya's laptop"})
    assert status == 201 and made["role"] == "caution_lead" and made["staff_id"] == team.scl.id
    assert made["name"] == "Priya's laptop" and made["key"].startswith("gwk_")
    status, made = await post(client, admin, "/v1/keys", {"role": "channel", "name": "Twilio"})
    assert status == 201 and made["staff_id"] is None
    for body, said in [
        ({"role": "caution_lead", "name": "shared"}, "belongs to a staff member"),
        ({"staff_id": team.scl.id, "role": "manager"}, "give staff_id or role, not both"),
        ({"staff_id": 999999}, "does not exist or is inactive"),
        ({"role": "admin"}, "role and name"),
    ]:
        status, refused = await post(client, admin, "/v1/keys", body)
        assert status == 422 and said in refused["error"]["message"], refused
