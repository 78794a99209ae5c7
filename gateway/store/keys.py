"""API keys as stored: a key's hash (never the key), its role and name, the staff member it belongs to,
and when it was revoked; and who made and revoked it (`api_key_events`, append-only)."""

from __future__ import annotations

import asyncpg

from ..lifecycle import Actor

# Each statement writes the key's change and its event together (one statement: atomic).
_INSERT = """
WITH made AS (
    INSERT INTO api_keys (name, role, hash, staff_id) VALUES ($1, $2, $3, $4) RETURNING id
), audited AS (
    INSERT INTO api_key_events (key_id, actor, staff_id, kind) SELECT id, $5, $6, 'created' FROM made
)
SELECT id FROM made"""
# Only a key revoked now gets an event: revoking it again changes nothing and records nothing.
_REVOKE = """
WITH target AS (
    SELECT id, hash, revoked_at IS NULL AS live FROM api_keys WHERE id = $1 FOR UPDATE
), revoked AS (
    UPDATE api_keys k SET revoked_at = now() FROM target t WHERE k.id = t.id AND t.live RETURNING k.id
), audited AS (
    INSERT INTO api_key_events (key_id, actor, staff_id, kind) SELECT id, $2, $3, 'revoked' FROM revoked
)
SELECT hash FROM target"""
_REVOKE_OTHERS = """
WITH revoked AS (
    UPDATE api_keys SET revoked_at = now()
    WHERE role = $1 AND name = $2 AND id <> $3 AND revoked_at IS NULL RETURNING id
), audited AS (
    INSERT INTO api_key_events (key_id, actor, staff_id, kind) SELECT id, $4, $5, 'revoked' FROM revoked
)
SELECT id FROM revoked"""


async def insert_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    role: str,
    digest: bytes,
    actor: Actor,
    staff_id: int | None = None,
) -> int:
    """Store a new key, and who made it."""
    key_id: int = await conn.fetchval(_INSERT, name, role, digest, staff_id, actor.label, actor.staff_id)
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


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: int, actor: Actor) -> bytes | None:
    """Revoke a key, and record who did; processes stop accepting it within their cache time (30 s).
    Its hash (so the copy processes share in Redis can be removed too), or None if there is no such key."""
    digest: bytes | None = await conn.fetchval(_REVOKE, key_id, actor.label, actor.staff_id)
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


async def revoke_others(
    conn: asyncpg.Connection | asyncpg.Pool, role: str, name: str, keep: int, actor: Actor
) -> list[int]:
    """Revoke every active key with this role and name except `keep`, recording who did; the ids revoked."""
    rows = await conn.fetch(_REVOKE_OTHERS, role, name, keep, actor.label, actor.staff_id)
    return [r["id"] for r in rows]


async def key_events(conn: asyncpg.Connection | asyncpg.Pool) -> dict[int, list[asyncpg.Record]]:
    """Every key's events, oldest first: key id → [(kind, at, actor)]."""
    events: dict[int, list[asyncpg.Record]] = {}
    for row in await conn.fetch("SELECT key_id, kind, at, actor FROM api_key_events ORDER BY key_id, at, id"):
        events.setdefault(row["key_id"], []).append(row)
    return events
