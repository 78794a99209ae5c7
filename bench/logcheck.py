"""Contact-log rows written == contacts acknowledged, checked against the database per load phase.

Every request of a phase carries a provider id starting with the phase's prefix, so the phase's rows
are found exactly. A repeat of a provider id is answered 200 and must add no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway import db


@dataclass
class LogCheck:
    acked_new: int  # replies 201 (a new contact)
    rows: int  # rows in contacts with the phase's prefix
    distinct_ids: int  # distinct provider ids among those rows
    missing: int  # acknowledged 201 but no row (lost): must be 0
    unacked_rows: int  # rows whose reply the generator never read (cut off at the end of a wrk run)
    exact: bool  # checked id by id (True) or by count only (wrk)
    in_flight: int = 0  # the most rows that can be logged unread: wrk's connection count
    degraded: int = 0  # rows answered with the safe answer: must be 0 without a fault
    commits: int = 0  # transactions that wrote the rows (distinct logged_at: now() is per transaction)

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct_ids

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.unacked_rows <= self.in_flight

    def describe(self) -> str:
        how = "id by id" if self.exact else "by count"
        extra = f", {self.unacked_rows} logged but cut off unread" if self.unacked_rows else ""
        per_commit = f"; {self.rows / self.commits:.1f} rows per commit" if self.commits else ""
        return (
            f"{self.acked_new:,} acked / {self.rows:,} rows ({how}): {self.missing} lost, "
            f"{self.duplicated} duplicated, {self.degraded} degraded{extra}{per_commit}"
        )


_ROWS = """SELECT provider_id, degraded, logged_at FROM contacts
           WHERE received_at >= $1 AND provider_id IS NOT NULL AND starts_with(provider_id, $2)"""


async def _ids(database_url: str, since: datetime, prefix: str) -> tuple[list[str], int, int]:
    """The phase's provider ids, one per row, how many of its rows were degraded, and in how many commits."""
    conn = await db.connect(database_url)
    try:
        rows = await conn.fetch(_ROWS, since, prefix)
    finally:
        await conn.close()
    commits = len({r["logged_at"] for r in rows})
    return [r["provider_id"] for r in rows], sum(1 for r in rows if r["degraded"]), commits


async def by_count(database_url: str, since: datetime, prefix: str, acked_new: int, in_flight: int) -> LogCheck:
    """For wrk: counts only. Up to `in_flight` rows may exist whose reply wrk dropped at its deadline."""
    ids, degraded, commits = await _ids(database_url, since, prefix)
    rows = len(ids)
    unacked = max(0, rows - acked_new)
    return LogCheck(
        acked_new, rows, len(set(ids)), max(0, acked_new - rows), unacked, False, in_flight, degraded, commits
    )


async def by_id(database_url: str, since: datetime, prefix: str, created: list[str], failed: int) -> LogCheck:
    """For the Python generator: every provider id answered 201 must have exactly one row."""
    ids, degraded, commits = await _ids(database_url, since, prefix)
    logged = set(ids)
    missing = len(set(created) - logged)
    unacked = len(logged - set(created))
    return LogCheck(len(created), len(ids), len(logged), missing, unacked, True, failed, degraded, commits)
