"""The read-through lane over the contact log: contacts routed to the new-information queue (a
closed or exhausted case written about again) that no one has marked yet, and the marks."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ..errors import Missing, StateConflict
from ..rules.outcome import CAUTION_QUEUE, NEW_INFORMATION_QUEUE

WAITING = """
SELECT c.id, c.received_at, c.channel, c.sender_raw, c.subject, c.body_excerpt, c.customer_ids, c.case_id,
       c.case_ref
FROM contacts c
WHERE c.target->>'id' = $1 AND c.status = 'decided'
  AND NOT EXISTS (SELECT 1 FROM readthrough_marks m WHERE m.contact_id = c.id)
ORDER BY c.received_at LIMIT $2"""

IN_LANE = """
SELECT c.id, c.received_at, c.case_id FROM contacts c
WHERE c.id = $1 AND c.target->>'id' = $2 AND c.status = 'decided'"""


async def waiting(conn: asyncpg.Pool | asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(WAITING, NEW_INFORMATION_QUEUE, limit))


async def mark(
    conn: asyncpg.Connection, contact_id: uuid.UUID, outcome: str, staff_id: int, actor: str, note: str | None
) -> dict[str, Any]:
    """Mark one waiting contact, once. New information goes to the case's owner (else the caution
    leads' queue), flagged, on the contact's log row; the case history records the mark either way."""
    async with conn.transaction():
        row = await conn.fetchrow(IN_LANE + " FOR UPDATE", contact_id, NEW_INFORMATION_QUEUE)
        if row is None:
            raise Missing(f"contact {contact_id} is not in the read-through lane")
        if await conn.fetchval("SELECT 1 FROM readthrough_marks WHERE contact_id = $1", contact_id):
            raise StateConflict(f"contact {contact_id} was marked already", [{"field": "id"}])
        target = await _owner_target(conn, row["case_id"]) if outcome == "new_information" else None
        marked = await conn.fetchrow(
            """INSERT INTO readthrough_marks (contact_id, case_id, outcome, staff_id, note, target)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
            contact_id,
            row["case_id"],
            outcome,
            staff_id,
            note,
            target,
        )
        if row["case_id"] is not None:
            await conn.execute(
                """INSERT INTO case_events (case_id, actor, staff_id, kind, contact_id, note, target)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                row["case_id"],
                actor,
                staff_id,
                outcome,
                contact_id,
                note,
                target,
            )
        if target is not None:
            await conn.execute(
                "UPDATE contacts SET target = $3, flagged = true WHERE id = $1 AND received_at = $2",
                contact_id,
                row["received_at"],
                target,
            )
    return dict(marked)


async def _owner_target(conn: asyncpg.Connection, case_id: int | None) -> dict[str, str]:
    owner = await conn.fetchval("SELECT owner_id FROM cases WHERE id = $1", case_id) if case_id else None
    return {"type": "staff", "id": str(owner)} if owner else {"type": "queue", "id": CAUTION_QUEUE}


async def history(conn: asyncpg.Pool | asyncpg.Connection, case_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM case_events WHERE case_id = $1 ORDER BY at, id", case_id))
