"""The benchmark's commit probe (`bench/commitprobe.py`): it times real, durable commits, so a stall in
the database shows in its figures; a probe that breaks stops without stopping the phase; and the
load's late requests are matched, on one clock, to the late commits they were in flight with."""

from __future__ import annotations

import asyncio
import gc
import time

from bench import steady
from bench.commitprobe import TABLE, CommitProbe, overlapping, probing


async def test_a_commit_the_database_holds_up_is_timed_as_late_and_the_probe_leaves_nothing(settings, conn):
    async with probing(settings.database_url, interval=0.01) as probe:
        await asyncio.sleep(0.1)
        # A table whose commits wait for the WAL flush (an UNLOGGED or TEMP one would not).
        assert await conn.fetchval("SELECT relpersistence::text FROM pg_class WHERE relname = $1", TABLE) == "p"
        # Each commit timed is a row committed (one more may be committed and not timed yet; the
        # probe goes on while the count is read).
        timed_before = len(probe.commits)
        rows = await conn.fetchval(f"SELECT count(*) FROM {TABLE}")
        assert timed_before <= rows <= len(probe.commits) + 1
        # Its backend is known, so that the bench leaves it out of PostgreSQL's CPU per contact.
        probing_backend = "SELECT query FROM pg_stat_activity WHERE pid = $1"
        assert TABLE in await conn.fetchval(probing_backend, probe.backend_pid)
        # Hold the probe's table for 150 ms: its next insert, and so its commit, waits for us.
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
            held_from = time.time()
            await asyncio.sleep(0.15)
        await asyncio.sleep(0.1)
    assert len(probe.commits) >= 10  # ~35 at 10 ms; the held one counts once
    sent, ms = min(probe.late, key=lambda late: abs(late[0] - held_from))
    assert abs(sent - held_from) < 0.05 and 100 <= ms < 2000
    assert probe.error is None
    assert await conn.fetchval("SELECT to_regclass($1)", TABLE) is None


async def test_a_probe_whose_connection_breaks_says_so_and_the_phase_goes_on(settings, conn):
    async with probing(settings.database_url, interval=0.01) as probe:
        await asyncio.sleep(0.05)
        await conn.execute("SELECT pg_terminate_backend($1)", probe.backend_pid)
        await asyncio.sleep(0.1)
        assert probe.error is not None and f"after {len(probe.commits)} commits" in probe.error
    assert probe.describe().endswith(f"; the probe stopped: {probe.error}")
    # Its table could not be dropped on a broken connection: the next probe starts afresh.
    assert await conn.fetchval("SELECT to_regclass($1)", TABLE) is not None
    async with probing(settings.database_url, interval=0.01) as again:
        await asyncio.sleep(0.05)
    assert again.commits and again.error is None
    assert await conn.fetchval("SELECT to_regclass($1)", TABLE) is None


def test_the_load_s_late_requests_are_matched_to_the_late_commits_they_were_in_flight_with():
    stalls = [(100.0, 50.0), (105.0, 8.0)]  # (wall-clock start, ms)
    requests = [
        (99.99, 70.0),  # sent before the first began, answered after it ended
        (100.02, 40.0),  # sent during it
        (100.2, 9.0),  # long after
        (104.997, 6.0),  # answered 3 ms into the second
        (104.993, 6.0),  # answered 1 ms before the second began
        (104.99, 10.0),  # answered just as the second began: not in flight with it
        (99.9, 5200.0),  # in flight through both: counted once
    ]
    assert overlapping(requests, stalls) == 4
    assert overlapping(requests, []) == 0
    probe = CommitProbe(commits=[(90.0 + i * 0.02, 0.5) for i in range(198)] + stalls)
    described = probe.describe(requests)
    assert described.startswith("0.50 / 8.00 / 50.0 (n=200; 2 over 5 ms)")
    assert described.endswith("the load's requests over 5 ms: 7, 4 of them in flight during one of those commits")
    assert CommitProbe().describe() == "no commit was timed"
    # Only the commits sent and answered within the load's window count.
    window = probe.within(90.0, 100.04)
    assert [ms for _, ms in window.commits] == [0.5] * 198
    assert probe.within(100.0, 100.05).commits == [(100.0, 50.0)]


async def test_the_load_keeps_its_late_requests_on_the_wall_clock():
    """bench.steady's late requests carry their wall-clock due time, the probe's clock: a request
    answered 30 ms late is kept with the time it was due."""

    async def answer_late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(0.03)
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer_late, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    began = time.time()
    try:
        result = await steady.run(f"http://127.0.0.1:{port}/v1/contacts", "k", ['{"x": "'], "p-", rate=20, seconds=1)
    finally:
        gc.unfreeze()  # steady.run freezes what the process holds and pauses the collector, for the
        gc.enable()  # generator's own sake: not for the rest of the suite
        server.close()
        await server.wait_closed()
    assert result.offered == 20 and len(result.created) == 20 and len(result.late) == 20
    assert began < result.started_at < began + 0.2
    for i, (due, ms) in enumerate(sorted(result.late)):
        assert abs(due - (result.started_at + i / 20)) < 0.002
        assert 30 <= ms < 1000


def test_the_propagation_load_reports_the_database_s_own_commits_beside_it():
    from bench.report import Propagation

    load = {
        "latencies_ms": [1.0] * 98 + [700.0, 650.0],
        "offered": 100,
        "seconds": 1.0,
        "late": [(100.0, 700.0), (100.05, 650.0)],
    }
    probe = CommitProbe(commits=[(99.9, 1.0), (100.1, 620.0)])
    text = Propagation([0.01, 0.02], load, probe).describe()
    assert "PostgreSQL's own one-row commit meanwhile" in text
    assert (
        "(n=2; 1 over 5 ms); the load's requests over 5 ms: 2, 2 of them in flight during one of those commits" in text
    )
    assert "PostgreSQL's own" not in Propagation([0.01], load).describe()
