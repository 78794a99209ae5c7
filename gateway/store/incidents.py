"""Incident referrals as stored, and what an agent screen reads of the contact log: a contact's
banner and where it went, and the recent contacts routed to one agent."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

_REFERRAL = """r.id, r.customer_id, r.contact_id::text AS contact_id, r.happened_at, r.what, r.referred_by,
               s.name AS referred_by_name, r.referred_at"""


async def insert_referral(
    conn: Db, customer_id: int | None, contact_id: uuid.UUID | None, happened_at: datetime, what: str, staff_id: int
) -> dict[str, Any]:
    new_id = await conn.fetchval(
        """INSERT INTO incident_referrals (customer_id, contact_id, happened_at, what, referred_by)
           VALUES ($1, $2, $3, $4, $5) RETURNING id""",
        customer_id,
        contact_id,
        happened_at,
        what,
        staff_id,
    )
    row = await conn.fetchrow(
        f"SELECT {_REFERRAL} FROM incident_referrals r JOIN staff s ON s.id = r.referred_by WHERE r.id = $1", new_id
    )
    return dict(row)


async def referrals_of(conn: Db, customer_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_REFERRAL} FROM incident_referrals r JOIN staff s ON s.id = r.referred_by
            WHERE r.customer_id = $1 ORDER BY r.referred_at DESC""",
        customer_id,
    )
    return [dict(r) for r in rows]


async def referrals_since(conn: Db, since: datetime) -> list[dict[str, Any]]:
    """Referrals made since `since`, newest first, with the customer's name (none for an unknown caller)."""
    rows = await conn.fetch(
        f"""SELECT {_REFERRAL}, c.name AS customer_name
            FROM incident_referrals r JOIN staff s ON s.id = r.referred_by LEFT JOIN customers c ON c.id = r.customer_id
            WHERE r.referred_at >= $1 ORDER BY r.referred_at DESC""",
        since,
    )
    return [dict(r) for r in rows]


async def contact_seen(conn: Db, contact_id: uuid.UUID) -> asyncpg.Record | None:
    """What an agent may see of one logged contact: when, which channel, who it matched, where it went
    and its banner (never its reasons)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT id, received_at, channel, customer_ids, target, banner FROM contacts
           WHERE id = $1 AND status = 'decided'""",
        contact_id,
    )
    return row


async def recent_for(
    conn: Db, staff_id: int, queue: str | None, since: datetime, limit: int = 10
) -> list[asyncpg.Record]:
    """Contacts with a banner routed to this agent (their line, voicemail or mailbox) or their queue."""
    return list(
        await conn.fetch(
            """SELECT id, received_at, channel, target, banner FROM contacts
               WHERE received_at >= $1 AND status = 'decided' AND banner IS NOT NULL
                 AND ((target->>'type' IN ('staff', 'voicemail') AND target->>'id' = $2)
                      OR (target->>'type' = 'queue' AND target->>'id' = $3))
               ORDER BY received_at DESC LIMIT $4""",
            since,
            str(staff_id),
            queue,
            limit,
        )
    )


async def staff_names(conn: Db, ids: list[int]) -> dict[int, str]:
    rows = await conn.fetch("SELECT id, name FROM staff WHERE id = ANY($1::bigint[])", ids)
    return {r["id"]: r["name"] for r in rows}


async def staff_queue(conn: Db, staff_id: int) -> str | None:
    queue: str | None = await conn.fetchval("SELECT queue FROM staff WHERE id = $1", staff_id)
    return queue
