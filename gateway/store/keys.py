"""API keys as stored: a key's hash (never the key), its role and name, and when it was revoked."""

from __future__ import annotations

import asyncpg


async def insert_key(conn: asyncpg.Connection | asyncpg.Pool, name: str, role: str, digest: bytes) -> int:
    key_id: int = await conn.fetchval(
        "INSERT INTO api_keys (name, role, hash) VALUES ($1, $2, $3) RETURNING id", name, role, digest
    )
    return key_id


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT id, name, role, created_at, revoked_at FROM api_keys ORDER BY id"))


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: int) -> bool:
    """Revoke a key; processes stop accepting it within their cache time (30 s). False if unknown."""
    done = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id", key_id
    )
    return done is not None


async def active_key(conn: asyncpg.Connection | asyncpg.Pool, digest: bytes) -> asyncpg.Record | None:
    """The id, name and role of the unrevoked key with this hash; None if there is none."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, name, role FROM api_keys WHERE hash = $1 AND revoked_at IS NULL", digest
    )
    return row


async def revoke_others(conn: asyncpg.Connection | asyncpg.Pool, role: str, name: str, keep: int) -> list[int]:
    """Revoke every active key with this role and name except `keep`; the ids revoked."""
    rows = await conn.fetch(
        "UPDATE api_keys SET revoked_at = now() WHERE role = $1 AND name = $2 AND id <> $3 AND revoked_at IS NULL "
        "RETURNING id",
        role,
        name,
        keep,
    )
    return [r["id"] for r in rows]
