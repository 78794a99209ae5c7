"""What a rule-set simulation reads: the contact log in time order, restrictions as they stood at any
moment (rebuilt from the append-only restriction events) or as they stand now, customers, cases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from ..rules.context import CaseView, CustomerView
from ..rules.params import CHANNELS

LOGGED = """SELECT id, received_at, channel, sender_raw, sender_kind, recipient, subject, case_id, case_ref,
                   on_behalf_of, customer_ids, representative_of
            FROM contacts WHERE status = 'decided' AND channel = ANY($3::text[])
              AND received_at >= $1 AND received_at < $2 ORDER BY received_at"""
_COUNT = """SELECT count(*) FROM contacts WHERE status = 'decided' AND channel = ANY($3::text[])
            AND received_at >= $1 AND received_at < $2"""
# Every change to a restriction, in order: `after` holds the record (created) or the fields changed.
_EVENTS = """SELECT restriction_id, customer_id, at, after FROM restriction_events
             WHERE restriction_id IS NOT NULL AND after IS NOT NULL AND at < $1
               AND kind NOT IN ('viewed', 'exported') ORDER BY restriction_id, id"""


async def count_logged(conn: asyncpg.Connection, since: datetime, until: datetime) -> int:
    return int(await conn.fetchval(_COUNT, since, until, list(CHANNELS)))


async def logged_contacts(
    conn: asyncpg.Connection, since: datetime, until: datetime, prefetch: int = 5000
) -> AsyncIterator[asyncpg.Record]:
    """The decided contacts of [since, until) oldest first, streamed (call inside a transaction)."""
    async for row in conn.cursor(LOGGED, since, until, list(CHANNELS), prefetch=prefetch):
        yield row


async def restriction_history(
    conn: asyncpg.Connection, until: datetime
) -> dict[int, list[tuple[datetime, dict[str, Any]]]]:
    """restriction id → [(when, the record as it stood from then)], folded from its events."""
    history: dict[int, list[tuple[datetime, dict[str, Any]]]] = {}
    state: dict[str, Any] = {}
    current = 0
    for e in await conn.fetch(_EVENTS, until):
        if e["restriction_id"] != current:
            current, state = int(e["restriction_id"]), {}
        if not isinstance(e["after"], dict):
            continue
        state = {**state, **e["after"], "id": e["restriction_id"], "customer_id": e["customer_id"]}
        history.setdefault(current, []).append((e["at"], state))
    return history


async def customers(
    conn: asyncpg.Connection, ids: Sequence[int] | None, *, flagged: bool = True
) -> dict[int, CustomerView]:
    """Customers with their recorded adjustment flags: these ids, and (`flagged`) every customer with flags."""
    rows = await conn.fetch(
        """SELECT id, name, adjustments FROM customers
           WHERE id = ANY($1::bigint[]) OR ($2 AND adjustments->'flags' <> '[]'::jsonb)""",
        list(ids or ()),
        flagged,
    )
    return {
        r["id"]: CustomerView(r["id"], r["name"], frozenset((r["adjustments"] or {}).get("flags", []))) for r in rows
    }


async def cases(
    conn: asyncpg.Connection, customer_ids: Sequence[int], since: datetime, until: datetime
) -> dict[int, CaseView]:
    """The cases of these (restricted) customers and every case a contact of [since, until) is about."""
    rows = await conn.fetch(
        """SELECT id, reference, customer_id, status, closed_on, subject FROM cases
           WHERE customer_id = ANY($1::bigint[]) OR id IN (SELECT DISTINCT case_id FROM contacts
                 WHERE case_id IS NOT NULL AND received_at >= $2 AND received_at < $3)""",
        list(customer_ids),
        since,
        until,
    )
    return {r["id"]: CaseView(**dict(r)) for r in rows}
