"""PostgreSQL's own commit time beside a load phase: the part of a reply's latency no gateway code can cut.

Every reply of the decide path waits for its contact's commit, and every commit waits for
PostgreSQL's WAL flush (an fdatasync). When the storage stalls a flush, every contact of every
worker waits with it: on the bench's 2-core VMs an fdatasync on an idle disk took 0.1–0.4 ms
mostly and 50–240 ms now and then (bench/RESULTS.md, 2026-11-27 14:30–15:00), and at 1,000
contacts/s one 50 ms stall alone makes half of the requests a p99 over 10 s may have.

So while the constant load runs, a connection of its own commits a one-row insert every INTERVAL
into a table of its own (`bench_commit_probe` in the bench's database, dropped after), and times each from send
to answer. The report prints its spread beside the gateway's, and how many of the load's late
requests (over LATE_MS) were in flight while a probe commit was as late: those waited for the
storage. Its own backend is left out of the phase's PostgreSQL CPU per contact; its 50 small
commits a second still share the machine and the WAL flushes with the gateway's.
"""

from __future__ import annotations

import asyncio
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
    """Each probe commit's duration (ms), and the late ones as (wall-clock start, ms)."""

    durations_ms: list[float] = field(default_factory=list)
    late: list[tuple[float, float]] = field(default_factory=list)
    backend_pid: int | None = None  # its PostgreSQL backend, left out of the phase's PostgreSQL CPU

    def describe(self, load_late: Iterable[tuple[float, float]] = ()) -> str:
        """ "p50 / p99 / max ms (n, late commits); the load's late requests and how many waited for one"."""
        if not self.durations_ms:
            return "no commit was timed"
        d = self.durations_ms
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
        return text


def overlapping(requests: Iterable[tuple[float, float]], stalls: Iterable[tuple[float, float]]) -> int:
    """How many requests (wall-clock send, ms) were in flight while some stall (wall-clock start, ms) lasted."""
    spans = sorted((start, start + ms / 1000) for start, ms in stalls)
    count = 0
    for sent, ms in requests:
        answered = sent + ms / 1000
        if any(start < answered and sent < end for start, end in spans):
            count += 1
    return count


@contextlib.asynccontextmanager
async def probing(url: str, interval: float = INTERVAL) -> AsyncIterator[CommitProbe]:
    """Commit a one-row insert every `interval` seconds while the block runs; the result fills as it goes."""
    result = CommitProbe()
    conn = await db.connect(url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")  # left by a run that was stopped
        await conn.execute(f"CREATE TABLE {TABLE} (at timestamptz NOT NULL DEFAULT now())")
        result.backend_pid = await conn.fetchval("SELECT pg_backend_pid()")
        task = asyncio.create_task(_probe(conn, result, interval))
        try:
            yield result
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await conn.execute(f"DROP TABLE {TABLE}")
    finally:
        await conn.close()


async def _probe(conn: asyncpg.Connection, result: CommitProbe, interval: float) -> None:
    insert = f"INSERT INTO {TABLE} DEFAULT VALUES"
    next_at = time.monotonic()
    while True:
        wall, began = time.time(), time.perf_counter()
        await conn.execute(insert)  # one statement outside a transaction block: its own commit
        ms = (time.perf_counter() - began) * 1000
        result.durations_ms.append(ms)
        if ms > LATE_MS:
            result.late.append((wall, ms))
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
