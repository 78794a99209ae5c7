"""Applies the numbered SQL files in migrations/ in order, each once, under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# An arbitrary constant shared by every gateway process: the advisory lock that serialises migrations.
MIGRATION_LOCK_ID = 0x6761_7465_7761_7901
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """A migration file is missing, malformed or was edited after it was applied."""


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_description.sql")
        number = int(match.group(1))
        if number in found:
            raise MigrationError(f"{path.name}: number {number} is used by {found[number].name} too")
        found[number] = Migration(number, path.name, path.read_text())
    return [found[n] for n in sorted(found)]


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is pending; returns the names applied. Safe to run from many processes at once."""
    migrations = discover(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   number integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {r["number"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
        done = []
        for m in migrations:
            row = applied.get(m.number)
            if row is not None:
                if row["checksum"] != m.checksum:
                    raise MigrationError(
                        f"{m.name} was edited after it was applied (checksum differs); "
                        "add a new migration instead of changing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (number, name, checksum) VALUES ($1, $2, $3)",
                    m.number,
                    m.name,
                    m.checksum,
                )
            log.info("applied migration %s", m.name)
            done.append(m.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
