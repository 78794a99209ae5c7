"""The outbox: mail waiting to be sent, claimed by one sender at a time, and what became of it."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

# A claim is a lease: the row's next attempt moves past the lease, so a sender that dies mid-send
# leaves the row to be retried, never lost, and two senders never take the same row at once.
CLAIM = """
UPDATE outbox o SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
WHERE o.id IN (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= now()
               ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING o.*"""

ATTACHMENTS = "SELECT name, content_type, content FROM outbox_attachments WHERE outbox_id = $1 ORDER BY n"

SENT_SINCE = """
SELECT count(*) FROM outbox WHERE status = 'sent' AND auto_reply AND lower(to_addr) = lower($1)
AND sent_at >= $2 AND ($3::bigint IS NULL OR case_id IS NOT DISTINCT FROM $4::bigint)"""


async def claim_due(conn: asyncpg.Pool | asyncpg.Connection, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    return list(await conn.fetch(CLAIM, limit, lease_seconds))


async def attachments(conn: asyncpg.Pool | asyncpg.Connection, outbox_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(ATTACHMENTS, outbox_id))


async def sent_since(
    conn: asyncpg.Pool | asyncpg.Connection, to: str, since: datetime, *, case_id: int | None, per_case: bool
) -> int:
    """Automatic replies sent to `to` since then: about that case (None: no case) or, not per_case, any."""
    n: int = await conn.fetchval(SENT_SINCE, to, since, 1 if per_case else None, case_id)
    return n


async def settle(
    conn: asyncpg.Connection,
    outbox_id: int,
    contact_id: uuid.UUID | None,
    status: str,
    note: str,
    *,
    retry_in: float | None = None,
) -> None:
    """Record what became of a message (sent, suppressed, failed, refused, or queued for a retry in
    `retry_in` seconds), and on its contact's log row whether it was acknowledged and why not."""
    async with conn.transaction():
        await conn.execute(
            """UPDATE outbox SET status = $2, note = $3,
                   sent_at = CASE WHEN $2 = 'sent' THEN now() END,
                   next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                          ELSE now() + make_interval(secs => $4::float8) END
               WHERE id = $1""",
            outbox_id,
            status,
            note[:2000],
            retry_in,
        )
        if contact_id is not None:
            await conn.execute(
                "UPDATE contacts SET ack_sent = $2, ack_note = $3 WHERE id = $1",
                contact_id,
                status == "sent",
                f"{status}: {note}"[:2000],
            )


async def enqueue(
    conn: asyncpg.Connection,
    *,
    kind: str,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    in_reply_to: str | None = None,
    references: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    contact_id: uuid.UUID | None = None,
    case_id: int | None = None,
    auto_reply: bool = False,
) -> int:
    """Queue one message (a letter, say) with its attachments (name, content type, bytes)."""
    async with conn.transaction():
        outbox_id: int = await conn.fetchval(
            """INSERT INTO outbox (kind, to_addr, subject, body, message_id, in_reply_to, refs,
                   contact_id, case_id, auto_reply)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id""",
            kind,
            to,
            subject,
            body,
            message_id,
            in_reply_to,
            references,
            contact_id,
            case_id,
            auto_reply,
        )
        await conn.executemany(
            "INSERT INTO outbox_attachments (outbox_id, n, name, content_type, content) VALUES ($1, $2, $3, $4, $5)",
            [(outbox_id, n, name, ctype, data) for n, (name, ctype, data) in enumerate(attachments or [])],
        )
    return outbox_id
