"""Migrations: applied once, in order, under an advisory lock; edited files refused."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from gateway.migrate import MigrationError, discover, migrate
from tests.conftest import _with_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fresh_db(base_settings):
    name = f"gateway_mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_with_db(base_settings.database_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield _with_db(base_settings.database_url, name)
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


def _migrations_before(number: int, tmp_path: Path) -> Path:
    """A folder of the migrations numbered below `number`: the database as a release before it."""
    folder = tmp_path / "m"
    folder.mkdir()
    for path in sorted((ROOT / "migrations").glob("*.sql")):
        if int(path.name[:3]) < number:
            shutil.copy(path, folder)
    return folder


async def _applied(url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url)
    try:
        return [
            (r["number"], r["name"])
            for r in await conn.fetch("SELECT number, name FROM schema_migrations ORDER BY number")
        ]
    finally:
        await conn.close()


async def test_second_run_is_a_no_op(fresh_db):
    conn = await asyncpg.connect(fresh_db)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
    finally:
        await conn.close()
    assert first == [m.name for m in discover()]
    assert second == []


async def test_two_processes_together_apply_each_file_once(fresh_db):
    env = {**os.environ, "DATABASE_URL": fresh_db}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "migrate",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    assert [p.returncode for p in procs] == [0, 0], results
    outputs = sorted(out.decode() for out, _ in results)
    assert outputs[0].startswith("applied") and outputs[1].startswith("schema up to date"), outputs
    applied = await _applied(fresh_db)
    assert applied == [(m.number, m.name) for m in discover()]


async def test_an_edited_migration_is_refused(fresh_db, tmp_path):
    shutil.copytree(ROOT / "migrations", tmp_path / "m")
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, tmp_path / "m")
        first = sorted((tmp_path / "m").glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn, tmp_path / "m")
    finally:
        await conn.close()


def test_badly_named_file_is_refused(tmp_path):
    (tmp_path / "7_oops.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNN_description"):
        discover(tmp_path)


async def test_audit_events_cannot_be_changed(conn):
    await conn.execute("INSERT INTO restriction_events (actor, kind) VALUES ('test', 'viewed')")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("UPDATE restriction_events SET actor = 'someone else'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("DELETE FROM restriction_events")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("TRUNCATE restriction_events")


async def test_contact_partitions_exist_ahead(conn):
    months = await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'contacts'::regclass")
    assert months >= 12
    made = await conn.fetchval("SELECT ensure_contact_partitions(now()::date, 3)")
    assert made == 0  # idempotent: already there


async def test_periodic_task_creates_partitions_ahead(settings, conn):
    from gateway import db
    from gateway.tasks import ensure_partitions

    next_month = await conn.fetchval("SELECT to_char(now() + interval '1 month', 'YYYY_MM')")
    this_month = await conn.fetchval("SELECT to_char(now(), 'YYYY_MM')")
    await conn.execute(f"DROP TABLE contacts_{next_month}")
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        assert await ensure_partitions(pool) == 1
        assert await ensure_partitions(pool) == 0
    finally:
        await pool.close()
    assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"contacts_{next_month}")
    # The new partition gathers no statistics on the columns no query filters on, as the parent says.
    unanalysed = """SELECT array_agg(attname::text ORDER BY attname) FROM pg_attribute
                    WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attstattarget = 0"""
    for table in ("contacts", f"contacts_{next_month}", f"contacts_{this_month}"):
        assert await conn.fetchval(unanalysed, table) == [
            "ack_note",
            "customer_message",
            "error",
            "latency_us",
            "on_behalf_of",
            "reasons",
            "sender_raw",
        ], table  # and none that a query filters on (received_at, subject, banner, ...)
    assert await conn.fetchval(unanalysed, "contact_provider_ids") == ["decision"]
    await conn.execute(f"ANALYZE contacts_{next_month}")


async def test_old_provider_ids_are_forgotten_but_contacts_stay(settings, conn):
    import uuid

    from gateway import db
    from gateway.tasks import forget_old_provider_ids

    old, new = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        """INSERT INTO contact_provider_ids (channel, provider_id, contact_id, decision, created_at)
           VALUES ('phone', 'old', $1, '{}', now() - interval '40 days'), ('phone', 'new', $2, '{}', now())""",
        old,
        new,
    )
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        assert await forget_old_provider_ids(pool) == 1
    finally:
        await pool.close()
    assert [r["provider_id"] for r in await conn.fetch("SELECT provider_id FROM contact_provider_ids")] == ["new"]


async def test_free_text_addresses_become_lines_and_a_postcode(fresh_db, tmp_path):
    """Migration 014 reads the free-text postal addresses of 011 into lines and a postcode; one it
    cannot read keeps its lines and no postcode, for someone to correct."""
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, _migrations_before(14, tmp_path))
        for name, text in (
            ("lines", "Flat 2, 1 River Street\nLeeds ls11aa"),
            ("semicolons", "2 Poplar Way; Leeds; LS15 7NB"),
            ("no postcode", "The Old Mill\nSomewhere"),
            ("none", ""),
        ):
            await conn.execute("INSERT INTO customers (name, postal_address) VALUES ($1, $2)", name, text)
        await migrate(conn)
        rows = {r["name"]: (r["address_lines"], r["postcode"]) for r in await conn.fetch("SELECT * FROM customers")}
    finally:
        await conn.close()
    assert rows == {
        "lines": (["Flat 2, 1 River Street", "Leeds"], "LS1 1AA"),
        "semicolons": (["2 Poplar Way", "Leeds"], "LS15 7NB"),
        "no postcode": (["The Old Mill", "Somewhere"], None),
        "none": ([], None),
    }


async def test_appeals_left_open_on_ended_restrictions_are_closed_with_an_event(fresh_db, tmp_path):
    """Migration 024: an appeal left open on a lifted restriction ends on the lift's day, one on a
    lapsed restriction the day after its last day; each gets an event; one on a restriction still
    under appeal stays open."""
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, _migrations_before(24, tmp_path))
        cid = await conn.fetchval("INSERT INTO customers (name) VALUES ('Ann') RETURNING id")
        ids = {}
        lifted_to, lapsed_to = date(2026, 3, 10), date(2026, 4, 30)
        for status, valid_to in (("lifted", lifted_to), ("lapsed", lapsed_to), ("under_appeal", None)):
            ids[status] = await conn.fetchval(
                """INSERT INTO restrictions (customer_id, kind, params, channels, reason_category, reasons,
                       incidents, warned_on, valid_from, valid_to, review_due, status, created_by)
                   VALUES ($1, 'written_only', '{}', '{phone}', 'unreasonable_demands', 'r', '[]', '2026-01-02',
                           '2026-01-05', $2, '2027-01-05', $3, 'test') RETURNING id""",
                cid,
                valid_to,
                status,
            )
            await conn.execute(
                "INSERT INTO appeals (restriction_id, lodged_on, grounds, due_on) "
                "VALUES ($1, '2026-02-01', 'g', '2026-02-15')",
                ids[status],
            )
        await conn.execute(
            "INSERT INTO restriction_events (restriction_id, customer_id, at, actor, kind) "
            "VALUES ($1, $2, '2026-03-12 10:00+00', 'staff:1:Tom', 'lifted')",
            ids["lifted"],
            cid,
        )
        await migrate(conn)
        appeals = {
            r["restriction_id"]: (r["outcome"], r["decided_on"] and r["decided_on"].isoformat())
            for r in await conn.fetch("SELECT * FROM appeals")
        }
        events = await conn.fetch(
            "SELECT restriction_id, actor, after FROM restriction_events WHERE kind = 'appeal_decided'"
        )
    finally:
        await conn.close()
    assert appeals == {
        ids["lifted"]: ("ended", "2026-03-12"),
        ids["lapsed"]: ("ended", "2026-05-01"),
        ids["under_appeal"]: (None, None),
    }
    assert sorted(e["restriction_id"] for e in events) == sorted([ids["lifted"], ids["lapsed"]])
    assert all(e["actor"] == "system:upgrade" for e in events)
