"""Manager rule sets: versions stored whole, exactly one published; drafts edited until published;
an append-only history of who drafted, edited, published or rolled back, when and why; simulations."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from ..errors import Missing, StateConflict
from .changes import notify_in_transaction

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection
# Serialises publishing and rolling back across every gateway process (an arbitrary constant).
_PUBLISH_LOCK = 7_305_113
_SIMULATION_LOCK = 7_305_114
_STATUS = """CASE WHEN r.published THEN 'published' WHEN r.published_at IS NULL THEN 'draft'
                  ELSE 'retired' END AS status"""
_LAST_PUBLISH = """(SELECT row_to_json(e) FROM (SELECT kind, actor, at, why FROM ruleset_events
                     WHERE version = r.version AND kind IN ('published', 'rolled_back')
                     ORDER BY id DESC LIMIT 1) e) AS last_published"""


def _iso(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in dict(row).items()}


def _summary(row: asyncpg.Record) -> dict[str, Any]:
    return _iso(row)  # last_published comes decoded (the pool's json codec)


async def list_rulesets(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT r.version, r.note, r.created_by, r.created_at, r.based_on, r.updated_by, r.updated_at,
                   r.published, r.published_at, {_STATUS}, {_LAST_PUBLISH},
                   jsonb_array_length(r.rules) AS rule_count, jsonb_array_length(r.tests) AS test_count
            FROM rulesets r ORDER BY r.version DESC"""
    )
    return [_summary(r) for r in rows]


async def get_ruleset(conn: Conn, version: int) -> dict[str, Any] | None:
    """The version whole (rules, tests) with its status and its history."""
    row = await conn.fetchrow(
        f"""SELECT r.version, r.rules, r.tests, r.note, r.published, r.published_at, r.created_by,
                   r.created_at, r.based_on, r.updated_by, r.updated_at, {_STATUS}, {_LAST_PUBLISH}
            FROM rulesets r WHERE r.version = $1""",
        version,
    )
    if row is None:
        return None
    events = await conn.fetch(
        "SELECT kind, actor, at, why, previous FROM ruleset_events WHERE version = $1 ORDER BY id", version
    )
    return {**_summary(row), "history": [_iso(e) for e in events]}


async def require_ruleset(conn: Conn, version: int) -> dict[str, Any]:
    found = await get_ruleset(conn, version)
    if found is None:
        raise Missing(f"rule set version {version} does not exist")
    return found


async def published_ruleset(conn: Conn) -> dict[str, Any] | None:
    """The published version as {version, rules, tests}; None before any is stored."""
    row = await conn.fetchrow("SELECT version, rules, tests FROM rulesets WHERE published")
    return None if row is None else {"version": row["version"], "rules": row["rules"], "tests": row["tests"]}


async def ruleset_data(conn: Conn, version: int) -> dict[str, Any]:
    """{version, rules, tests} of any version, for parsing and compiling."""
    row = await conn.fetchrow("SELECT version, rules, tests FROM rulesets WHERE version = $1", version)
    if row is None:
        raise Missing(f"rule set version {version} does not exist")
    return {"version": row["version"], "rules": row["rules"], "tests": row["tests"]}


