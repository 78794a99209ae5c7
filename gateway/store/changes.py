"""Telling every gateway process that a customer's restriction bundle changed, inside the transaction.

NOTIFY is delivered at commit, so listeners never see an uncommitted change; the Redis publish after
commit (gateway.invalidation) is the fast path, this is the one that cannot be lost with the change.
"""

from __future__ import annotations

import asyncpg

from ..rediskeys import PG_INVALIDATE_CHANNEL


async def notify_in_transaction(conn: asyncpg.Connection, customer_id: int | str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", PG_INVALIDATE_CHANNEL, str(customer_id))
