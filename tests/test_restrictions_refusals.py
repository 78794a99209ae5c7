"""Each refusal on saving or changing a restriction: a clear 4xx naming the field or conflict."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from tests.factory import PHONE, Api, Member, Team, restriction_body, today

pytestmark = pytest.mark.asyncio

# Someone who can write for the customer: with them, a customer who cannot write still has a way in.
DAUGHTER = {"name": "Ann Hughes", "relationship": "daughter", "identifiers": []}


async def refused(client: Any, who: Member, data: Any, status: int, path: str = "/v1/restrictions") -> dict[str, Any]:
    resp = await client.post(path, json=data, headers=who.headers)
    payload = await resp.json()
    assert resp.status == status, payload
    return payload["error"]  # type: ignore[no-any-return]


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


async def test_field_refusals(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    lead = team.cl1
    ok = restriction_body(cid)
    cases = [
        (without(ok, "reason_category"), "reason_category"),
        ({**ok, "reason_category": "rude"}, "reason_category"),
        ({**ok, "reasons": ""}, "reasons"),
        (without(ok, "reasons"), "reasons"),
        ({**ok, "incidents": []}, "incidents"),
        ({**ok, "incidents": [{"description": "no date"}]}, "incidents.0.on"),
        (
            {
                **ok,
                "incidents": [{"on": (today() + timedelta(days=2)).isoformat(), "description": "x"}],
            },
            "incidents.0.on",
        ),
        (without(ok, "warned_on"), "warned_on"),
        ({**ok, "review_due": (today() + timedelta(days=400)).isoformat()}, "review_due"),
        (
            {
                **ok,
                "review_due": (today() + timedelta(days=400)).isoformat(),
                "review_approver": team.cl1.id,
            },
            "review_approver",
        ),
        ({**ok, "kind": "named_contact", "params": {"staff_id": 999}}, "params.staff_id"),
        (
            {
                **ok,
                "kind": "set_times",
                "params": {"windows": [{"days": ["xyz"], "start": "10:00", "end": "12:00"}]},
            },
            "params",
        ),
        ({**ok, "kind": "contact_limit", "params": {"limit": 0, "period": "day"}}, "params"),
        ({**ok, "deciders": [team.cl1.id, team.cl1.id]}, "deciders"),
        ({**ok, "channels": ["fax"]}, "channels"),
        ({**ok, "customer_id": "abc"}, "customer_id"),
    ]
    for data, field in cases:
        err = await refused(client, lead, data, 422)
        assert field in err["message"] or any(field in d.get("field", "") for d in err["details"] or []), (field, err)
    # A longer period with an approver who may agree it; immediate risk instead of a warning.
    longer = {
        **without(ok, "warned_on"),
        "immediate_risk": "Threat to harm staff",
        "review_due": (today() + timedelta(days=400)).isoformat(),
        "review_approver": team.manager.id,
    }
    resp = await client.post("/v1/restrictions", json=longer, headers=lead.headers)
    assert resp.status == 201, await resp.json()
    # Bad bodies never 500.
    for raw in (b"", b"[]", b"{", b"null", b'{"kind": "caution", "params": 5}'):
        resp = await client.post(
            "/v1/restrictions",
            data=raw,
            headers={**lead.headers, "Content-Type": "application/json"},
        )
        assert 400 <= resp.status < 500


async def test_closed_issue_needs_an_exhausted_case_of_the_customer(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    other = await api.customer("Kevin Doyle", PHONE)
    open_case = await api.case(cid, "CMP-1", "open")
    exhausted = await api.case(cid, "CMP-2", "exhausted")
    theirs = await api.case(other, "CMP-3", "closed")
    lead = team.cl1
    err = await refused(client, lead, restriction_body(cid, "closed_issue", params={"case_id": open_case}), 422)
    assert "CMP-1 is open" in err["message"]
    closed = await api.case(cid, "CMP-4", "closed")  # may still be escalated: not yet exhausted
    err = await refused(client, lead, restriction_body(cid, "closed_issue", params={"case_id": closed}), 422)
    assert "CMP-4 is closed" in err["message"] and "exhausted" in err["message"]
    err = await refused(client, lead, restriction_body(cid, "closed_issue", params={"case_id": theirs}), 422)
    assert "another customer" in err["message"]
    err = await refused(client, lead, restriction_body(cid, "closed_issue", params={"case_id": 4242}), 422)
    assert "does not exist" in err["message"]
    resp = await client.post(
        "/v1/restrictions",
        json=restriction_body(cid, "closed_issue", params={"case_id": exhausted}),
        headers=lead.headers,
    )
    assert resp.status == 201
    assert (await resp.json())["channels"] == ["email", "letter", "phone", "visit", "web_form"]


async def test_last_open_channel(api: Api, client: Any, team: Team) -> None:
    """Someone who cannot write, with no representative: written-only would leave no way in."""
    cid = await api.customer("Margaret Hughes", PHONE, adjustments={"flags": ["cannot_write"]})
    err = await refused(
        client,
        team.cl1,
        restriction_body(
            cid,
            equality_note={"staff_id": team.manager.id, "note": "Considered under the Equality Act."},
        ),
        409,
    )
    assert err["code"] == "no_open_channel" and "every channel" in err["message"]
    # With a representative who can write for them there is still a way in (and a signed note).
    cid2 = await api.customer(
        "Aisha Rahman", PHONE, adjustments={"flags": ["cannot_write"]}, representatives=[DAUGHTER]
    )
    resp = await client.post(
        "/v1/restrictions",
        json=restriction_body(cid2, equality_note={"staff_id": team.manager.id, "note": "Daughter writes for her."}),
        headers=team.cl1.headers,
    )
    assert resp.status == 201, await resp.json()


async def test_activation_rechecks_the_way_in(api: Api, client: Any, conn: asyncpg.Connection, team: Team) -> None:
    cid = await api.customer(
        "Margaret Hughes", PHONE, adjustments={"flags": ["cannot_write"]}, representatives=[DAUGHTER]
    )
    note = {"staff_id": team.manager.id, "note": "Representative writes."}
    made = await api.restriction(
        cid, equality_note=note, deciders=[team.scl], status="proposed", note_signer=team.manager
    )
    rid = made["id"]
    # The representative is removed before the remaining decisions.
    await conn.execute("DELETE FROM representatives WHERE customer_id = $1", cid)
    resp = await client.post(f"/v1/restrictions/{rid}/decide", json={}, headers=team.cl1.headers)
    assert resp.status == 200
    err = await refused(client, team.cl2, {}, 409, f"/v1/restrictions/{rid}/decide")
    assert err["code"] == "no_open_channel"
    assert await conn.fetchval("SELECT status FROM restrictions WHERE id = $1", rid) == "proposed"


async def test_adjustments_conflict_needs_a_managers_equality_note(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE, adjustments={"flags": ["needs_phone"]})
    lead = team.cl1
    err = await refused(client, lead, restriction_body(cid), 409)
    assert err["code"] == "adjustments_conflict" and "needs_phone" in err["message"]
    err = await refused(client, lead, restriction_body(cid, equality_note={"staff_id": team.cl1.id, "note": "ok"}), 422)
    assert "equality_note.staff_id" in err["message"]
    resp = await client.post(
        "/v1/restrictions",
        json=restriction_body(
            cid,
            equality_note={
                "staff_id": team.manager.id,
                "note": "Email and letters suit her; reviewed under the Equality Act.",
            },
        ),
        headers=lead.headers,
    )
    assert resp.status == 201
    made = await resp.json()  # saved, waiting for the manager's signature
    assert made["equality_note"] is None and made["equality_note_asked"]["staff_id"] == team.manager.id
    signed = await client.post(
        f"/v1/restrictions/{made['id']}/equality-note/sign", json={}, headers=team.manager.headers
    )
    assert signed.status == 200
    assert (await signed.json())["equality_note"]["on"] == today().isoformat()
    # A restriction that does not touch the phone is not held up by the flag.
    resp = await client.post("/v1/restrictions", json=restriction_body(cid, "appointment_only"), headers=lead.headers)
    assert resp.status == 201


async def test_lifecycle_refusals(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    lead = team.scl
    rid = (await api.restriction(cid, deciders=[lead], status="proposed"))["id"]
    base = f"/v1/restrictions/{rid}"
    assert (await refused(client, lead, {}, 409, f"{base}/letter"))["code"] == "wrong_status"
    assert (await refused(client, lead, {"lodged_on": today().isoformat(), "grounds": "x"}, 409, f"{base}/appeal"))[
        "code"
    ] == "wrong_status"
    assert (await refused(client, lead, {}, 409, f"{base}/decide"))["code"] == "duplicate_decider"
    assert (await refused(client, team.manager, {}, 403, f"{base}/decide"))["code"] == "forbidden"
    await refused(client, team.cl1, {"outcome": "renew"}, 422, f"{base}/review")  # a renewal needs reasons
    decision = {"outcome": "upheld", "notes": "x"}
    assert (await refused(client, team.manager, decision, 409, f"{base}/appeal/decision"))["code"] == "no_open_appeal"
    await refused(client, lead, {"reason": "gone"}, 404, "/v1/restrictions/999999/lift")
    await refused(client, lead, {"reason": "x"}, 422, "/v1/restrictions/abc/lift")
    await refused(client, lead, {}, 422, f"{base}/lift")  # a reason is required
    resp = await client.get(f"{base}/letter?format=docx", headers=lead.headers)
    assert resp.status == 422
    resp = await client.get("/v1/reviews/due?within=soon", headers=lead.headers)
    assert resp.status == 422


async def test_channels_the_kind_cannot_restrict_are_refused(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    """Written-only never restricts writing: a record saying so would promise what is not enforced."""
    cid = await api.customer("Margaret Hughes", PHONE)
    lead = team.cl1
    err = await refused(client, lead, restriction_body(cid, channels=["email", "web_form", "letter"]), 422)
    message = "written_only cannot restrict email, letter, web_form: it acts only on phone, visit"
    assert err["code"] == "invalid" and err["message"] == f"channels: {message}"
    assert err["details"] == [{"field": "channels", "message": message}]
    err = await refused(client, lead, restriction_body(cid, channels=["phone", "email"]), 422)
    assert "cannot restrict email:" in err["message"]
    err = await refused(client, lead, restriction_body(cid, "appointment_only", channels=["phone", "visit"]), 422)
    assert err["details"][0]["message"] == "appointment_only cannot restrict phone: it acts only on visit"
    assert await conn.fetchval("SELECT count(*) FROM restrictions WHERE customer_id = $1", cid) == 0
    # Each kind's own channels, given or by default, are saved as asked.
    resp = await client.post("/v1/restrictions", json=restriction_body(cid, channels=["phone"]), headers=lead.headers)
    assert resp.status == 201 and (await resp.json())["channels"] == ["phone"]
    resp = await client.post("/v1/restrictions", json=restriction_body(cid, "appointment_only"), headers=lead.headers)
    assert resp.status == 201 and (await resp.json())["channels"] == ["visit"]
