"""PostgreSQL's WAL files and checkpoints around the bench's phases: files ready before a data set's
phases, each size starting on a fresh checkpoint, and what a constant load met of either.

When a commit fills PostgreSQL's current WAL file, the next file must exist before it can go on. A
server that has run at its rate for a while has it already: at each checkpoint it keeps the files
it has written past, renamed as the next ones (PostgreSQL counts what it keeps from the checkpoint's
redo point: `min_wal_size`, or ~(1 + checkpoint_completion_target) × its recent WAL a checkpoint
cycle). A fresh cluster, or one whose load has just grown past what its checkpoints kept (a storm
day), makes each new file while commits wait: 16 MB written with zeros and flushed. On the bench
machine that held every commit of every worker 38–55 ms, once every ~9 s at 1,000 contacts/s (~2 KB
of WAL a contact), and in a 20 s lab run three such stalls held 154 of the 273 requests over 5 ms
(bench/RESULTS.md, the reading after the runs of 2026-11-27 18:35–18:40).

So before a data set's phases `ready` readies the files they will need: if fewer are ready, it
switches WAL files (each made now if none is ready), and then it always runs a CHECKPOINT, which
keeps the files switched past as the next ones and starts every size on a fresh checkpoint cycle:
a server whose checkpoints kept enough files. A production server's load runs during a checkpoint
most of the time (one every `checkpoint_timeout`, 5 minutes by default, its writes spread over
`checkpoint_completion_target` of it, 90 %), so `spreading` starts one, spread, just before the
constant load: the load meets its first seconds, when full-page images make the WAL a row largest,
never its final flushes; it goes on through the phases after (the next `ready` finishes it).
Around a constant load, `position` and `entered` say the WAL the phase wrote, the files it entered
and how many of those were not ready when it began (at most: a checkpoint during the phase may have
readied some meanwhile), and whether a checkpoint ran during it. README, "Sizing PostgreSQL", says
how to size `min_wal_size` so that a production server keeps enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from gateway import db

# A WAL file's name: timeline, then the segment number split in two (PostgreSQL's XLogFileName).
_NAME = "^[0-9A-F]{24}$"
_STARTS_WITHIN = 2.0  # seconds for a requested spread checkpoint to be seen under way
# Whether the checkpointer is at a checkpoint: waiting on something other than its main loop's wait
# (mostly CheckpointWriteDelay, between spread writes). A user without pg_read_all_stats sees no
# other process's wait event (NULL): never "at a checkpoint" then, rather than always.
_CHECKPOINTING = """EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'checkpointer'
                           AND wait_event <> 'CheckpointerMain')"""


@dataclass(frozen=True)
class Ready:
    """What `ready` found and left: files ready ahead of the current one, before and after its
    checkpoint, and how many files it switched past to ready more (0: enough were ready)."""

    before: int
    after: int
    switched: int
    seconds: float

    def describe(self) -> str:
        switched = (
            f"; the bench switched past {self.switched} to ready more, {self.seconds:.1f} s" if self.switched else ""
        )
        return f"{self.after} WAL files ready ahead after a checkpoint ({self.before} before{switched})"


@dataclass(frozen=True)
class Position:
    """Where the WAL stood: its insert position (bytes), the segment size, the timeline, the names of
    the files ready ahead of the current one, the last checkpoint's redo point, and whether the
    checkpointer was at a checkpoint just then (not waiting in its main loop)."""

    lsn: int
    segment: int
    timeline: int
    ahead: frozenset[str]
    redo: int = 0
    checkpointing: bool = False


@dataclass(frozen=True)
class Entered:
    """What a phase wrote to the WAL: bytes, files entered, how many of those were not ready, and
    whether a checkpoint ran during it (under way at its start or end, or finished within it)."""

    bytes: int
    files: int
    made: int
    checkpoint: bool = False

    def describe(self, rows: int) -> str:
        return (
            f"{self.bytes / max(rows, 1) / 1024:.1f} KB of WAL a row logged (the phase's WAL ÷ its rows); "
            f"{self.files} file(s) entered, {self.made} not ready (made while commits waited); "
            + ("a checkpoint ran during it" if self.checkpoint else "no checkpoint during it")
        )


def file_name(timeline: int, segno: int, segment: int) -> str:
    """The name of WAL segment `segno` on `timeline` (PostgreSQL's XLogFileName)."""
    per_id = 0x1_0000_0000 // segment
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


async def position(conn: asyncpg.Connection) -> Position:
    row = await conn.fetchrow(
        f"""SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS lsn,
                  pg_walfile_name(pg_current_wal_insert_lsn()) AS named,
                  (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment,
                  (SELECT pg_wal_lsn_diff(redo_lsn, '0/0')::bigint FROM pg_control_checkpoint()) AS redo,
                  {_CHECKPOINTING} AS checkpointing"""
    )
    assert row is not None
    lsn, segment, timeline = row["lsn"], row["segment"], int(row["named"][:8], 16)
    # The file the next record goes to, named here from the position: pg_walfile_name names the
    # file holding the byte before a position, which differs at a file's very first byte.
    current = file_name(timeline, lsn // segment, segment)
    files = await conn.fetch("SELECT name FROM pg_ls_waldir() WHERE name ~ $1 AND name > $2", _NAME, current)
    ahead = frozenset(r["name"] for r in files)
    return Position(lsn, segment, timeline, ahead, row["redo"], row["checkpointing"])


def entered(before: Position, after: Position) -> Entered:
    """The files a phase moved into between two positions, and how many were not ready ahead at
    the first (made during the phase, or at most that many: a checkpoint may have readied some)."""
    first, last = before.lsn // before.segment, after.lsn // after.segment
    names = [file_name(before.timeline, n, before.segment) for n in range(first + 1, last + 1)]
    checkpoint = before.checkpointing or after.checkpointing or before.redo != after.redo
    return Entered(after.lsn - before.lsn, len(names), sum(1 for n in names if n not in before.ahead), checkpoint)


async def ready(conn: asyncpg.Connection, files: int) -> Ready:
    """At least `files` WAL files ready ahead of the current one (as far as max_wal_size lets
    PostgreSQL keep them), and a fresh checkpoint cycle. Needs a superuser (or pg_checkpoint, and
    EXECUTE on pg_switch_wal and pg_ls_waldir)."""
    began = time.monotonic()
    before = len((await position(conn)).ahead)
    switched = 0
    if before < files:
        # Each switch moves into the next file, made now if none is ready (a switch needs WAL written
        # since the last). Only files made add to those the checkpoint can keep, so it switches
        # `files` times, not `files - before`.
        for _ in range(files):
            await conn.execute("SELECT pg_logical_emit_message(false, 'bench', ''), pg_switch_wal()")
        switched = files
    # Keeps the files switched past (and those earlier phases wrote past) as the next ones.
    await conn.execute("CHECKPOINT")
    return Ready(before, len((await position(conn)).ahead), switched, time.monotonic() - began)


@contextlib.asynccontextmanager
async def spreading(url: str) -> AsyncIterator[bool]:
    """A checkpoint spreading its writes while the block runs, as on a production server most of
    the time. SQL's CHECKPOINT is immediate; pg_backup_start(fast => false) requests a spread one and
    waits for it, so it is asked on a connection of its own and cancelled after the block (the
    backup is aborted; the checkpoint goes on, and the next `ready` finishes it). Yields whether
    one was seen under way (not when the bench may not start one or see the checkpointer)."""
    conn = await db.connect(url)
    request = asyncio.ensure_future(conn.execute("SELECT pg_backup_start('bench: a spread checkpoint', false)"))
    try:
        seen = False
        look = await db.connect(url)
        try:
            deadline = time.monotonic() + _STARTS_WITHIN
            while not request.done() and time.monotonic() < deadline:
                if seen := bool(await look.fetchval(f"SELECT {_CHECKPOINTING}")):
                    break
                await asyncio.sleep(0.02)
        except asyncpg.PostgresError:  # may not see the checkpointer: the phase goes on, said unseen
            seen = False
        finally:
            await look.close()
        yield seen
    finally:
        request.cancel()
        await asyncio.wait([request])  # cancelled, or failed (not allowed): either way it is over
        if not request.cancelled():
            request.exception()  # retrieved: a refusal is what `seen` already says
        with contextlib.suppress(Exception):  # a backup started after all ends with its session
            await conn.close()
