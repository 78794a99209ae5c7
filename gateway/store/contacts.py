"""The contact log: reads for the API and the counters, the idempotency backstop, and upkeep
(monthly partitions made ahead, old provider ids forgotten)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

_COLS = """id, received_at, channel, status, sender_raw, sender_kind, sender, recipient, provider_id,
           subject, customer_ids, case_id, case_ref, representative_of, ambiguous, action, target,
           flagged, banner, customer_message, reasons, ruleset_version, degraded, latency_us,
           ack_sent, ack_note, error"""


def _jsonable(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["id"] = str(out["id"])
    out["received_at"] = out["received_at"].isoformat()
    return out


# A customer's contacts: `customer_ids <> '{}'` is the partial GIN index's condition (migration 020).
CONTACTS_OF = f"""SELECT {_COLS} FROM contacts
    WHERE customer_ids @> ARRAY[$1::bigint] AND customer_ids <> '{{}}'
      AND ($2::timestamptz IS NULL OR received_at >= $2)
    ORDER BY received_at DESC LIMIT $3"""
DECIDED_SINCE = """SELECT count(*) FROM contacts
    WHERE customer_ids @> ARRAY[$1::bigint] AND customer_ids <> '{}' AND received_at >= $2 AND status = 'decided'"""


async def contacts_of(
    conn: asyncpg.Pool | asyncpg.Connection, customer_id: int, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    return [_jsonable(r) for r in await conn.fetch(CONTACTS_OF, customer_id, since, limit)]


async def earlier_decision(conn: asyncpg.Pool | asyncpg.Connection, channel: str, provider_id: str) -> Any:
    """The decision logged for a provider id, or None: the contact log's idempotency backstop."""
    return await conn.fetchval(
        "SELECT decision FROM contact_provider_ids WHERE channel = $1 AND provider_id = $2", channel, provider_id
    )


async def decided_since(conn: asyncpg.Pool | asyncpg.Connection, customer_id: int, since: datetime) -> int:
    """Decided contacts from a customer since an instant: the contact counters when Redis is down."""
    return int(await conn.fetchval(DECIDED_SINCE, customer_id, since))


async def make_partitions(conn: asyncpg.Pool | asyncpg.Connection, months: int) -> int:
    """Create any missing monthly partitions from this month on, `months` in all; how many were made."""
    return int(await conn.fetchval("SELECT ensure_contact_partitions(now()::date, $1)", months))


async def forget_provider_ids(conn: asyncpg.Pool | asyncpg.Connection, older_than_days: int) -> int:
    """Delete provider ids remembered longer than this (the contact rows stay); how many went."""
    done = await conn.execute(
        "DELETE FROM contact_provider_ids WHERE created_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(done.split()[-1])
