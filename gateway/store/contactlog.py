"""Writing the contact log: one statement per batch, the earlier decision of a retry, what is not logged yet.

A row here is a JSON object keyed by FIELDS: the `contacts` columns the log writes, then the
decision as answered (kept with the provider id, so that a retry gets the same answer) and the
acknowledgement to queue with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

# The `contacts` columns the log writes (logged_at is the database's), in the order rows carry them.
COLUMNS = (
    "id",
    "received_at",
    "channel",
    "action",
    "status",
    "sender_raw",
    "sender_kind",
    "sender",
    "recipient",
    "provider_id",
    "subject",
    "body_excerpt",
    "customer_ids",
    "case_id",
    "case_ref",
    "on_behalf_of",
    "representative_of",
    "ambiguous",
    "target",
    "flagged",
    "banner",
    "customer_message",
    "reasons",
    "ruleset_version",
    "degraded",
    "latency_us",
    "ack_sent",
    "ack_note",
    "error",
)
FIELDS = (*COLUMNS, "decision", "ack")


@dataclass(frozen=True)
class Batch:
    """Rows as the batch statement takes them: a JSON array of objects keyed by FIELDS, whose
    text PostgreSQL can store (no NUL, no lone surrogate). `mail`: some row is an email or has an
    acknowledgement to queue (False: the statement skips the outbox and the email threads)."""

    json: str
    mail: bool = True

    @classmethod
    def of(cls, objects: Iterable[str], *, mail: bool = True) -> Batch:
        return cls("[" + ",".join(objects) + "]", mail)


# Errors that belong to a record (a value PostgreSQL will not take), not to the database's health.
RECORD_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UnicodeEncodeError, OverflowError)

# Column types of a row as the batch carries it: one JSON array of objects (`Batch`), read with
# jsonb_to_recordset. One text parameter costs far less to encode and to read on both sides than
# an array per column (measured: about a third of the client CPU and half of PostgreSQL's per row).
_TYPES = {
    "id": "uuid",
    "received_at": "timestamptz",
    "customer_ids": "bigint[]",
    "case_id": "bigint",
    "representative_of": "bigint[]",
    "ambiguous": "boolean",
    "target": "jsonb",
    "flagged": "boolean",
    "banner": "jsonb",
    "reasons": "jsonb",
    "ruleset_version": "integer",
    "degraded": "boolean",
    "latency_us": "integer",
    "ack_sent": "boolean",
    "decision": "jsonb",
    "ack": "jsonb",
}
_DERIVED = {
    # Who sent it, also for customers outside the restriction index, and the case it names.
    "customer_ids": """ARRAY(SELECT DISTINCT x FROM unnest(r.customer_ids || ARRAY(
                           SELECT i.customer_id FROM identifiers i WHERE i.kind = r.sender_kind
                           AND i.value = r.sender AND i.customer_id IS NOT NULL) || ARRAY(
                           SELECT c.id FROM customers c WHERE r.sender_kind = 'ref'
                           AND lower(c.external_ref) = r.sender)) AS x ORDER BY x)""",
    "case_id": "coalesce(r.case_id, (SELECT k.id FROM cases k WHERE upper(k.reference) = upper(r.case_ref) LIMIT 1))",
}
# One statement, so one round trip and atomic without BEGIN/COMMIT: claim the provider ids (the
# idempotency decision: a batch holding the same provider id uncommitted makes this one wait for its
# outcome), write the rows that are not retries, queue their acknowledgements in the outbox, remember the message ids
# of email filed on a case (and of its acknowledgement) for threading, and return the retries.
_ROWS = f"""
WITH r AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS r({", ".join(f"{c} {_TYPES.get(c, 'text')}" for c in FIELDS)})
), claimed AS (
    INSERT INTO contact_provider_ids (channel, provider_id, contact_id, decision)
    SELECT channel, provider_id, id, coalesce(decision, '{{}}') FROM r
    WHERE provider_id IS NOT NULL AND status = 'decided'
    ORDER BY channel, provider_id  -- one order in every batch: two batches never wait on each other in a circle
    ON CONFLICT DO NOTHING RETURNING contact_id
), logged AS (
    INSERT INTO contacts ({", ".join(COLUMNS)})
    SELECT {", ".join(_DERIVED.get(c, f"r.{c}") for c in COLUMNS)}
    FROM r WHERE r.provider_id IS NULL OR r.status <> 'decided' OR r.id IN (SELECT contact_id FROM claimed)
    RETURNING id, case_id
)"""
_MAIL = """, acknowledged AS (
    INSERT INTO outbox (kind, contact_id, case_id, to_addr, subject, body, message_id, in_reply_to, refs, auto_reply)
    SELECT 'acknowledgement', l.id, l.case_id, r.ack->>'to', r.ack->>'subject', r.ack->>'text', r.ack->>'message_id',
           r.ack->>'in_reply_to', r.ack->>'references', true
    FROM logged l JOIN r ON r.id = l.id WHERE r.ack IS NOT NULL
    ON CONFLICT (message_id) DO NOTHING
), threaded AS (
    INSERT INTO email_threads (message_id, case_id, contact_id)
    SELECT v.m, l.case_id, l.id FROM logged l JOIN r ON r.id = l.id, LATERAL (VALUES
        (CASE WHEN r.channel = 'email' AND r.status = 'decided' THEN r.provider_id END),
        (r.ack->>'message_id')) AS v(m)
    WHERE l.case_id IS NOT NULL AND v.m IS NOT NULL
    ON CONFLICT DO NOTHING
)"""
_RETRIES = """
SELECT r.id, r.channel, r.provider_id FROM r WHERE r.id NOT IN (SELECT id FROM logged)"""
WRITE_BATCH = _ROWS + _MAIL + _RETRIES
# A batch with no email and no acknowledgement (calls, mostly) has nothing for the outbox or the
# email threads: without those two parts the statement costs PostgreSQL ~25 µs less.
WRITE_BATCH_NO_MAIL = _ROWS + _RETRIES

EARLIER_DECISIONS = """
SELECT p.channel, p.provider_id, p.decision FROM contact_provider_ids p
JOIN unnest($1::text[], $2::text[]) AS k(channel, provider_id) USING (channel, provider_id)"""

NOT_LOGGED = "SELECT x FROM unnest($1::uuid[]) AS x WHERE NOT EXISTS (SELECT 1 FROM contacts WHERE id = x)"


async def write_batch(conn: asyncpg.Connection, batch: Batch, timeout: float | None = None) -> dict[uuid.UUID, Any]:
    """Write a batch in one statement. Returns {contact id: earlier decision} for the rows that
    repeat an already-logged (channel, provider id): those get no row of their own."""
    retries = await conn.fetch(WRITE_BATCH if batch.mail else WRITE_BATCH_NO_MAIL, batch.json, timeout=timeout)
    if not retries:
        return {}
    # A statement of its own: it sees an earlier attempt another batch committed while this one waited.
    keys = ([r["channel"] for r in retries], [r["provider_id"] for r in retries])
    earlier = await conn.fetch(EARLIER_DECISIONS, *keys, timeout=timeout)
    by_key = {(e["channel"], e["provider_id"]): e["decision"] for e in earlier}
    return {r["id"]: by_key.get((r["channel"], r["provider_id"]), {}) for r in retries}


async def not_logged(conn: asyncpg.Connection, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these contact ids have no row in `contacts` yet."""
    return {r["x"] for r in await conn.fetch(NOT_LOGGED, list(ids))}
