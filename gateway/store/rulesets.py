"""Manager rule sets: versions stored whole, exactly one published."""

from __future__ import annotations

from typing import Any

import asyncpg


async def list_rulesets(conn: asyncpg.Pool | asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT version, note, created_by, created_at, published, published_at,
                  jsonb_array_length(rules) AS rule_count, jsonb_array_length(tests) AS test_count
           FROM rulesets ORDER BY version DESC"""
    )
    return [
        {
            **dict(r),
            "created_at": r["created_at"].isoformat(),
            "published_at": r["published_at"].isoformat() if r["published_at"] else None,
        }
        for r in rows
    ]


async def get_ruleset(conn: asyncpg.Pool | asyncpg.Connection, version: int) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT version, rules, tests, note, published FROM rulesets WHERE version = $1", version)
    return dict(row) if row else None


async def published_ruleset(conn: asyncpg.Pool | asyncpg.Connection) -> dict[str, Any] | None:
    """The published version as {version, rules, tests}; None before any is stored."""
    row = await conn.fetchrow("SELECT version, rules, tests FROM rulesets WHERE published")
    return None if row is None else {"version": row["version"], "rules": row["rules"], "tests": row["tests"]}
