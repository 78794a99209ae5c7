"""Email threads: the message ids the gateway logged or sent for a case, so a reply finds its case."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

# Nearest first: the first id (In-Reply-To) that names a case wins.
THREAD_CASE = """
SELECT c.reference FROM unnest($1::text[]) WITH ORDINALITY AS x(message_id, n)
JOIN email_threads t USING (message_id) JOIN cases c ON c.id = t.case_id
ORDER BY x.n LIMIT 1"""


async def thread_case(
    conn: asyncpg.Pool | asyncpg.Connection, message_ids: Sequence[str], timeout: float
) -> str | None:
    """The reference of the case the nearest of these message ids belongs to, if any."""
    if not message_ids:
        return None
    ref: str | None = await conn.fetchval(THREAD_CASE, list(message_ids), timeout=timeout)
    return ref
