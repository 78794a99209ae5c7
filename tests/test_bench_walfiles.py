"""The bench's WAL files and checkpoints: files readied before a size's phases, each size on a fresh
checkpoint, files counted as a phase enters them (with those PostgreSQL had to make while commits
waited), and a spread checkpoint under way through the constant load."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

from bench.walfiles import Position, entered, file_name, position, ready, spreading

SWITCH = "SELECT pg_logical_emit_message(false, 'test', ''), pg_switch_wal()"


async def test_a_file_name_is_postgresql_s_own(conn):
    segment = int(await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"))
    timeline = int((await conn.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn())"))[:8], 16)
    # Inside the first 4 GB of WAL, and past it, where the name's middle part counts (not at a file's
    # first byte, where pg_walfile_name names the file before).
    for lsn in (segment * 3 + 5, 0x1_0000_0000 + segment * 2 + 1, 0x5_0000_0000 - 1):
        text = f"{lsn >> 32:X}/{lsn & 0xFFFF_FFFF:X}"
        assert file_name(timeline, lsn // segment, segment) == await conn.fetchval(
            "SELECT pg_walfile_name($1::text::pg_lsn)", text
        )


async def test_readied_files_are_entered_without_being_made(conn):
    readied = await ready(conn, 3)
    assert readied.after >= 3
    before = await position(conn)
    assert len(before.ahead) >= 3
    for _ in range(3):
        await conn.execute(SWITCH)
    wrote = entered(before, await position(conn))
    assert (wrote.files, wrote.made) == (3, 0)
    assert wrote.bytes >= 2 * before.segment  # three switches: past the rest of one file and two whole ones


async def test_ready_switches_past_as_many_files_as_wanted_then_checkpoints_to_keep_them(conn):
    # One more than are ready (PostgreSQL keeps at most what max_wal_size allows, so the test asks
    # for one more than it holds rather than for a number it may not keep).
    start = await position(conn)
    want = len(start.ahead) + 1
    readied = await ready(conn, want)
    assert readied.switched == want and f"the bench switched past {want} to ready more" in readied.describe()
    end = await position(conn)
    assert end.lsn // end.segment - start.lsn // start.segment >= want
    redo = await conn.fetchval("SELECT pg_wal_lsn_diff(redo_lsn, '0/0')::bigint FROM pg_control_checkpoint()")
    assert redo >= start.lsn + (want - 1) * start.segment  # the checkpoint came after the switches
    assert readied.after >= min(want, len(start.ahead))


async def test_ready_makes_nothing_when_enough_files_are_ready(conn):
    await ready(conn, 2)
    again = await ready(conn, 2)
    assert again.before >= 2 and again.switched == 0
    assert again.describe() == f"{again.after} WAL files ready ahead after a checkpoint ({again.before} before)"


async def test_every_size_starts_on_a_fresh_checkpoint_and_a_checkpoint_during_a_phase_is_reported(conn):
    before = await position(conn)
    await ready(conn, 1)
    after = await position(conn)
    assert after.redo > before.redo  # a checkpoint ran, whether or not files had to be readied
    assert entered(before, after).checkpoint
    for _ in range(100):  # the checkpointer back in its main loop (it may tidy up after answering)
        if not (settled := await position(conn)).checkpointing:
            break
        await asyncio.sleep(0.02)
    assert not entered(settled, await position(conn)).checkpoint


def test_a_phase_over_files_not_ready_counts_each_as_made():
    segment = 16 * 1024 * 1024
    before = Position(lsn=10 * segment + 100, segment=segment, timeline=1, ahead=frozenset({file_name(1, 11, segment)}))
    after = Position(lsn=13 * segment + 7, segment=segment, timeline=1, ahead=frozenset())
    wrote = entered(before, after)
    assert (wrote.files, wrote.made, wrote.bytes) == (3, 2, 3 * segment - 93)
    assert "3 file(s) entered, 2 not ready" in wrote.describe(1000) and "no checkpoint during it" in wrote.describe(1)


async def test_a_spread_checkpoint_runs_through_the_block_and_nothing_is_left_waiting_after_it(settings, conn):
    await conn.execute("CREATE TABLE bench_spread_test AS SELECT generate_series(1, 100000) AS x")  # pages to write
    try:
        async with spreading(settings.database_url) as seen:
            assert seen
            await asyncio.sleep(0.3)
            assert (await position(conn)).checkpointing  # spread: still writing, not done at once
            left = time.monotonic()
        assert time.monotonic() - left < 10  # the block's end does not wait minutes for the checkpoint
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_backup_start%' AND pid <> pg_backend_pid()"
        )
        for _ in range(50):  # the cancelled request's backend is gone
            if not await conn.fetchval(waiting):
                break
            await asyncio.sleep(0.02)
        assert await conn.fetchval(waiting) == 0
    finally:
        await conn.execute("DROP TABLE bench_spread_test")
        await conn.execute("CHECKPOINT")  # the spread one finished now


async def test_a_user_who_may_not_start_a_checkpoint_gets_none_and_the_phase_goes_on(settings, conn):
    role = "bench_walfiles_test_nobody"
    await conn.execute(f"DROP ROLE IF EXISTS {role}")
    await conn.execute(f"CREATE ROLE {role} LOGIN")
    parts = urlsplit(settings.database_url)
    as_role = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
    try:
        async with spreading(as_role) as seen:
            assert seen is False
    finally:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
        await conn.execute(f"DROP ROLE {role}")
