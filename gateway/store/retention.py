"""Retention SQL: the contact log's old monthly partitions (detached, then dropped), message excerpts
blanked, the records kept beside the log (mail sent, message ids, staff sessions and sign-ins)
deleted, ended restrictions reduced to what the audit needs, and the audit trail of each run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias

import asyncpg

# Names made by ensure_contact_partitions (migration 001); nothing else is ever detached or dropped.
PARTITION_NAME = re.compile(r"^contacts_[0-9]{4}_[0-9]{2}$")
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
REMOVED = "[removed under the retention policy]"
# Keys of an event's before/after snapshot that hold what the person did or said, not what was decided.
_SNAPSHOT_DETAIL = [
    "reasons",
    "incidents",
    "immediate_risk",
    "adjustments",
    "equality_note",
    "equality_note_asked",
    "params",
    "grounds",
    "reason",  # why a sign-off was declined
]
# Event kinds whose `why` records why someone read the record: the access log keeps that.
_ACCESS_EVENTS = ["viewed", "exported"]

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime
    end: datetime
    attached: bool


def _quoted(name: str) -> str:
    # Identifiers cannot be bind parameters; the name is checked against the one shape we create.
    if not PARTITION_NAME.match(name):
        raise ValueError(f"{name!r} is not a monthly contact-log partition")
    return f'"{name}"'


async def partitions_before(conn: Conn, before: datetime) -> list[Partition]:
    """Monthly partitions (attached, or left detached by an interrupted run) wholly older than `before`."""
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound, i.inhparent IS NOT NULL AS attached
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'contacts'::regclass
           WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname ~ '^contacts_[0-9]{4}_[0-9]{2}$'"""
    )
    found = []
    for r in rows:
        if r["attached"]:
            bounds = _BOUNDS.search(r["bound"] or "")
            if not bounds:
                continue
            start, end = (datetime.fromisoformat(b) for b in bounds.groups())
        else:  # detached: its name is all that says which month it held
            start = datetime.fromisoformat(f"{r['relname'][9:13]}-{r['relname'][14:16]}-01T00:00:00+00:00")
            end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        if end <= before:
            found.append(Partition(r["relname"], start, end, r["attached"]))
    return sorted(found, key=lambda p: p.start)


async def rows_between(conn: Conn, start: datetime, end: datetime) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM contacts WHERE received_at >= $1 AND received_at < $2", start, end)
    )


