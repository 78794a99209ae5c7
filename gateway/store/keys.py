"""API keys as stored: a key's hash (never the key), its role and name, the staff member it belongs to,
and when it was revoked."""

from __future__ import annotations

import asyncpg


async def insert_key(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, role: str, digest: bytes, staff_id: int | None = None
) -> int:
    key_id: int = await conn.fetchval(
        "INSERT INTO api_keys (name, role, hash, staff_id) VALUES ($1, $2, $3, $4) RETURNING id",
        name,
        role,
        digest,
        staff_id,
    )
    return key_id


async def staff_member(conn: asyncpg.Connection | asyncpg.Pool, staff_id: int) -> asyncpg.Record | None:
    """The name, role and active flag of a staff member a key is made for; None if there is none."""
    row: asyncpg.Record | None = await conn.fetchrow("SELECT id, name, role, active FROM staff WHERE id = $1", staff_id)
    return row


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    """Every key with its staff member's name, current role and whether they are active."""
    return list(
        await conn.fetch(
            """SELECT k.id, k.name, k.role, k.created_at, k.revoked_at, k.staff_id,
                      s.name AS staff_name, s.role AS staff_role, s.active AS staff_active
               FROM api_keys k LEFT JOIN staff s ON s.id = k.staff_id ORDER BY k.id"""
        )
    )


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: int) -> bytes | None:
    """Revoke a key; processes stop accepting it within their cache time (30 s). Its hash (so the
    copy processes share in Redis can be removed too), or None if there is no such key."""
    digest: bytes | None = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING hash", key_id
    )
    return digest


async def active_key(conn: asyncpg.Connection | asyncpg.Pool, digest: bytes) -> asyncpg.Record | None:
    """The unrevoked key with this hash and, when it belongs to one, its staff member as they are now
    (id, name, role); None if there is no such key or its staff member is inactive."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT k.id, k.name, k.role, k.staff_id, s.name AS staff_name, s.role AS staff_role
           FROM api_keys k LEFT JOIN staff s ON s.id = k.staff_id
           WHERE k.hash = $1 AND k.revoked_at IS NULL AND (k.staff_id IS NULL OR s.active)""",
        digest,
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
