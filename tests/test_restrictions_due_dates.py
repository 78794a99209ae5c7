"""What falls due by date: a restriction lapses the day after valid_to, and the reviews-due report
lists what needs a review, a letter or more deciders, as JSON and as CSV."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from gateway import db
from gateway.settings import Settings
from gateway.store.transitions import lapse_expired
from gateway.tasks import PERIODIC_LOCK, lapse_once, one_process_at_a_time, periodic_round
from tests.factory import PHONE, Api, Team, today

pytestmark = pytest.mark.asyncio


async def test_lapse_is_idempotent(api: Api, conn: asyncpg.Connection, settings: Settings, team: Team) -> None:
    # The test app's own periodic round is kept from lapsing these first: it finds the round's lock held.
    await conn.execute("SELECT pg_advisory_lock($1)", PERIODIC_LOCK)
    cid = await api.customer("Margaret Hughes", PHONE)
    past = (today() - timedelta(days=30)).isoformat()
    expired = await api.restriction(
        cid,
        "caution",
        params={"note": "Do not visit alone"},
        deciders=team.deciders,
        valid_from=past,
        valid_to=(today() - timedelta(days=1)).isoformat(),
    )
    last_day = await api.restriction(
        cid, "appointment_only", deciders=team.deciders, valid_from=past, valid_to=today().isoformat()
    )
    pool = await db.create_pool(settings.database_url or "", min_size=1, max_size=2)
    try:
        assert await lapse_once(pool, None, ZoneInfo(settings.tz)) == [expired["id"]]
        assert await lapse_once(pool, None, ZoneInfo(settings.tz)) == []
    finally:
        await pool.close()
    assert await lapse_expired(conn, today()) == []
    statuses = dict(await conn.fetch("SELECT id, status FROM restrictions"))
    assert statuses == {expired["id"]: "lapsed", last_day["id"]: "active"}
    events = await conn.fetch("SELECT kind, actor FROM restriction_events WHERE kind = 'lapsed'")
    assert [(e["kind"], e["actor"]) for e in events] == [("lapsed", "system:lapse")]
    await conn.execute("SELECT pg_advisory_unlock($1)", PERIODIC_LOCK)


async def test_the_periodic_round_is_done_by_one_process_at_a_time(
    api: Api, conn: asyncpg.Connection, settings: Settings, team: Team
) -> None:
    # Another process is doing the round. Taken first (waiting for the test app's own start-up
    # round, if it is still going), so that no round lapses what is made below before we look.
    await conn.execute("SELECT pg_advisory_lock($1)", PERIODIC_LOCK)
    pool = await db.create_pool(settings.database_url or "", min_size=1, max_size=3)
    try:
        cid = await api.customer("Margaret Hughes", PHONE)
        past = (today() - timedelta(days=30)).isoformat()
        expired = await api.restriction(
            cid,
            "appointment_only",
            deciders=team.deciders,
            valid_from=past,
            valid_to=(today() - timedelta(days=1)).isoformat(),
        )
        try:
            assert await periodic_round(pool, None, ZoneInfo(settings.tz)) is False
            assert await conn.fetchval("SELECT status FROM restrictions WHERE id = $1", expired["id"]) == "active"
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", PERIODIC_LOCK)
        assert await periodic_round(pool, None, ZoneInfo(settings.tz)) is True
        assert await conn.fetchval("SELECT status FROM restrictions WHERE id = $1", expired["id"]) == "lapsed"
        # The round let its lock go: the next process (here, this test's connection) can take it.
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", PERIODIC_LOCK) is True
        await conn.execute("SELECT pg_advisory_unlock($1)", PERIODIC_LOCK)
        # A round that fails lets it go too.
        with pytest.raises(RuntimeError):
            async with one_process_at_a_time(pool) as mine:
                assert mine
                raise RuntimeError("the round failed")
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", PERIODIC_LOCK) is True
        await conn.execute("SELECT pg_advisory_unlock($1)", PERIODIC_LOCK)
        # A round whose unlock cannot be confirmed (its connection cut) does not go back to the pool
        # holding it: the next round can take it.
        # asyncpg raises one error or another, depending on whether it has read the server's goodbye.
        with pytest.raises(Exception):  # noqa: B017
            async with one_process_at_a_time(pool) as mine:
                assert mine
                ours = await conn.fetchval(
                    """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0
                       AND objid = $1 AND objsubid = 1 AND pid <> pg_backend_pid()
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""",
                    PERIODIC_LOCK,
                )
                await conn.execute("SELECT pg_terminate_backend($1)", ours)
                async with asyncio.timeout(5):
                    while await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", ours):
                        await asyncio.sleep(0.05)
        assert await periodic_round(pool, None, ZoneInfo(settings.tz)) is True
    finally:
        await pool.close()


async def test_the_periodic_loop_outlives_an_unexpected_error(monkeypatch, settings: Settings) -> None:
    from aiohttp import web

    from gateway import tasks
    from gateway.appkeys import POOL, REDIS, SETTINGS

    rounds: list[int] = []

    async def failing_round(*_: Any) -> bool:
        rounds.append(len(rounds))
        raise RuntimeError("a state asyncpg did not expect")

    monkeypatch.setattr(tasks, "periodic_round", failing_round)
    app = web.Application()
    app[SETTINGS], app[POOL], app[REDIS] = settings, None, None  # type: ignore[assignment]
    loop = asyncio.create_task(tasks._loop(app, 0.01))
    try:
        async with asyncio.timeout(5):  # a loop that ended at the first error never gets there
            while len(rounds) < 3 and not loop.done():
                await asyncio.sleep(0.01)
        assert not loop.done() and len(rounds) >= 3
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_reviews_due_json_and_csv(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("=cmd|' /C calc'!A0", PHONE)
    soon = await api.restriction(cid, deciders=team.deciders, review_due=(today() + timedelta(days=10)).isoformat())
    await api.restriction(cid, "appointment_only", deciders=[team.cl3], status="proposed")  # awaiting deciders
    resp = await client.get("/v1/reviews/due?within=30d", headers=team.manager.headers)
    report = await resp.json()
    assert resp.status == 200 and report["today"] == today().isoformat()
    by_id = {i["restriction_id"]: i for i in report["items"]}
    assert by_id[soon["id"]]["issues"] == ["review_due", "letter_not_sent"]
    assert by_id[soon["id"]]["days_to_review"] == 10
    assert len(by_id) == 2  # the proposed one appears as awaiting deciders
    resp = await client.get("/v1/reviews/due", headers={**team.cl1.headers, "Accept": "text/csv"})
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "'=cmd" in text and "review_due;letter_not_sent" in text
    resp = await client.get("/v1/reviews/due", headers=team.agent.headers)
    assert resp.status == 403
