"""Staff sign-in as stored: password hashes (never passwords), browser sessions (the hash of the
cookie, never the cookie), the sign-in audit, and the secret the processes share for CSRF tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def set_password(conn: Db, staff_id: int, login: str, hashed: str, actor: str) -> None:
    await conn.execute(
        """INSERT INTO staff_passwords (staff_id, login, hash, set_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (staff_id) DO UPDATE SET login = $2, hash = $3, set_by = $4, set_at = now()""",
        staff_id,
        login,
        hashed,
        actor,
    )


async def end_sessions_of(conn: Db, staff_id: int) -> int:
    """End every live session of a staff member; how many there were."""
    ended = await conn.fetch(
        "UPDATE staff_sessions SET ended_at = now() WHERE staff_id = $1 AND ended_at IS NULL RETURNING id", staff_id
    )
    return len(ended)


async def login_owner(conn: Db, login: str) -> int | None:
    """The staff member who signs in with `login`, if anyone does."""
    staff_id: int | None = await conn.fetchval("SELECT staff_id FROM staff_passwords WHERE login = $1", login)
    return staff_id


async def password_of(conn: Db, login: str) -> asyncpg.Record | None:
    """The active staff member signing in with `login` and their password hash; None if there is none."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT p.staff_id, p.hash FROM staff_passwords p JOIN staff s ON s.id = p.staff_id
           WHERE p.login = $1 AND s.active""",
        login,
    )
    return row


async def start_session(conn: Db, token_hash: bytes, staff_id: int, expires_at: datetime) -> int:
    session_id: int = await conn.fetchval(
        "INSERT INTO staff_sessions (token_hash, staff_id, expires_at) VALUES ($1, $2, $3) RETURNING id",
        token_hash,
        staff_id,
        expires_at,
    )
    return session_id


async def live_session(conn: Db, token_hash: bytes) -> asyncpg.Record | None:
    """A session that has neither ended nor expired, with its staff member as they are now (still
    active); None otherwise."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT ss.id, ss.staff_id, ss.expires_at, s.name AS staff_name, s.role AS staff_role, s.queue
           FROM staff_sessions ss JOIN staff s ON s.id = ss.staff_id
           WHERE ss.token_hash = $1 AND ss.ended_at IS NULL AND ss.expires_at > now() AND s.active""",
        token_hash,
    )
    return row


async def end_session(conn: Db, token_hash: bytes) -> int | None:
    """End a session; the staff member it belonged to, or None if it had ended already."""
    staff_id: int | None = await conn.fetchval(
        "UPDATE staff_sessions SET ended_at = now() WHERE token_hash = $1 AND ended_at IS NULL RETURNING staff_id",
        token_hash,
    )
    return staff_id


async def record_event(
    conn: Db, kind: str, *, staff_id: int | None = None, login: str | None = None, address: str = "", actor: str = ""
) -> None:
    await conn.execute(
        "INSERT INTO staff_sign_in_events (kind, staff_id, login, address, actor) VALUES ($1, $2, $3, $4, $5)",
        kind,
        staff_id,
        login,
        address[:100] or None,
        actor[:200] or None,
    )


async def start_attempt(conn: Db, login: str, address: str) -> int:
    """A sign-in attempt under way ('checking'): counted by every attempt made while it is checked."""
    attempt: int = await conn.fetchval(
        "INSERT INTO staff_sign_in_events (kind, login, address) VALUES ('checking', $1, $2) RETURNING id",
        login,
        address[:100] or None,
    )
    return attempt


async def end_attempt(conn: Db, attempt: int, kind: str, staff_id: int | None = None) -> None:
    """What the attempt came to: 'refused', 'held_back' or 'signed_in'."""
    await conn.execute(
        "UPDATE staff_sign_in_events SET kind = $2, staff_id = $3, at = now() WHERE id = $1", attempt, kind, staff_id
    )


async def abandon_attempt(conn: Db, attempt: int) -> None:
    """An attempt whose check was cut short (an error, a stop): refused, if it is still under way."""
    await conn.execute(
        "UPDATE staff_sign_in_events SET kind = 'refused', at = now() WHERE id = $1 AND kind = 'checking'", attempt
    )


async def shared_secret(conn: Db, name: str, fresh: bytes) -> bytes:
    """The secret called `name` that every process uses; the first process to ask stores `fresh`."""
    await conn.execute(
        "INSERT INTO gateway_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, fresh
    )
    value: bytes = await conn.fetchval("SELECT value FROM gateway_secrets WHERE name = $1", name)
    return value