async def detach(conn: asyncpg.Connection, name: str, lock_timeout_ms: int) -> bool:
    """Detach one partition, waiting at most `lock_timeout_ms` for the lock on `contacts`; False if it
    could not be had. DETACH needs an exclusive lock on the parent, and while it waits for one every
    new insert queues behind it, so it never waits long: the caller tries again later."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        try:
            await conn.execute(f"ALTER TABLE contacts DETACH PARTITION {_quoted(name)}")
        except asyncpg.LockNotAvailableError:
            return False
    return True


async def drop_detached(conn: asyncpg.Connection, name: str) -> int:
    """Drop a partition already detached (no lock on `contacts` is needed); how many rows it held."""
    async with conn.transaction():
        rows = int(await conn.fetchval(f"SELECT count(*) FROM {_quoted(name)}"))
        await conn.execute(f"DROP TABLE {_quoted(name)}")
    return rows


async def default_older(conn: Conn, before: datetime) -> int:
    """Rows older than the limit in the catch-all partition (months no partition was made for)."""
    return int(await conn.fetchval("SELECT count(*) FROM contacts_default WHERE received_at < $1", before))


async def delete_default_older(conn: Conn, before: datetime) -> int:
    done = await conn.execute("DELETE FROM contacts_default WHERE received_at < $1", before)
    return int(done.split()[-1])


_HAS_EXCERPT = "(body_excerpt IS NOT NULL OR subject IS NOT NULL)"


async def excerpt_span(
    conn: Conn, start: datetime | None, before: datetime
) -> tuple[int, datetime | None, datetime | None]:
    """Rows received in [start, before) that still hold a message excerpt or subject: count, oldest, newest."""
    row = await conn.fetchrow(
        f"""SELECT count(*) AS n, min(received_at) AS oldest, max(received_at) AS newest FROM contacts
            WHERE received_at < $2 AND ($1::timestamptz IS NULL OR received_at >= $1) AND {_HAS_EXCERPT}""",
        start,
        before,
    )
    assert row is not None
    return int(row["n"]), row["oldest"], row["newest"]


async def blank_excerpts(conn: Conn, start: datetime, end: datetime) -> int:
    """Blank the excerpt and subject of rows received in [start, end); the rows themselves stay."""
    done = await conn.execute(
        f"""UPDATE contacts SET body_excerpt = NULL, subject = NULL
            WHERE received_at >= $1 AND received_at < $2 AND {_HAS_EXCERPT}""",
        start,
        end,
    )
    return int(done.split()[-1])


_ENDED = "status IN ('lifted', 'lapsed') AND reduced_on IS NULL AND coalesce(valid_to, updated_at::date) < $1"


async def ended_span(conn: Conn, ended_before: date) -> tuple[int, date | None, date | None]:
    """Lifted or lapsed restrictions, not yet reduced, that ended before the day: count, first, last end."""
    row = await conn.fetchrow(
        f"""SELECT count(*) AS n, min(coalesce(valid_to, updated_at::date)) AS first,
                   max(coalesce(valid_to, updated_at::date)) AS last FROM restrictions WHERE {_ENDED}""",
        ended_before,
    )
    assert row is not None
    return int(row["n"]), row["first"], row["last"]


async def reduce_ended(conn: asyncpg.Connection, ended_before: date, today: date) -> list[date]:
    """Strip incidents' descriptions, reasons, notes and letters' text from restrictions that ended before
    the day, and the same from their audit snapshots; kind, dates, deciders and outcomes stay. Only a
    lifted or lapsed restriction is ever touched, whatever its age. Returns the day each one ended."""
    async with conn.transaction():
        await conn.execute("SET LOCAL gateway.retention = 'on'")
        rows = await conn.fetch(
            f"""UPDATE restrictions SET
                        reasons = $3,
                        incidents = coalesce((SELECT jsonb_agg(jsonb_set(i, '{{description}}', to_jsonb($3::text)))
                                              FROM jsonb_array_elements(incidents) i), '[]'),
                        immediate_risk = CASE WHEN immediate_risk IS NULL THEN NULL ELSE $3 END,
                        adjustments = '',
                        params = CASE WHEN params ? 'note' THEN jsonb_set(params, '{{note}}', to_jsonb($3::text))
                                      ELSE params END,
                        equality_note = CASE WHEN equality_note ? 'note'
                                      THEN jsonb_set(equality_note, '{{note}}', to_jsonb($3::text))
                                      ELSE equality_note END,
                        equality_note_asked = NULL,  -- never signed, and the restriction has ended
                        reduced_on = $2
                    WHERE {_ENDED} RETURNING id, coalesce(valid_to, updated_at::date) AS ended""",
            ended_before,
            today,
            REMOVED,
        )
        await _reduce_related(conn, [r["id"] for r in rows])
    return [r["ended"] for r in rows]


async def _reduce_related(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute(
        "UPDATE appeals SET grounds = $2, notes = NULL WHERE restriction_id = ANY($1::bigint[])", ids, REMOVED
    )
    await conn.execute(
        """UPDATE restriction_letters SET body_text = $2, body_html = $2, body_pdf = NULL, note = NULL
           WHERE restriction_id = ANY($1::bigint[])""",
        ids,
        REMOVED,
    )
    # The letter's email: its delivery record (to whom, status, when) stays; its text and PDF go.
    await conn.execute(
        """UPDATE outbox SET body = $2 WHERE id IN (
               SELECT outbox_id FROM restriction_letters WHERE restriction_id = ANY($1::bigint[]))""",
        ids,
        REMOVED,
    )
    await conn.execute(
        """DELETE FROM outbox_attachments WHERE outbox_id IN (
               SELECT outbox_id FROM restriction_letters WHERE restriction_id = ANY($1::bigint[]))""",
        ids,
    )
    await conn.execute(
        """UPDATE restriction_events SET before = before - $2::text[], after = after - $2::text[],
                  why = CASE WHEN why IS NULL OR kind = ANY($3::text[]) THEN why ELSE $4 END
           WHERE restriction_id = ANY($1::bigint[])""",
        ids,
        _SNAPSHOT_DETAIL,
        _ACCESS_EVENTS,
        REMOVED,
    )


# Kept beside the contact log and for as long: what older than the contact limit means for each.
# Mail still queued is never removed (it has not been sent yet). A letter's email is the letter's
# delivery record (reviews flag a letter whose email failed), so it stays as long as the letter and
# is reduced with it (`_reduce_related`).
BESIDE_THE_LOG = {
    "outbox": """status <> 'queued' AND created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM restriction_letters l WHERE l.outbox_id = outbox.id)""",
    "email_threads": "created_at < $1",
    "staff_sessions": "coalesce(ended_at, expires_at) < $1",
    "staff_sign_in_events": "at < $1",
}


async def beside_the_log_older(conn: Conn, before: datetime) -> dict[str, int]:
    """How many rows of each table kept beside the log are older than `before`."""
    counts = {}
    for table, where in BESIDE_THE_LOG.items():
        counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", before))
    return counts


async def delete_beside_the_log(conn: asyncpg.Connection, before: datetime) -> dict[str, int]:
    """Delete them, each table in its own statement; how many went from each."""
    done = {}
    for table, where in BESIDE_THE_LOG.items():
        status = await conn.execute(f"DELETE FROM {table} WHERE {where}", before)
        done[table] = int(status.split()[-1])
    return done


async def record_run(
    conn: Conn, started_at: datetime, actor: str, limits: dict[str, int], removed: dict[str, Any]
) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO retention_runs (started_at, actor, limits, removed) VALUES ($1, $2, $3, $4) RETURNING id",
            started_at,
            actor,
            limits,
            removed,
        )
    )


async def runs(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, as JSON."""
    rows = await conn.fetch(
        "SELECT id, started_at, finished_at, actor, limits, removed FROM retention_runs ORDER BY id DESC LIMIT $1",
        limit,
    )
    return [
        {**dict(r), "started_at": r["started_at"].isoformat(), "finished_at": r["finished_at"].isoformat()}
        for r in rows
    ]


async def try_lock(conn: asyncpg.Connection, lock_id: int) -> bool:
    """One retention run at a time across every process (a session advisory lock)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_id))


async def unlock(conn: asyncpg.Connection, lock_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)
