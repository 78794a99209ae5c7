"""Sign-offs are given by the person asked, signed in (DESIGN §3.1, §3.3; policy 000 §7.1): a caution
lead names the manager to sign an equality note, or the approver of a longer review period; until
that person signs with their own key, the note holds the restriction proposed and the longer period
is not in force."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from gateway.lifecycle import add_months
from tests.factory import PHONE, Api, Member, Team, restriction_body, today, yesterday

pytestmark = pytest.mark.asyncio

NOTE = {"note": "Email and letters suit her; considered under the Equality Act."}


def longer() -> str:
    """A review date beyond the usual 12 months, which needs an approver."""
    return (today() + timedelta(days=500)).isoformat()


def default_due() -> str:
    """The review date a restriction starting yesterday gets by default."""
    return add_months(yesterday(), 12).isoformat()


async def post(client: Any, who: Member, path: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
    resp = await client.post(path, json=data or {}, headers=who.headers)
    return resp.status, await resp.json()


async def longer_period_asked(api: Api, team: Team) -> dict[str, Any]:
    """An active restriction whose longer review period waits for the manager's approval."""
    cid = await api.customer("Kevin Doyle", PHONE)
    return await api.restriction(cid, deciders=team.deciders, review_due=longer(), review_approver=team.manager.id)


async def awaited(client: Any, who: Member, rid: int) -> dict[str, Any]:
    """What the review-due report says of restriction `rid` (issues, and who was asked to sign)."""
    resp = await client.get("/v1/reviews/due?within=30d", headers=who.headers)
    assert resp.status == 200
    items = [i for i in (await resp.json())["items"] if i["restriction_id"] == rid]
    assert len(items) == 1, f"restriction {rid} is not in the report"
    return {k: items[0][k] for k in ("issues", "equality_note_asked_of", "review_period_asked_of")}


async def events_of(conn: asyncpg.Connection, rid: int) -> list[tuple[str, int | None]]:
    rows = await conn.fetch("SELECT kind, staff_id FROM restriction_events WHERE restriction_id = $1 ORDER BY id", rid)
    return [(r["kind"], r["staff_id"]) for r in rows]


