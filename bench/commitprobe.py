"""PostgreSQL's own commit time beside a load phase: the part of a reply's latency no gateway code can cut.

Every reply of the decide path waits for its contact's commit, and every commit waits for
PostgreSQL's WAL flush (an fdatasync). When the storage stalls a flush, every contact of every
worker waits with it: on the bench's 2-core VMs an fdatasync on an idle disk took 0.1–0.4 ms
mostly and 5–422 ms now and then (41 over 5 ms, 7 over 50 ms in two minutes: bench/RESULTS.md, the
reading of 14:52–15:03 on 2026-11-27), and at 1,000 contacts/s one 50 ms stall alone makes half of
the late requests a p99 over 10 s allows.

So while the constant load runs, a connection of its own commits a one-row insert every INTERVAL
into a table of its own (`bench_commit_probe` in the bench's database, dropped after), and times
each from send to answer. The report prints the spread of those sent and answered within the load's
window, and how many of the load's late requests (over LATE_MS) were in flight while a probe commit
was as late: most likely they waited for the same flush (a pile-up on the cores would look the same
to both; bench/RESULTS.md's reading timed fdatasync on its own to tell them apart). Its own
backend is left out of the phase's PostgreSQL CPU per contact; its 50 small commits a second still
share the machine and the WAL flushes with the gateway's.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import asyncpg

from gateway import db

from .steady import LATE_MS, percentile

INTERVAL = 0.02  # seconds between probe commits
TABLE = "bench_commit_probe"


@dataclass
class CommitProbe:
    """Every probe commit as (wall-clock send time, ms from send to answer)."""

    commits: list[tuple[float, float]] = field(default_factory=list)
    backend_pid: int | None = None  # its PostgreSQL backend, left out of the phase's PostgreSQL CPU
    error: str | None = None  # why the probe stopped before the phase ended (the phase goes on)

    @property
    def late(self) -> list[tuple[float, float]]:
        return [(sent, ms) for sent, ms in self.commits if ms > LATE_MS]

    def within(self, start: float, end: float) -> CommitProbe:
        """Only the commits sent and answered between these wall-clock times: the load's own
        window, not the generator's start nor the bench's own work once the load is over."""
        kept = [(sent, ms) for sent, ms in self.commits if sent >= start and sent + ms / 1000 <= end]
        return CommitProbe(kept, self.backend_pid, self.error)

    def describe(self, load_late: Iterable[tuple[float, float]] = ()) -> str:
        """ "p50 / p99 / max ms (n, late commits); the load's late requests and how many waited for one"."""
        stopped = f"; the probe stopped: {self.error}" if self.error else ""
        if not self.commits:
            return "no commit was timed" + stopped
        d = [ms for _, ms in self.commits]
        text = (
            f"{percentile(d, 50):.2f} / {percentile(d, 99):.2f} / {max(d):.1f} "
            f"(n={len(d)}; {len(self.late)} over {LATE_MS:.0f} ms)"
        )
        requests = list(load_late)
        if requests:
            text += (
                f"; the load's requests over {LATE_MS:.0f} ms: {len(requests)}, "
                f"{overlapping(requests, self.late)} of them in flight during one of those commits"
            )
        return text + stopped


def overlapping(requests: Iterable[tuple[float, float]], stalls: Iterable[tuple[float, float]]) -> int:
    """How many requests (wall-clock send, ms) were in flight while some stall (wall-clock start, ms)
    lasted. The stalls are one connection's commits, one after another: sorted by start, their ends
    rise too, so the one that began last before a request was answered is the one to check."""
    spans = sorted((start, start + ms / 1000) for start, ms in stalls)
    starts = [start for start, _ in spans]
    count = 0
    for sent, ms in requests:
        i = bisect.bisect_left(starts, sent + ms / 1000)  # the stalls that began before it was answered
        if i and spans[i - 1][1] > sent:
            count += 1
    return count


@contextlib.asynccontextmanager
async def probing(url: str, interval: float = INTERVAL) -> AsyncIterator[CommitProbe]:
    """Commit a one-row insert every `interval` seconds while the block runs; the result fills as it goes.
    A probe that fails says so in its result and stops; the block, the phase, goes on."""
    result = CommitProbe()
    conn = await db.connect(url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")  # left by a run that was stopped
        # A table like any other: an UNLOGGED or TEMP one writes no WAL, and its commit waits for no flush.
        await conn.execute(f"CREATE TABLE {TABLE} (at timestamptz NOT NULL DEFAULT now())")
        result.backend_pid = await conn.fetchval("SELECT pg_backend_pid()")
        task = asyncio.create_task(_probe(conn, result, interval))
        try:
            yield result
        finally:
            task.cancel()
            await asyncio.wait([task])
            with contextlib.suppress(Exception):  # a broken connection: the next run drops the table
                await conn.execute(f"DROP TABLE {TABLE}")
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def _probe(conn: asyncpg.Connection, result: CommitProbe, interval: float) -> None:
    insert = f"INSERT INTO {TABLE} DEFAULT VALUES"
    next_at = time.monotonic()
    while True:
        wall, began = time.time(), time.perf_counter()
        try:
            await conn.execute(insert)  # one statement outside a transaction block: its own commit
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc} after {len(result.commits)} commits"
            return
        result.commits.append((wall, (time.perf_counter() - began) * 1000))
        # After a stall, the next commit on time, not a burst of the ones missed.
        next_at = max(next_at + interval, time.monotonic())
        await asyncio.sleep(next_at - time.monotonic())
