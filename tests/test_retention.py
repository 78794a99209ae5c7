"""Retention against real PostgreSQL: monthly partitions and restrictions dated in the past, what each
setting removes and keeps, the audit trail of each run, a restriction in force never reduced, and
contacts answered promptly while an old partition waits to be detached."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from gateway import db, retention
from gateway.lifecycle import add_months
from gateway.reviews import local_today, utc_now
from gateway.settings import Settings, SettingsError
from gateway.store.retention import REMOVED
from gateway.tasks import enforce_retention
from tests.factory import REASONS, bearer, insert_customer, insert_restriction
from tests.helpers import run_cli

LIMITS = retention.Limits(contact_months=24, excerpt_months=6, restriction_months=72)
# Runs here are "at" the 20th of this month, so that which mid-month rows are past a limit does not
# depend on the day the suite runs (the command line runs at the real now, and its test allows for that).
NOW = datetime.combine(date.today().replace(day=20), time(12), UTC)
TODAY = NOW.date()
SUBJECT, EXCERPT = "Rent arrears and my neighbour", "I am writing again about the noise from flat 4"


def month(offset: int) -> date:
    """The first day of the month `offset` months from this one (negative: in the past)."""
    return add_months(TODAY.replace(day=1), offset)


def mid(offset: int) -> datetime:
    return datetime.combine(month(offset) + timedelta(days=14), datetime.min.time(), UTC)


@pytest.fixture
async def pool(settings: Any) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(settings.database_url, min_size=1, max_size=4)
    yield p
    await p.close()


async def _partitions(conn: asyncpg.Connection, first: int, months: int) -> None:
    await conn.fetchval("SELECT ensure_contact_partitions($1, $2)", month(first), months)


async def _contact(conn: asyncpg.Connection, at: datetime, customer_id: int = 1) -> None:
    await conn.execute(
        """INSERT INTO contacts (id, received_at, channel, action, subject, body_excerpt, customer_ids)
           VALUES (gen_random_uuid(), $1, 'email', 'route', $2, $3, ARRAY[$4::bigint])""",
        at,
        SUBJECT,
        EXCERPT,
        customer_id,
    )


async def _exists(conn: asyncpg.Connection, offset: int) -> bool:
    name = f"contacts_{month(offset):%Y_%m}"
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def test_whole_months_past_the_contact_limit_go_and_excerpts_are_blanked(pool, conn):
    await _partitions(conn, -27, 28)
    for offset in (-27, -26, -25, -24, -7, -6, -5, 0):
        await _contact(conn, mid(offset))
    plan = await retention.plan(pool, LIMITS, NOW, TODAY)
    listed = [p["name"] for p in plan["contacts"]["partitions"]]
    # 24 months back falls inside month -24, which is kept whole: only wholly older months go.
    assert listed == [f"contacts_{month(o):%Y_%m}" for o in (-27, -26, -25)]
    assert plan["contacts"]["rows"] == 3
    # Excerpts older than 6 months, in the months that stay: months -24, -7 and -6 (mid-month is past the limit).
    assert plan["excerpts"]["rows"] == 3
    assert plan["excerpts"]["oldest"] == mid(-24).isoformat()

    removed = await retention.run(pool, LIMITS, NOW, TODAY, actor="test")
    assert removed is not None and removed["contacts"]["rows"] == 3 and removed["excerpts"]["rows"] == 3
    assert [await _exists(conn, o) for o in (-27, -26, -25, -24, -1)] == [False, False, False, True, True]
    rows = await conn.fetch("SELECT received_at, subject, body_excerpt FROM contacts ORDER BY received_at")
    assert [r["received_at"] for r in rows] == [mid(o) for o in (-24, -7, -6, -5, 0)]
    assert [(r["subject"], r["body_excerpt"]) for r in rows] == [(None, None)] * 3 + [(SUBJECT, EXCERPT)] * 2
    # A second run finds nothing more to do, and is recorded too.
    again = await retention.run(pool, LIMITS, NOW, TODAY, actor="test")
    assert again is not None and again["contacts"]["rows"] == 0 and again["excerpts"]["rows"] == 0
    audit = await conn.fetch("SELECT actor, limits, removed FROM retention_runs ORDER BY id")
    assert len(audit) == 2
    assert audit[0]["limits"] == {"contact_months": 24, "excerpt_months": 6, "restriction_months": 72}
    first = audit[0]["removed"]
    assert [p["rows"] for p in first["contacts"]["partitions"]] == [1, 1, 1]
    assert first["contacts"]["partitions"][0]["from"].startswith(month(-27).isoformat())
    assert first["excerpts"]["rows"] == 3
    # Counts and ranges, never the data.
    assert SUBJECT not in json.dumps(first) and EXCERPT not in json.dumps(first)


async def test_the_run_log_is_append_only(pool, conn):
    await retention.run(pool, LIMITS, NOW, TODAY, actor="test")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("DELETE FROM retention_runs")


async def _ended(conn: asyncpg.Connection, customer_id: int, status: str, valid_to: date | None) -> int:
    rid = await insert_restriction(conn, customer_id, {"kind": "caution", "note": "Do not visit alone"}, status=status)
    incidents = [{"on": "2015-03-02", "description": "Threatened the repairs team"}]
    await conn.execute(
        "UPDATE restrictions SET valid_from = '2015-01-01', valid_to = $2, incidents = $3 WHERE id = $1",
        rid,
        valid_to,
        incidents,
    )
    return rid


async def test_ended_restrictions_are_reduced_after_the_limit_and_those_in_force_never(pool, conn):
    cid = await insert_customer(conn, "Pat Doe")
    ended_long_ago = await _ended(conn, cid, "lifted", add_months(TODAY, -73))
    lapsed_recently = await _ended(conn, cid, "lapsed", add_months(TODAY, -71))
    # In force (or not yet decided) for over ten years: never reduced, whatever its age.
    in_force = [await _ended(conn, cid, status, None) for status in ("active", "under_appeal", "proposed")]
    await conn.execute(
        "INSERT INTO appeals (restriction_id, lodged_on, grounds, due_on) VALUES ($1, '2015-02-01', $2, '2015-03-01')",
        ended_long_ago,
        "My neighbour started it",
    )
    emailed = await conn.fetchval(
        """INSERT INTO outbox (kind, to_addr, subject, body, message_id, status, created_at, sent_at)
           VALUES ('letter', 'pat@example.org', 'Your letter', $1, '<letter-1@x>', 'sent', $2, $2) RETURNING id""",
        f"Dear Pat, {REASONS}",
        datetime(2015, 1, 2, 9, tzinfo=UTC),
    )
    await conn.execute(
        "INSERT INTO outbox_attachments (outbox_id, n, name, content_type, content) "
        "VALUES ($1, 1, 'letter.pdf', 'application/pdf', '%PDF-1.7 ...')",
        emailed,
    )
    await conn.execute(
        """INSERT INTO restriction_letters (restriction_id, sent_on, method, body_text, body_html, recorded_by,
               body_pdf, outbox_id) VALUES ($1, '2015-01-02', 'email', $2, $2, 'test', '%PDF-1.7 ...', $3)""",
        ended_long_ago,
        f"Dear Pat, {REASONS}",
        emailed,
    )
    # An equality note asked of a manager who never signed it before the restriction ended.
    await conn.execute(
        "UPDATE restrictions SET equality_note_asked = $2 WHERE id = $1",
        ended_long_ago,
        {"staff_id": 9, "note": "Her son writes for her", "asked_by": 1, "asked_on": "2015-01-01"},
    )
    for kind, why, after in (
        ("lifted", "Behaviour has improved a lot", {"status": "lifted", "reasons": REASONS, "kind": "caution"}),
        ("viewed", "monthly review meeting", {"status": "lifted", "kind": "caution"}),
        ("review_period_declined", "Not this long", {"review_period_asked": None, "reason": "Her son writes"}),
    ):
        await conn.execute(
            """INSERT INTO restriction_events (restriction_id, customer_id, actor, kind, why, after)
               VALUES ($1, $2, 'staff:1:Priya Shah', $3, $4, $5)""",
            ended_long_ago,
            cid,
            kind,
            why,
            {**after, "deciders": [1, 2, 3]},
        )
    plan = await retention.plan(pool, LIMITS, NOW, TODAY)
    assert plan["restrictions"]["count"] == 1
    assert plan["restrictions"]["ended_to"] == add_months(TODAY, -73).isoformat()

    removed = await retention.run(pool, LIMITS, NOW, TODAY, actor="test")
    assert removed is not None and removed["restrictions"]["count"] == 1

    rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM restrictions")}
    reduced = rows[ended_long_ago]
    assert reduced["reasons"] == REMOVED and reduced["reduced_on"] == TODAY
    assert reduced["equality_note_asked"] is None
    assert reduced["incidents"] == [{"on": "2015-03-02", "description": REMOVED}]
    assert reduced["params"] == {"kind": "caution", "note": REMOVED}
    # What the audit needs stays: kind, dates, outcome.
    assert (reduced["kind"], reduced["status"], reduced["valid_from"]) == ("caution", "lifted", date(2015, 1, 1))
    for rid in [lapsed_recently, *in_force]:
        assert rows[rid]["reasons"] == REASONS and rows[rid]["reduced_on"] is None
        assert rows[rid]["incidents"][0]["description"] == "Threatened the repairs team"
    assert await conn.fetchval("SELECT grounds FROM appeals") == REMOVED
    letter = await conn.fetchrow("SELECT body_text, body_pdf, outbox_id FROM restriction_letters")
    assert letter["body_text"] == REMOVED and letter["body_pdf"] is None
    # Its email: the delivery record stays (to whom, status, when), its text and PDF go.
    sent = await conn.fetchrow("SELECT to_addr, status, sent_at, body FROM outbox WHERE id = $1", letter["outbox_id"])
    assert (sent["to_addr"], sent["status"], sent["body"]) == ("pat@example.org", "sent", REMOVED)
    assert await conn.fetchval("SELECT count(*) FROM outbox_attachments WHERE outbox_id = $1", emailed) == 0
    events = {r["kind"]: r for r in await conn.fetch("SELECT kind, why, after FROM restriction_events")}
    assert events["lifted"]["why"] == REMOVED and events["viewed"]["why"] == "monthly review meeting"
    assert events["lifted"]["after"] == {"status": "lifted", "kind": "caution", "deciders": [1, 2, 3]}
    # What a person wrote declining a sign-off goes too.
    declined = events["review_period_declined"]
    assert declined["why"] == REMOVED and declined["after"] == {"review_period_asked": None, "deciders": [1, 2, 3]}
    # Outside a retention run the audit trail is as append-only as before.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("UPDATE restriction_events SET why = 'edited'")


async def test_contacts_are_answered_promptly_while_an_old_partition_waits_to_be_detached(client, keys, pool, settings):
    conn = await db.connect(settings.database_url)
    blocker = await db.connect(settings.database_url)
    try:
        await _partitions(conn, -30, 1)
        await _contact(conn, mid(-30))
        # A long report holds its lock on the contact log: DETACH cannot have its exclusive lock yet.
        reading = blocker.transaction()
        await reading.start()
        await blocker.fetchval("SELECT count(*) FROM contacts")
        run = asyncio.create_task(retention.run(pool, LIMITS, NOW, TODAY, actor="test"))
        await asyncio.sleep(0.3)
        slowest = 0.0
        for n in range(5):
            started = asyncio.get_running_loop().time()
            r = await client.post(
                "/v1/contacts",
                headers=bearer(keys["channel"]),
                json={"channel": "phone", "from": "07700 900123", "provider_id": f"during-drop-{n}"},
            )
            slowest = max(slowest, asyncio.get_running_loop().time() - started)
            assert r.status == 201
        assert not run.done()  # the drop was still waiting all along
        assert slowest < 0.4, slowest
        await reading.rollback()
        removed = await asyncio.wait_for(run, 10)
        assert removed is not None and removed["contacts"]["rows"] == 1
        assert not await _exists(conn, -30)
        logged = await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'during-drop-%'")
        assert logged == 5
    finally:
        await blocker.close()
        await conn.close()


async def test_the_api_the_command_line_and_the_reports_say_what_goes(client, keys, team, conn, settings):
    cid = await insert_customer(conn, "Pat Doe")
    await _ended(conn, cid, "lapsed", add_months(TODAY, -80))
    await _partitions(conn, -26, 1)
    await _contact(conn, mid(-26), cid)
    r = await client.get("/v1/retention", headers=team.cl1.headers)
    assert r.status == 200
    shown = await r.json()
    assert [p["name"] for p in shown["contacts"]["partitions"]] == [f"contacts_{month(-26):%Y_%m}"]
    assert shown["restrictions"]["count"] == 1 and shown["last_run"] is None
    assert (await client.get("/v1/retention", headers=team.agent.headers)).status == 403
    export = await (await client.get(f"/v1/customers/{cid}/export", headers=team.cl1.headers)).json()
    assert export["retention"]["removed"] is False and len(export["contacts"]) == 1

    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    out = await run_cli(env, "retention", "--dry-run")
    assert f"contacts_{month(-26):%Y_%m}" in out[1] and "1 to reduce" in out[1] and out[0] == 0
    assert await conn.fetchval("SELECT count(*) FROM retention_runs") == 0
    rc, _, progress = await run_cli(env, "retention")
    assert rc == 0 and f"dropped contacts_{month(-26):%Y_%m}: 1 contact(s)" in progress

    export = await (await client.get(f"/v1/customers/{cid}/export", headers=team.cl1.headers)).json()
    assert export["retention"]["removed"] is True and "older data has been removed" in export["retention"]["note"]
    real_today = local_today(utc_now(), ZoneInfo(settings.tz))
    assert export["contacts"] == [] and export["restrictions"][0]["reduced_on"] == real_today.isoformat()
    due = await (await client.get("/v1/reviews/due", headers=team.cl1.headers)).json()
    assert due["retention"]["contacts_removed_before"][:10] == add_months(utc_now().date(), -24).isoformat()
    shown = await (await client.get("/v1/retention", headers=bearer(keys["admin"]))).json()
    assert shown["last_run"]["actor"] == "command line" and shown["contacts"]["partitions"] == []


def test_the_limits_are_settings_with_defaults():
    assert retention.Limits.of(Settings.from_env({})) == retention.Limits(24, 6, 72)
    env = {
        "GATEWAY_CONTACT_RETENTION_MONTHS": "36",
        "GATEWAY_EXCERPT_RETENTION_MONTHS": "3",
        "GATEWAY_RESTRICTION_RETENTION_MONTHS": "12",
    }
    assert retention.Limits.of(Settings.from_env(env)) == retention.Limits(36, 3, 12)
    with pytest.raises(SettingsError, match="GATEWAY_CONTACT_RETENTION_MONTHS"):
        Settings.from_env({"GATEWAY_CONTACT_RETENTION_MONTHS": "0"})


async def test_the_periodic_task_runs_once_a_day_whichever_process_asks(pool, conn, settings):
    await _partitions(conn, -28, 1)
    await _contact(conn, mid(-28))
    first = await enforce_retention(pool, settings)
    assert first is not None and first["contacts"]["rows"] == 1
    assert await enforce_retention(pool, settings) is None  # a run started within the day
    assert await conn.fetchval("SELECT actor FROM retention_runs") == "periodic"


async def test_a_month_left_detached_by_an_interrupted_run_is_dropped_by_the_next(pool, conn):
    await _partitions(conn, -29, 1)
    await _contact(conn, mid(-29))
    await conn.execute(f"ALTER TABLE contacts DETACH PARTITION contacts_{month(-29):%Y_%m}")
    plan = await retention.plan(pool, LIMITS, NOW, TODAY)
    assert [(p["name"], p["rows"]) for p in plan["contacts"]["partitions"]] == [(f"contacts_{month(-29):%Y_%m}", 0)]
    removed = await retention.run(pool, LIMITS, NOW, TODAY, actor="test")
    assert removed is not None and removed["contacts"]["partitions"][0]["rows"] == 1
    assert not await _exists(conn, -29)


async def test_what_is_kept_beside_the_log_goes_with_it_and_queued_mail_never(pool, conn):
    """Mail sent, message ids, staff sessions and sign-in events are kept as long as contacts, no longer."""
    old, recent = mid(-30), mid(-1)
    cid = await insert_customer(conn, "Retention Writer")
    case_id = await conn.fetchval(
        "INSERT INTO cases (customer_id, reference, subject, status) "
        "VALUES ($1, 'RET-1', 'Noise', 'open') RETURNING id",
        cid,
    )
    staff_id = await conn.fetchval("INSERT INTO staff (name, role) VALUES ('Retention Agent', 'agent') RETURNING id")

    async def mail(at: datetime, status: str, n: int) -> int:
        return int(
            await conn.fetchval(
                """INSERT INTO outbox (kind, to_addr, subject, body, message_id, status, created_at)
                   VALUES ('acknowledgement', 'writer@example.org', $1, $2, $3, $4, $5) RETURNING id""",
                SUBJECT,
                EXCERPT,
                f"<ret-{n}@gateway.example>",
                status,
                at,
            )
        )

    sent_long_ago = await mail(old, "sent", 1)
    queued_long_ago = await mail(old, "queued", 2)
    sent_lately = await mail(recent, "sent", 3)
    # A letter's email is the letter's delivery record (reviews flag one that failed): it stays.
    letter_mail = await mail(old, "failed", 4)
    rid = await insert_restriction(conn, cid, {"kind": "written_only"})
    await conn.execute(
        """INSERT INTO restriction_letters
               (restriction_id, sent_on, method, body_text, body_html, recorded_by, outbox_id)
           VALUES ($1, $2, 'email', 'letter', '<p>letter</p>', 'test', $3)""",
        rid,
        old.date(),
        letter_mail,
    )
    await conn.execute(
        "INSERT INTO outbox_attachments (outbox_id, n, name, content_type, content) "
        "VALUES ($1, 1, 'a.pdf', 'application/pdf', 'x')",
        sent_long_ago,
    )
    for n, at in ((1, old), (2, recent)):
        await conn.execute(
            "INSERT INTO email_threads (message_id, case_id, created_at) VALUES ($1, $2, $3)", f"<t{n}@x>", case_id, at
        )
    for at in (old, recent):
        await conn.execute(
            "INSERT INTO staff_sessions (token_hash, staff_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            os.urandom(32),
            staff_id,
            at,
            at + timedelta(hours=8),
        )
        await conn.execute(
            "INSERT INTO staff_sign_in_events (at, staff_id, login, kind, address) "
            "VALUES ($1, $2, 'agent@x', 'signed_in', '10.0.0.9')",
            at,
            staff_id,
        )

    plan = await retention.plan(pool, LIMITS, NOW, TODAY)
    expected = {"outbox": 1, "email_threads": 1, "staff_sessions": 1, "staff_sign_in_events": 1}
    assert plan["beside_the_log"]["rows"] == expected
    assert any("1 row(s) of outbox" in line for line in retention.describe(plan))

    removed = await retention.run(pool, LIMITS, NOW, TODAY, actor="test")
    assert removed is not None and removed["beside_the_log"]["rows"] == expected
    assert {r["id"] for r in await conn.fetch("SELECT id FROM outbox")} == {queued_long_ago, sent_lately, letter_mail}
    kept = await conn.fetchval("SELECT outbox_id FROM restriction_letters WHERE restriction_id = $1", rid)
    assert kept == letter_mail
    assert await conn.fetchval("SELECT count(*) FROM outbox_attachments") == 0
    assert [r["message_id"] for r in await conn.fetch("SELECT message_id FROM email_threads")] == ["<t2@x>"]
    assert [r["created_at"] for r in await conn.fetch("SELECT created_at FROM staff_sessions")] == [recent]
    assert [r["at"] for r in await conn.fetch("SELECT at FROM staff_sign_in_events")] == [recent]
    assert EXCERPT not in json.dumps(removed)  # counts, never the data
