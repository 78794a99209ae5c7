"""The readiness probe's question to the database."""

from __future__ import annotations

import asyncpg


async def database_answers(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT 1"))
