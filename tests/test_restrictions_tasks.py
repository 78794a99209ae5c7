"""Lapsing, the review-due endpoint, appeal outcomes, letter escaping and invalidation messages."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis.asyncio as aioredis

from gateway import db
from gateway.rediskeys import INVALIDATE_CHANNEL
from gateway.settings import Settings
from gateway.store.transitions import lapse_expired
from gateway.tasks import lapse_once
from tests.conftest import bearer
from tests.restriction_factory import TODAY, body, make_customer, make_team

pytestmark = pytest.mark.asyncio


async def create(client: Any, key: str, data: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/restrictions", json=data, headers=bearer(key))
    payload: dict[str, Any] = await resp.json()
    assert resp.status == 201, payload
    return payload


async def test_lapse_is_idempotent(
    client: Any, conn: asyncpg.Connection, keys: dict[str, str], settings: Settings
) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn)
    deciders = [team.scl, team.cl1, team.cl2]
    past = (TODAY - timedelta(days=30)).isoformat()
    expired = await create(
        client,
        keys["caution_lead"],
        body(
            cid,
            "caution",
            params={"note": "Do not visit alone"},
            deciders=deciders,
            valid_from=past,
            valid_to=(TODAY - timedelta(days=1)).isoformat(),
        ),
    )
    last_day = await create(
        client,
        keys["caution_lead"],
        body(cid, "appointment_only", deciders=deciders, valid_from=past, valid_to=TODAY.isoformat()),
    )
    pool = await db.create_pool(settings.database_url or "", min_size=1, max_size=2)
    try:
        assert await lapse_once(pool, None, ZoneInfo(settings.tz)) == [expired["id"]]
        assert await lapse_once(pool, None, ZoneInfo(settings.tz)) == []
    finally:
        await pool.close()
    assert await lapse_expired(conn, TODAY) == []
    statuses = dict(await conn.fetch("SELECT id, status FROM restrictions"))
    assert statuses == {expired["id"]: "lapsed", last_day["id"]: "active"}
    events = await conn.fetch("SELECT kind, actor FROM restriction_events WHERE kind = 'lapsed'")
    assert [(e["kind"], e["actor"]) for e in events] == [("lapsed", "system:lapse")]


async def test_reviews_due_json_and_csv(client: Any, conn: asyncpg.Connection, keys: dict[str, str]) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn, name="=cmd|' /C calc'!A0")
    soon = await create(
        client,
        keys["caution_lead"],
        body(
            cid,
            deciders=[team.scl, team.cl1, team.cl2],
            review_due=(TODAY + timedelta(days=10)).isoformat(),
        ),
    )
    await create(client, keys["caution_lead"], body(cid, "appointment_only"))  # proposed, not due
    resp = await client.get("/v1/reviews/due?within=30d", headers=bearer(keys["manager"]))
    report = await resp.json()
    assert resp.status == 200 and report["today"] == TODAY.isoformat()
    by_id = {i["restriction_id"]: i for i in report["items"]}
    assert by_id[soon["id"]]["issues"] == ["review_due", "letter_not_sent"]
    assert by_id[soon["id"]]["days_to_review"] == 10
    assert len(by_id) == 2  # the proposed one appears as awaiting deciders
    resp = await client.get("/v1/reviews/due", headers={**bearer(keys["caution_lead"]), "Accept": "text/csv"})
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "'=cmd" in text and "review_due;letter_not_sent" in text
    resp = await client.get("/v1/reviews/due", headers=bearer(keys["agent"]))
    assert resp.status == 403


async def test_appeal_varied_and_lifted(client: Any, conn: asyncpg.Connection, keys: dict[str, str]) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn)
    lead, deciders = keys["caution_lead"], [team.scl, team.cl1, team.cl2]
    windows = [{"days": ["tue", "thu"], "start": "10:00", "end": "12:00"}]
    r = await create(client, lead, body(cid, "set_times", params={"windows": windows}, deciders=deciders))
    appeal = {"lodged_on": TODAY.isoformat(), "grounds": "I work on Tuesdays."}
    await client.post(f"/v1/restrictions/{r['id']}/appeal", json=appeal, headers=bearer(lead))
    variation = {"params": {"windows": [{"days": ["wed"], "start": "14:00", "end": "16:00"}]}}
    resp = await client.post(
        f"/v1/restrictions/{r['id']}/appeal/decision",
        headers=bearer(lead),
        json={
            "staff_id": team.manager,
            "outcome": "varied",
            "notes": "Moved to Wednesdays.",
            "variation": variation,
        },
    )
    varied = await resp.json()
    assert resp.status == 200, varied
    assert varied["status"] == "active" and varied["params"]["windows"][0]["days"] == ["wed"]
    second = await client.post(f"/v1/restrictions/{r['id']}/appeal", json=appeal, headers=bearer(lead))
    assert second.status == 200
    resp = await client.post(
        f"/v1/restrictions/{r['id']}/appeal/decision",
        headers=bearer(lead),
        json={"staff_id": team.senior, "outcome": "lifted", "notes": "Not proportionate."},
    )
    lifted = await resp.json()
    assert lifted["status"] == "lifted" and [a["outcome"] for a in lifted["appeals"]] == [
        "varied",
        "lifted",
    ]
    kinds = [
        r["kind"]
        for r in await conn.fetch("SELECT kind FROM restriction_events WHERE restriction_id = $1 ORDER BY id", r["id"])
    ]
    assert kinds[-2:] == ["appeal_decided", "lifted"]


async def test_letter_escapes_customer_text(client: Any, conn: asyncpg.Connection, keys: dict[str, str]) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn, name="<script>alert(1)</script> $reasons")
    r = await create(
        client,
        keys["caution_lead"],
        body(
            cid,
            "named_contact",
            params={"staff_id": team.cl3},
            reasons="Said <b>this</b> & ${that}",
            deciders=[team.scl, team.cl1, team.cl2],
        ),
    )
    resp = await client.get(f"/v1/restrictions/{r['id']}/letter?format=json", headers=bearer(keys["caution_lead"]))
    letter = await resp.json()
    assert "<script>" not in letter["html"] and "&lt;script&gt;" in letter["html"]
    assert "Said &lt;b&gt;this&lt;/b&gt; &amp; ${that}" in letter["html"]
    assert "$reasons" in letter["text"] and "Ravi Kumar" in letter["text"]


async def test_changes_publish_invalidations(
    client: Any, conn: asyncpg.Connection, keys: dict[str, str], settings: Settings
) -> None:
    team = await make_team(conn)
    cid = await make_customer(conn)
    redis = aioredis.from_url(settings.redis_url or "")
    pubsub = redis.pubsub()
    await pubsub.subscribe(INVALIDATE_CHANNEL)
    heard: list[str] = []
    await conn.add_listener("gateway_invalidate", lambda *args: heard.append(args[3]))
    try:
        await create(client, keys["caution_lead"], body(cid, deciders=[team.scl, team.cl1, team.cl2]))
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                break
        assert message is not None and message["data"] == str(cid).encode()
        await asyncio.sleep(0.05)
        assert str(cid) in heard
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def test_letter_quotes_the_providers_own_addresses(settings, keys):
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import create_app
    from tests.helpers import bearer, customer, deciders, restrict

    named = settings.with_(
        provider_name="Riverside Homes",
        provider_address="1 River Street, Leeds LS1 1AA",
        provider_email="contact@riverside.example",
    )
    admin = bearer(keys["admin"])
    async with TestClient(TestServer(create_app(named))) as client:
        cid = await customer(client, admin, "Aisha", ("phone", "07700 900003"))
        r = await restrict(client, admin, cid, "written_only", await deciders(client, admin))
        letter = await client.get(
            f"/v1/restrictions/{r['id']}/letter", params={"format": "text", "why": "checking the letter"}, headers=admin
        )
        text = await letter.text()
    assert "by letter to 1 River Street, Leeds LS1 1AA and by email to contact@riverside.example" in text
    assert text.rstrip().endswith("Riverside Homes")
