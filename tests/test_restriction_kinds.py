"""Each restriction kind's own parts through the API: its letter wording from the records its
params name, its checks on an appeal's variation, and the kinds the database accepts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from gateway.rules.calendar import format_date
from gateway.rules.registry import KINDS
from tests.factory import PHONE, Api, Member, Team, today

pytestmark = pytest.mark.asyncio


async def letter_text(client: Any, who: Member, rid: int) -> str:
    resp = await client.get(f"/v1/restrictions/{rid}/letter?format=text", headers=who.headers)
    assert resp.status == 200
    return " ".join((await resp.text()).split())


async def test_letters_use_the_kinds_words_and_the_records_they_name(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    lead, proposed = team.cl1, {"deciders": [team.cl1], "status": "proposed"}
    named = await api.restriction(cid, "named_contact", params={"staff_id": team.cl3.id}, **proposed)
    text = await letter_text(client, lead, named["id"])
    assert "handled by one named member of staff, Ravi Kumar." in text
    assert "Please contact Ravi Kumar (+441632960101, ravi@x.org)." in text
    # A named contact who has since left is still the one the letter names.
    await conn.execute("UPDATE staff SET active = false WHERE id = $1", team.cl3.id)
    assert "Ravi Kumar" in await letter_text(client, lead, named["id"])

    case_id = await api.case(cid, "CMP-77", "exhausted")
    closed = await api.restriction(cid, "closed_issue", params={"case_id": case_id}, **proposed)
    text = await letter_text(client, lead, closed["id"])
    closed_on = format_date(today() - timedelta(days=40))
    assert f"Your complaint CMP-77 (Damp in the hall) completed our complaints process on {closed_on}." in text

    limit = await api.restriction(cid, "contact_limit", params={"limit": 4, "period": "week"}, **proposed)
    text = await letter_text(client, lead, limit["id"])
    assert "We will respond to up to 4 contacts by email, telephone and our web form each week." in text

    written = await api.restriction(cid, channels=["phone"], **proposed)
    assert "We will not accept contact by telephone." in await letter_text(client, lead, written["id"])


async def decide_appeal(client: Any, manager: Member, rid: int, variation: dict[str, Any]) -> Any:
    resp = await client.post(
        f"/v1/restrictions/{rid}/appeal/decision",
        headers=manager.headers,
        json={"outcome": "varied", "notes": "Varied on appeal.", "variation": variation},
    )
    return resp.status, await resp.json()


async def test_an_appeal_variation_is_checked_as_on_saving(
    api: Api, client: Any, conn: asyncpg.Connection, team: Team
) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    appeal = {"lodged_on": today().isoformat(), "grounds": "Disproportionate."}
    written = await api.restriction(cid, deciders=team.deciders)
    named = await api.restriction(cid, "named_contact", params={"staff_id": team.cl3.id}, deciders=team.deciders)
    for r in (written, named):
        resp = await client.post(f"/v1/restrictions/{r['id']}/appeal", json=appeal, headers=team.cl1.headers)
        assert resp.status == 200

    status, err = await decide_appeal(client, team.manager, written["id"], {"channels": ["phone", "email"]})
    assert status == 422 and err["error"]["details"][0]["field"] == "variation.channels"
    assert "written_only cannot restrict email" in err["error"]["message"]
    status, err = await decide_appeal(client, team.manager, named["id"], {"params": {"staff_id": 999999}})
    assert status == 422 and err["error"]["details"][0]["field"] == "variation.params.staff_id"
    rows = await conn.fetch("SELECT status, channels, params FROM restrictions WHERE customer_id = $1", cid)
    assert {r["status"] for r in rows} == {"under_appeal"}
    assert sorted(tuple(r["channels"]) for r in rows)[1] == ("phone", "visit")

    status, varied = await decide_appeal(client, team.manager, written["id"], {"channels": ["phone"]})
    assert status == 200 and varied["channels"] == ["phone"] and varied["status"] == "active"


async def test_the_database_accepts_exactly_the_registered_kinds(conn: asyncpg.Connection) -> None:
    """Adding a kind is its module, one registry line and a migration; this catches a missing one."""
    checks = await conn.fetch(
        """SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
           WHERE conrelid = 'restrictions'::regclass AND contype = 'c'"""
    )
    (kind_check,) = [c["def"] for c in checks if "(kind" in c["def"]]
    assert set(re.findall(r"'(\w+)'::text", kind_check)) == set(KINDS)
