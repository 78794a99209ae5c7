"""PostgreSQL's WAL files: enough ready before a data set's phases, and how many a phase had to make.

When a commit fills PostgreSQL's current WAL file, the next file must exist before it can go on. A
server that has run at its rate for a checkpoint cycle has it already: at each checkpoint it keeps
the files it has written past, renamed as the next ones, as many as `min_wal_size` or its recent
WAL rate asks for. A fresh cluster, or one whose load has just grown past what its checkpoints
kept (a storm day), makes each new file while commits wait: 16 MB written with zeros and flushed.
On the bench machine that held every commit of every worker 40–55 ms, once every ~9 s at 1,000
contacts/s (~1.7 KB of WAL a contact), and each time put ~50 requests over 5 ms: half of what a p99
of 5 ms allows in a 10 s phase (bench/RESULTS.md, the reading of 2026-11-27 18:20).

So before a data set's phases the bench readies the files they will need, as such a server holds
them (`ready`: if fewer are ready, WAL file switches and a CHECKPOINT, which keeps the files
switched past as the next ones), and the report says how many files a
constant-load phase entered that were not ready when it began (`Position`, `entered`): at most,
since a checkpoint during the phase may have readied some of them meanwhile. README, "Sizing
PostgreSQL", says how to size `min_wal_size` so a production server keeps enough.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

# A WAL file's name: timeline, then the segment number split in two (PostgreSQL's XLogFileName).
_NAME = "^[0-9A-F]{24}$"


@dataclass(frozen=True)
class Ready:
    """What `ready` found and left: files ready ahead of the current one, before and after."""

    before: int
    after: int
    seconds: float

    def describe(self) -> str:
        made = (
            f"; the bench readied {self.after - self.before} more in {self.seconds:.1f} s"
            if self.after > self.before
            else ""
        )
        return f"{self.after} WAL files ready ahead ({self.before} were{made})"


@dataclass(frozen=True)
class Position:
    """Where the WAL stood: its insert position (bytes), the segment size, the timeline, and the
    names of the files ready ahead of the current one."""

    lsn: int
    segment: int
    timeline: int
    ahead: frozenset[str]


@dataclass(frozen=True)
class Entered:
    """What a phase wrote to the WAL: bytes, files entered, and of those how many were not ready."""

    bytes: int
    files: int
    made: int

    def describe(self, contacts: int) -> str:
        return (
            f"{self.bytes / max(contacts, 1) / 1024:.1f} KB a contact; {self.files} file(s) entered, "
            f"{self.made} not ready (made while commits waited)"
        )


def file_name(timeline: int, segno: int, segment: int) -> str:
    """The name of WAL segment `segno` on `timeline` (PostgreSQL's XLogFileName)."""
    per_id = 0x1_0000_0000 // segment
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


async def position(conn: asyncpg.Connection) -> Position:
    # The file the next WAL record goes to. pg_walfile_name names the file holding the byte before a
    # position, so at a file's very start it names the one before: the name is made here instead.
    row = await conn.fetchrow(
        """SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS lsn,
                  pg_walfile_name(pg_current_wal_insert_lsn()) AS named,
                  (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment"""
    )
    assert row is not None
    lsn, segment, timeline = row["lsn"], row["segment"], int(row["named"][:8], 16)
    current = file_name(timeline, lsn // segment, segment)
    files = await conn.fetch(f"SELECT name FROM pg_ls_waldir() WHERE name ~ '{_NAME}' AND name > $1", current)
    return Position(lsn, segment, timeline, frozenset(r["name"] for r in files))


def entered(before: Position, after: Position) -> Entered:
    """The files a phase moved into between two positions, and how many were not ready ahead at
    the first (made during the phase, or at most that many: a checkpoint may have readied some)."""
    first, last = before.lsn // before.segment, after.lsn // after.segment
    names = [file_name(before.timeline, n, before.segment) for n in range(first + 1, last + 1)]
    return Entered(after.lsn - before.lsn, len(names), sum(1 for n in names if n not in before.ahead))


async def ready(conn: asyncpg.Connection, files: int) -> Ready:
    """At least `files` WAL files ready ahead of the current one, as a server running at this rate
    keeps them. Needs a superuser (or pg_checkpoint and EXECUTE on pg_switch_wal / pg_ls_waldir)."""
    began = time.monotonic()
    before = len((await position(conn)).ahead)
    if before < files:
        # Each switch moves into the next file, made now if none is ready (a switch needs WAL written
        # since the last); the CHECKPOINT after keeps the files switched past, and those earlier
        # phases wrote past, as the next ones (up to what max_wal_size allows).
        for _ in range(files):
            await conn.execute("SELECT pg_logical_emit_message(false, 'bench', ''), pg_switch_wal()")
        await conn.execute("CHECKPOINT")
    return Ready(before, len((await position(conn)).ahead), time.monotonic() - began)
