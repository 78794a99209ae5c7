"""Writing the contact log: one statement per batch, the earlier decision of a retry, what is not logged yet.

A row here is a tuple of values in FIELDS order: the `contacts` columns the log writes, then the
decision as answered (kept with the provider id, so that a retry gets the same answer).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
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
Row = tuple[Any, ...]

# Errors that belong to a record (a value PostgreSQL will not take), not to the database's health.
RECORD_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UnicodeEncodeError, OverflowError)

# Column types for the unnest() that carries a batch. Integer arrays travel as text ('{1,2}') because
# PostgreSQL arrays of arrays must be rectangular; JSON travels as text too (a JSON list inside a
# jsonb[] parameter would read as another array dimension) and is cast back in the statement.
_TYPES = {
    "id": "uuid",
    "received_at": "timestamptz",
    "case_id": "bigint",
    "ambiguous": "boolean",
    "flagged": "boolean",
    "ruleset_version": "integer",
    "degraded": "boolean",
    "latency_us": "integer",
    "ack_sent": "boolean",
}
_JSON = ("target", "banner", "reasons", "decision")
_JSON_FIELDS = (*_JSON, "ack")
_DERIVED = {
    **{c: f"r.{c}::jsonb" for c in _JSON},
    # Who sent it, also for customers outside the restriction index, and the case it names.
    "customer_ids": """ARRAY(SELECT DISTINCT x FROM unnest(r.customer_ids::bigint[] || ARRAY(
                           SELECT i.customer_id FROM identifiers i WHERE i.kind = r.sender_kind
                           AND i.value = r.sender AND i.customer_id IS NOT NULL) || ARRAY(
                           SELECT c.id FROM customers c WHERE r.sender_kind = 'ref'
                           AND lower(c.external_ref) = r.sender)) AS x ORDER BY x)""",
    "case_id": "coalesce(r.case_id, (SELECT k.id FROM cases k WHERE upper(k.reference) = upper(r.case_ref) LIMIT 1))",
    "representative_of": "r.representative_of::bigint[]",
}
# One statement, so one round trip and atomic without BEGIN/COMMIT: claim the provider ids, write the
# rows that are not retries, queue their acknowledgements in the outbox, remember the message ids
# of email filed on a case (and of its acknowledgement) for threading, and return the retries' ids.
WRITE_BATCH = f"""
WITH r AS (
    SELECT * FROM unnest({", ".join(f"${n}::{_TYPES.get(c, 'text')}[]" for n, c in enumerate(FIELDS, 1))})
        AS r({", ".join(FIELDS)})
), claimed AS (
    INSERT INTO contact_provider_ids (channel, provider_id, contact_id, decision)
    SELECT channel, provider_id, id, coalesce(decision::jsonb, '{{}}') FROM r
    WHERE provider_id IS NOT NULL AND status = 'decided'
    ON CONFLICT DO NOTHING RETURNING contact_id
), logged AS (
    INSERT INTO contacts ({", ".join(COLUMNS)})
    SELECT {", ".join(_DERIVED.get(c, f"r.{c}") for c in COLUMNS)}
    FROM r WHERE r.provider_id IS NULL OR r.status <> 'decided' OR r.id IN (SELECT contact_id FROM claimed)
    RETURNING id, case_id
), acknowledged AS (
    INSERT INTO outbox (kind, contact_id, case_id, to_addr, subject, body, message_id, in_reply_to, refs, auto_reply)
    SELECT 'acknowledgement', l.id, l.case_id, a->>'to', a->>'subject', a->>'text', a->>'message_id',
           a->>'in_reply_to', a->>'references', true
    FROM logged l JOIN r ON r.id = l.id, LATERAL (SELECT r.ack::jsonb AS a) x WHERE r.ack IS NOT NULL
    ON CONFLICT (message_id) DO NOTHING
), threaded AS (
    INSERT INTO email_threads (message_id, case_id, contact_id)
    SELECT v.m, l.case_id, l.id FROM logged l JOIN r ON r.id = l.id, LATERAL (VALUES
        (CASE WHEN r.channel = 'email' AND r.status = 'decided' THEN r.provider_id END),
        (r.ack::jsonb->>'message_id')) AS v(m)
    WHERE l.case_id IS NOT NULL AND v.m IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT r.id FROM r WHERE r.id NOT IN (SELECT id FROM logged)"""

EARLIER_DECISIONS = """
SELECT p.channel, p.provider_id, p.decision FROM contact_provider_ids p
JOIN unnest($1::text[], $2::text[]) AS k(channel, provider_id) USING (channel, provider_id)"""

NOT_LOGGED = "SELECT x FROM unnest($1::uuid[]) AS x WHERE NOT EXISTS (SELECT 1 FROM contacts WHERE id = x)"


def column_arrays(rows: Sequence[Row]) -> list[list[Any]]:
    """The rows as one array per parameter of WRITE_BATCH. Their text is storable already."""
    arrays = [list(col) for col in zip(*rows, strict=True)]
    for name in ("customer_ids", "representative_of"):
        n = FIELDS.index(name)
        arrays[n] = ["{" + ",".join(map(str, v)) + "}" for v in arrays[n]]
    for name in _JSON_FIELDS:
        n = FIELDS.index(name)
        arrays[n] = [None if v is None else json.dumps(v, separators=(",", ":")) for v in arrays[n]]
    return arrays


_ID, _CHANNEL, _PROVIDER_ID = (FIELDS.index(c) for c in ("id", "channel", "provider_id"))


async def write_batch(
    conn: asyncpg.Connection, rows: Sequence[Row], timeout: float | None = None
) -> dict[int, dict[str, Any]]:
    """Write a batch in one statement. Returns {index in batch: earlier decision} for the rows that
    repeat an already-logged (channel, provider id): those get no row of their own."""
    retries = {r["id"] for r in await conn.fetch(WRITE_BATCH, *column_arrays(rows), timeout=timeout)}
    if not retries:
        return {}
    lost = [(i, r) for i, r in enumerate(rows) if r[_ID] in retries]
    keys = ([r[_CHANNEL] for _, r in lost], [r[_PROVIDER_ID] for _, r in lost])
    earlier = await conn.fetch(EARLIER_DECISIONS, *keys, timeout=timeout)
    by_key = {(e["channel"], e["provider_id"]): e["decision"] for e in earlier}
    return {i: by_key.get((r[_CHANNEL], r[_PROVIDER_ID]), {}) for i, r in lost}


async def not_logged(conn: asyncpg.Connection, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these contact ids have no row in `contacts` yet."""
    return {r["x"] for r in await conn.fetch(NOT_LOGGED, list(ids))}
