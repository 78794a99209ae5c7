"""The contact log's kept connections on a real PostgreSQL: kept between commits, given back to the
pool when a commit fails, when the connection is closed, idle too long or used too often; and a
contact log whose kept backend was terminated still commits the next contacts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from gateway import db
from gateway.contactlog import ContactLog, ContactRecord
from gateway.contactlog.connections import KeptConnections


async def _backend(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def _used_once(kept: KeptConnections) -> int:
    async with kept.connection(2.0) as conn:
        return await _backend(conn)


@pytest.fixture
async def pool(settings):
    pool = await db.create_pool(settings.database_url, min_size=0, max_size=4)
    yield pool
    pool.terminate()  # a failed test may leave a connection out: close() would wait for it


async def test_one_backend_serves_commits_one_after_another(pool):
    kept = KeptConnections(pool)
    first = await _used_once(kept)
    assert [await _used_once(kept) for _ in range(5)] == [first] * 5
    assert kept.kept == 1
    await kept.close()
    assert kept.kept == 0
    assert pool.get_idle_size() == 1  # handed back to the pool, not closed


async def test_commits_at_once_each_get_a_connection_and_both_are_kept(pool):
    kept = KeptConnections(pool)
    inside = asyncio.Event()
    backends: list[int] = []

    async def commit() -> None:
        async with kept.connection(2.0) as conn:
            backends.append(await _backend(conn))
            if len(backends) == 2:
                inside.set()
            await inside.wait()

    await asyncio.gather(commit(), commit())
    assert len(set(backends)) == 2
    assert kept.kept == 2
    assert {await _used_once(kept), await _used_once(kept)} <= set(backends)
    await kept.close()


async def test_a_failed_commit_gives_its_connection_back(pool):
    kept = KeptConnections(pool)
    first = await _used_once(kept)
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with kept.connection(2.0) as conn:
            await conn.fetchval("SELECT 1 / 0")
    assert kept.kept == 0
    assert pool.get_idle_size() == 1
    assert await _used_once(kept) == first  # the pool hands the same, healthy connection out again
    await kept.close()


async def test_a_closed_connection_is_not_used_again(pool, conn):
    kept = KeptConnections(pool)
    first = await _used_once(kept)
    await conn.execute("SELECT pg_terminate_backend($1)", first)
    await asyncio.sleep(0.3)  # the client sees the connection closed once it reads the server's goodbye
    assert await _used_once(kept) != first
    await kept.close()


async def _handed_out(kept: KeptConnections) -> asyncpg.Connection:
    async with kept.connection(2.0) as conn:
        return conn


async def test_an_idle_connection_goes_back_to_the_pool_and_the_pool_hands_one_out(pool):
    kept = KeptConnections(pool)
    first = await _handed_out(kept)
    assert await _handed_out(kept) is first  # kept: the same handle, not acquired again
    idle = KeptConnections(pool, idle_seconds=0.0)
    first = await _handed_out(idle)
    second = await _handed_out(idle)
    assert second is not first  # the pool's handle: the idle one went back (asyncpg detaches it)
    with pytest.raises(asyncpg.InterfaceError, match="released back to the pool"):
        first.is_closed()
    assert idle.kept == 1
    await kept.close()
    await idle.close()


async def test_a_connection_is_given_back_after_its_uses(pool):
    kept = KeptConnections(pool, max_uses=3)
    for _ in range(2):
        await _used_once(kept)
    assert kept.kept == 1
    await _used_once(kept)
    assert kept.kept == 0
    await kept.close()


async def test_the_log_commits_on_after_its_kept_backend_is_terminated(settings, conn, tmp_path):
    pool = await db.create_pool(settings.database_url, min_size=0, max_size=4)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()

    def record(n: int) -> ContactRecord:
        return ContactRecord(
            id=uuid.uuid4(), received_at=datetime.now(UTC), channel="phone", action="route", provider_id=f"kept-{n}"
        )

    try:
        first = record(0)
        assert not (await log.append(first, wait=5)).spooled
        backends = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for row in backends:
            await conn.execute("SELECT pg_terminate_backend($1)", row["pid"])
        await asyncio.sleep(0.2)
        later = [record(n) for n in range(1, 4)]
        results = [await log.append(r, wait=5) for r in later]
    finally:
        await log.close()
        await pool.close()
    assert not any(r.spooled for r in results)
    assert not log.breaker.open
    logged = await conn.fetchval(
        "SELECT count(*) FROM contacts WHERE id = ANY($1::uuid[])", [r.id for r in [first, *later]]
    )
    assert logged == 4
    assert not list(tmp_path.iterdir())
