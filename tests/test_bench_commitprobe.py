"""The benchmark's commit probe (`bench/commitprobe.py`): it times real commits, so a stall in the
database shows in its figures, and it says which of the load's late requests waited with one."""

from __future__ import annotations

import asyncio
import time

from bench.commitprobe import TABLE, CommitProbe, overlapping, probing


async def test_a_commit_the_database_holds_up_is_timed_as_late_and_the_probe_leaves_nothing(settings, conn):
    url = settings.database_url
    async with probing(url, interval=0.01) as probe:
        await asyncio.sleep(0.1)
        # Its backend is known, so that the bench leaves it out of PostgreSQL's CPU per contact.
        probing_backend = "SELECT query FROM pg_stat_activity WHERE pid = $1"
        assert TABLE in await conn.fetchval(probing_backend, probe.backend_pid)
        # Hold the probe's table for 150 ms: its next insert, and so its commit, waits for us.
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
            held_from = time.time()
            await asyncio.sleep(0.15)
        await asyncio.sleep(0.1)
    assert len(probe.durations_ms) >= 10  # ~35 commits at 10 ms; the held one counts once
    assert all(ms > 0 for ms in probe.durations_ms)
    assert [ms for ms in probe.durations_ms if ms >= 100] != []
    (start, ms), *_ = [late for late in probe.late if late[1] >= 100]
    assert held_from - 0.05 < start < held_from + 0.05 and ms < 250
    assert await conn.fetchval("SELECT to_regclass($1)", TABLE) is None


def test_the_load_s_late_requests_are_matched_to_the_late_commits_they_were_in_flight_with():
    stalls = [(100.0, 50.0), (105.0, 8.0)]  # (wall-clock start, ms)
    requests = [
        (99.99, 70.0),  # sent before the stall began, answered after it ended
        (100.02, 40.0),  # sent during it
        (100.2, 9.0),  # long after
        (104.997, 6.0),  # answered 3 ms into the second: in flight with it
        (104.993, 6.0),  # answered 1 ms before it began
    ]
    assert overlapping(requests, stalls) == 3
    assert overlapping(requests, []) == 0
    probe = CommitProbe(durations_ms=[0.5] * 198 + [50.0, 8.0], late=stalls)
    described = probe.describe(requests)
    assert described.startswith("0.50 / 8.00 / 50.0 (n=200; 2 over 5 ms)")
    assert described.endswith("the load's requests over 5 ms: 5, 3 of them in flight during one of those commits")
    assert CommitProbe().describe() == "no commit was timed"