async def create_draft(conn: asyncpg.Connection, source: int | None, note: str, actor: str) -> int:
    """A new draft copied from `source` (default: the published version)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT version, rules, tests FROM rulesets WHERE "
            + ("version = $1" if source is not None else "published AND $1::integer IS NULL"),
            source,
        )
        if row is None:
            raise Missing(f"rule set version {source} does not exist")
        version: int = await conn.fetchval(
            """INSERT INTO rulesets (rules, tests, note, created_by, based_on)
               VALUES ($1, $2, $3, $4, $5) RETURNING version""",
            row["rules"],
            row["tests"],
            note or f"Draft based on version {row['version']}",
            actor,
            row["version"],
        )
        await _event(conn, version, "drafted", actor, note or None)
    return version


async def update_draft(
    conn: asyncpg.Connection, version: int, rules: list[Any], tests: list[Any], note: str | None, actor: str
) -> None:
    async with conn.transaction():
        await _lock_draft(conn, version, "edit")
        await conn.execute(
            """UPDATE rulesets SET rules = $2, tests = $3, note = coalesce($4, note), updated_by = $5,
                   updated_at = now() WHERE version = $1""",
            version,
            rules,
            tests,
            note,
            actor,
        )
        await _event(conn, version, "edited", actor, note)


async def _lock_draft(conn: asyncpg.Connection, version: int, doing: str) -> None:
    row = await conn.fetchrow("SELECT published, published_at FROM rulesets WHERE version = $1 FOR UPDATE", version)
    if row is None:
        raise Missing(f"rule set version {version} does not exist")
    if row["published"] or row["published_at"] is not None:
        raise StateConflict(
            f"rule set version {version} has been published and cannot change; draft a new version from it",
            {"version": version},
            code="not_a_draft",
        )


async def put_in_force(conn: asyncpg.Connection, version: int, reason: str, actor: str, *, rollback: bool) -> int:
    """Publish a draft (rollback=False) or go back to an earlier published version (rollback=True),
    atomically; every gateway process is told at commit. Returns the version it replaced."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PUBLISH_LOCK)
        row = await conn.fetchrow("SELECT published, published_at FROM rulesets WHERE version = $1", version)
        if row is None:
            raise Missing(f"rule set version {version} does not exist")
        current = await conn.fetchval("SELECT version FROM rulesets WHERE published")
        if row["published"]:
            raise StateConflict(f"rule set version {version} is already in force", code="already_published")
        if rollback and row["published_at"] is None:
            raise StateConflict(
                f"rule set version {version} has never been published: publish it (its tests run first)",
                code="never_published",
            )
        if not rollback and row["published_at"] is not None:
            raise StateConflict(
                f"rule set version {version} was published before: roll back to it instead", code="not_a_draft"
            )
        await conn.execute("UPDATE rulesets SET published = false WHERE published")
        await conn.execute("UPDATE rulesets SET published = true, published_at = now() WHERE version = $1", version)
        await _event(conn, version, "rolled_back" if rollback else "published", actor, reason, current)
        await notify_in_transaction(conn, "ruleset")
    return int(current) if current is not None else 0


async def _event(
    conn: asyncpg.Connection, version: int, kind: str, actor: str, why: str | None, previous: int | None = None
) -> None:
    await conn.execute(
        "INSERT INTO ruleset_events (version, kind, actor, why, previous) VALUES ($1, $2, $3, $4, $5)",
        version,
        kind,
        actor,
        why,
        previous,
    )


# -- simulations --------------------------------------------------------------------------------


async def start_simulation(
    conn: asyncpg.Connection, version: int, against: int, params: dict[str, Any], actor: str, *, most: int, window: int
) -> int | None:
    """Record a simulation job, unless `most` are running already (started in the last `window`
    minutes): None then. Counted and recorded under one lock, so two requests at once cannot both
    take the last place."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SIMULATION_LOCK)
        if await running_simulations(conn, window) >= most:
            return None
        job: int = await conn.fetchval(
            "INSERT INTO ruleset_simulations (version, against, params, created_by) VALUES ($1, $2, $3, $4) "
            "RETURNING id",
            version,
            against,
            params,
            actor,
        )
    return job


async def simulation_progress(conn: Conn, job: int, done: int, total: int) -> None:
    await conn.execute("UPDATE ruleset_simulations SET done = $2, total = $3 WHERE id = $1", job, done, total)


async def finish_simulation(conn: Conn, job: int, result: dict[str, Any] | None, error: str | None = None) -> None:
    await conn.execute(
        """UPDATE ruleset_simulations SET status = $2, result = $3, error = $4, finished_at = now(),
               done = CASE WHEN $2 = 'done' THEN total ELSE done END WHERE id = $1""",
        job,
        "failed" if error else "done",
        result,
        error,
    )


async def get_simulation(conn: Conn, job: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT id, version, against, params, status, done, total, result, error, created_by, created_at,
                  finished_at FROM ruleset_simulations WHERE id = $1""",
        job,
    )
    return None if row is None else _iso(row)


async def running_simulations(conn: Conn, within_minutes: int) -> int:
    """Simulations still running that started in the last minutes (older ones are presumed lost)."""
    return int(
        await conn.fetchval(
            """SELECT count(*) FROM ruleset_simulations
               WHERE status = 'running' AND created_at > now() - make_interval(mins => $1)""",
            within_minutes,
        )
    )


async def fail_if_running(conn: Conn, job: int, error: str) -> None:
    """A job whose process ended without saying how it went."""
    await conn.execute(
        """UPDATE ruleset_simulations SET status = 'failed', error = $2, finished_at = now()
           WHERE id = $1 AND status = 'running'""",
        job,
        error,
    )