async def test_an_equality_note_holds_the_restriction_until_its_manager_signs(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    cid = await api.customer("Eileen Murphy", PHONE, adjustments={"flags": ["needs_phone"]})
    note = {**NOTE, "staff_id": team.manager.id}
    # Every decider has decided: without the note's signature it is still not enforced.
    made = await api.restriction(cid, deciders=team.deciders, status="proposed", equality_note=note)
    rid = made["id"]
    assert made["equality_note"] is None
    assert made["equality_note_asked"]["staff_id"] == team.manager.id
    assert made["equality_note_asked"]["asked_by"] == team.scl.id
    assert made["missing_deciders"] == {}
    path = f"/v1/restrictions/{rid}/equality-note/sign"
    # Not a manager; a manager who was not asked; a body naming the manager sent with another's key.
    status, body = await post(client, team.cl3, path)
    assert status == 403 and body["error"]["code"] == "forbidden", body
    status, body = await post(client, team.senior, path)
    assert status == 403 and body["error"]["code"] == "not_you", body
    assert str(team.manager.id) in body["error"]["message"]
    status, body = await post(client, team.senior, path, {"staff_id": team.manager.id})
    assert status == 403 and body["error"]["code"] == "not_you", body
    assert await conn.fetchval("SELECT status FROM restrictions WHERE id = $1", rid) == "proposed"
    # The review meeting's report shows whose signature it waits for.
    report = await awaited(client, team.manager, rid)
    assert "equality_note_unsigned" in report["issues"] and report["equality_note_asked_of"] == team.manager.id
    # The manager asked signs it, and that activates it.
    status, body = await post(client, team.manager, path)
    assert status == 200, body
    assert body["status"] == "active" and body["equality_note_asked"] is None
    assert body["equality_note"] == {"staff_id": team.manager.id, "note": NOTE["note"], "on": today().isoformat()}
    kinds = await events_of(conn, rid)
    assert ("equality_note_signed", team.manager.id) in kinds
    assert kinds[-1] == ("activated", team.manager.id)
    # Signed once: nothing is asked any more.
    status, body = await post(client, team.manager, path)
    assert status == 409 and body["error"]["code"] == "nothing_asked", body


async def test_someone_asked_who_has_not_signed_took_no_part(api: Api, client: Any, team: Team) -> None:
    """The approver asked of a longer period may decide an appeal while they have not agreed it; once
    they have, they took part and may not."""
    cid = await api.customer("Eileen Murphy", PHONE)
    decision = {"outcome": "upheld", "notes": "Proportionate."}
    appeal = {"lodged_on": today().isoformat(), "grounds": "Unfair."}
    asked = {"review_due": longer(), "review_approver": team.manager.id}
    first = (await api.restriction(cid, deciders=team.deciders, **asked))["id"]
    second = (await api.restriction(cid, "appointment_only", deciders=team.deciders, **asked))["id"]
    status, body = await post(client, team.manager, f"/v1/restrictions/{second}/review-period/approve")
    assert status == 200, body
    for rid in (first, second):
        status, body = await post(client, team.cl3, f"/v1/restrictions/{rid}/appeal", appeal)
        assert status == 200, body
    status, body = await post(client, team.manager, f"/v1/restrictions/{second}/appeal/decision", decision)
    assert status == 409 and body["error"]["code"] == "involved", body
    status, body = await post(client, team.manager, f"/v1/restrictions/{first}/appeal/decision", decision)
    assert status == 200 and body["status"] == "active", body
    # A sign-off is not given on a restriction that has ended.
    status, body = await post(client, team.cl3, f"/v1/restrictions/{first}/lift", {"reason": "Recorded in error."})
    assert status == 200 and body["status"] == "lifted", body
    status, body = await post(client, team.manager, f"/v1/restrictions/{first}/review-period/approve")
    assert status == 409 and body["error"]["code"] == "wrong_status", body


async def test_a_longer_review_period_is_in_force_only_once_its_approver_agrees(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    made = await longer_period_asked(api, team)
    rid = made["id"]
    # Active at once (the deciders decided), reviewed on the default date until the approver agrees.
    assert made["review_due"] == default_due() and made["review_approver"] is None
    asked = made["review_period_asked"]
    assert asked["approver"] == team.manager.id and asked["review_due"] == longer()
    # The customer is written to meanwhile.
    assert (await post(client, team.cl1, f"/v1/restrictions/{rid}/letter"))[0] == 200
    report = await awaited(client, team.cl1, rid)
    assert "review_period_unapproved" in report["issues"] and report["review_period_asked_of"] == team.manager.id
    path = f"/v1/restrictions/{rid}/review-period/approve"
    for who, code in ((team.cl1, "wrong_role"), (team.scl, "not_you"), (team.senior, "not_you")):
        status, body = await post(client, who, path)
        assert status == 403 and body["error"]["code"] == code, (who.name, body)
    status, body = await post(client, team.agent, path)
    assert status == 403, body
    status, body = await post(client, team.manager, path)
    assert status == 200, body
    assert body["review_due"] == longer() and body["review_approver"] == team.manager.id
    assert body["review_period_asked"] is None
    # The letter told the customer the default date: a new one is due.
    assert body["letter_sent_on"] is None
    assert ("review_period_approved", team.manager.id) in await events_of(conn, rid)
    assert "review_period_unapproved" not in (await awaited(client, team.cl1, rid))["issues"]
    status, body = await post(client, team.manager, path)
    assert status == 409 and body["error"]["code"] == "nothing_asked", body


async def test_an_approver_taking_the_step_themselves_agrees_it_at_once(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Aisha Rahman", PHONE)
    body = restriction_body(cid, review_due=longer(), review_approver=team.scl.id)
    resp = await client.post("/v1/restrictions", json=body, headers=team.scl.headers)
    made = await resp.json()
    assert resp.status == 201, made
    assert made["review_due"] == longer() and made["review_approver"] == team.scl.id
    assert made["review_period_asked"] is None
    # A period no longer than the default needs nobody's approval, so none is recorded.
    short = restriction_body(cid, "appointment_only", review_approver=team.manager.id)
    resp = await client.post("/v1/restrictions", json=short, headers=team.cl1.headers)
    made = await resp.json()
    assert resp.status == 201, made
    assert made["review_approver"] is None and made["review_period_asked"] is None


async def test_a_renewal_asks_for_a_longer_period_like_a_new_restriction(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Ravi Patel", PHONE)
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    renewal = {
        "outcome": "renew",
        "reasons": "Calls continued after the letter.",
        "review_due": longer(),
        "review_approver": team.senior.id,
    }
    status, body = await post(client, team.cl2, f"/v1/restrictions/{rid}/review", renewal)
    assert status == 200, body
    assert body["review_due"] == add_months(today(), 12).isoformat() and body["review_approver"] is None
    assert body["review_period_asked"]["approver"] == team.senior.id
    status, body = await post(client, team.senior, f"/v1/restrictions/{rid}/review-period/approve")
    assert status == 200, body
    assert body["review_due"] == longer() and body["review_approver"] == team.senior.id
    # A later renewal within the default period replaces what was asked and agreed before.
    status, body = await post(client, team.cl2, f"/v1/restrictions/{rid}/review", {**renewal, "review_due": None})
    assert status == 200, body
    assert body["review_approver"] is None and body["review_period_asked"] is None


async def test_a_signature_is_not_dated_before_it_was_asked_and_a_leaver_is_replaced(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    cid = await api.customer("Eileen Murphy", PHONE, adjustments={"flags": ["needs_phone"]})
    note = {**NOTE, "staff_id": team.manager.id}
    rid = (await api.restriction(cid, deciders=team.deciders, status="proposed", equality_note=note))["id"]
    path = f"/v1/restrictions/{rid}/equality-note/sign"
    status, body = await post(client, team.manager, path, {"on": (today() - timedelta(days=30)).isoformat()})
    assert status == 422 and "on" in body["error"]["message"], body
    # The manager asked leaves before signing: another manager may sign, recorded as the signer.
    await conn.execute("UPDATE staff SET active = false WHERE id = $1", team.manager.id)
    status, body = await post(client, team.senior, path)
    assert status == 200 and body["status"] == "active", body
    assert body["equality_note"]["staff_id"] == team.senior.id
    assert ("equality_note_signed", team.senior.id) in await events_of(conn, rid)


async def test_a_note_signed_when_the_way_in_is_gone_stands_and_the_restriction_waits(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    """Signing is not undone by an activation the way-in check refuses; the restriction stays proposed."""
    daughter = {"name": "Ann Hughes", "relationship": "daughter", "identifiers": []}
    cid = await api.customer(
        "Margaret Hughes", PHONE, adjustments={"flags": ["cannot_write"]}, representatives=[daughter]
    )
    note = {**NOTE, "staff_id": team.manager.id}
    rid = (await api.restriction(cid, deciders=team.deciders, status="proposed", equality_note=note))["id"]
    await conn.execute("DELETE FROM representatives WHERE customer_id = $1", cid)
    status, body = await post(client, team.manager, f"/v1/restrictions/{rid}/equality-note/sign")
    assert status == 200, body
    assert body["status"] == "proposed" and body["equality_note"]["staff_id"] == team.manager.id


async def test_an_approval_does_not_undo_an_appeal_that_brought_the_review_forward(
    api: Api, client: Any, team: Team
) -> None:
    cid = await api.customer("Kevin Doyle", PHONE)
    asked = {"review_due": longer(), "review_approver": team.manager.id}
    rid = (await api.restriction(cid, deciders=team.deciders, **asked))["id"]
    path = f"/v1/restrictions/{rid}/review-period/approve"
    appeal = {"lodged_on": today().isoformat(), "grounds": "Too long."}
    assert (await post(client, team.cl3, f"/v1/restrictions/{rid}/appeal", appeal))[0] == 200
    # Not while the appeal is being decided.
    status, body = await post(client, team.manager, path)
    assert status == 409 and body["error"]["code"] == "wrong_status", body
    sooner = (today() + timedelta(days=90)).isoformat()
    decision = {"outcome": "varied", "notes": "Review sooner.", "variation": {"review_due": sooner}}
    status, body = await post(client, team.senior, f"/v1/restrictions/{rid}/appeal/decision", decision)
    assert status == 200 and body["review_due"] == sooner, body
    status, body = await post(client, team.manager, path)
    assert status == 409 and body["error"]["code"] == "stale", body


async def test_a_manager_asked_may_decline_the_equality_note_and_it_stays_proposed(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    cid = await api.customer("Eileen Murphy", PHONE, adjustments={"flags": ["needs_phone"]})
    # Two deciders of three so far: the third comes after the decline.
    made = await api.restriction(
        cid, deciders=team.deciders[:2], status="proposed", equality_note={**NOTE, "staff_id": team.manager.id}
    )
    rid = made["id"]
    path = f"/v1/restrictions/{rid}/equality-note/decline"
    reason = {"reason": "Phone is her only way in; a named contact would do."}
    # Only the manager asked declines, with a reason.
    status, body = await post(client, team.senior, path, reason)
    assert status == 403 and body["error"]["code"] == "not_you", body
    status, body = await post(client, team.manager, path)
    assert status == 422, body
    status, body = await post(client, team.manager, path, reason)
    assert status == 200, body
    assert body["status"] == "proposed" and body["equality_note"] is None and body["equality_note_asked"] is None
    rows = await conn.fetch(
        "SELECT staff_id, why FROM restriction_events WHERE restriction_id = $1 AND kind = $2",
        rid,
        "equality_note_declined",
    )
    assert len(rows) == 1 and rows[0]["staff_id"] == team.manager.id and reason["reason"] in rows[0]["why"]
    # Nothing is asked any more: neither signing nor declining again.
    for step, sent in (("sign", {}), ("decline", reason)):
        status, body = await post(client, team.manager, f"/v1/restrictions/{rid}/equality-note/{step}", sent)
        assert status == 409 and body["error"]["code"] == "nothing_asked", body
    # The review meeting sees it, and it is never enforced without a signed note.
    report = await awaited(client, team.cl1, rid)
    assert "equality_note_declined" in report["issues"] and "equality_note_unsigned" not in report["issues"]
    assert report["equality_note_asked_of"] is None
    assert ("equality_note_declined", team.manager.id) in await events_of(conn, rid)
    # The decline binds: the last decider's decision does not enforce it.
    status, body = await post(client, team.deciders[2], f"/v1/restrictions/{rid}/decide")
    assert status == 409 and body["error"]["code"] == "note_declined", body
    assert await conn.fetchval("SELECT status FROM restrictions WHERE id = $1", rid) == "proposed"
    # Lifted, it leaves the report.
    status, body = await post(client, team.cl1, f"/v1/restrictions/{rid}/lift", {"reason": "Note declined."})
    assert status == 200 and body["status"] == "lifted", body
    resp = await client.get("/v1/reviews/due?within=30d", headers=team.cl1.headers)
    assert rid not in [i["restriction_id"] for i in (await resp.json())["items"]]


async def test_an_approver_may_decline_a_longer_period_and_the_default_stands(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    made = await longer_period_asked(api, team)
    rid = made["id"]
    path = f"/v1/restrictions/{rid}/review-period/decline"
    reason = {"reason": "Twelve months is enough; review it then."}
    for who, code in ((team.cl1, "wrong_role"), (team.scl, "not_you")):
        status, body = await post(client, who, path, reason)
        assert status == 403 and body["error"]["code"] == code, (who.name, body)
    status, body = await post(client, team.manager, path, reason)
    assert status == 200, body
    assert body["status"] == "active" and body["review_due"] == default_due()
    assert body["review_approver"] is None and body["review_period_asked"] is None
    assert ("review_period_declined", team.manager.id) in await events_of(conn, rid)
    issues = (await awaited(client, team.cl1, rid))["issues"]
    assert "review_period_unapproved" not in issues and "equality_note_declined" not in issues
    status, body = await post(client, team.manager, f"/v1/restrictions/{rid}/review-period/approve")
    assert status == 409 and body["error"]["code"] == "nothing_asked", body
    # Declining is taking part: the approver who declined may not decide an appeal on it.
    appeal = {"lodged_on": today().isoformat(), "grounds": "Unfair."}
    assert (await post(client, team.cl3, f"/v1/restrictions/{rid}/appeal", appeal))[0] == 200
    decision = {"outcome": "upheld", "notes": "Proportionate."}
    status, body = await post(client, team.manager, f"/v1/restrictions/{rid}/appeal/decision", decision)
    assert status == 409 and body["error"]["code"] == "involved", body
