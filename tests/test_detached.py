"""A database call on the decide path that its caller stopped waiting for (the deadline answered the
caller) waits for a pool connection no later than that deadline: it does not wait on for ever."""

from __future__ import annotations

import asyncio

import pytest

from gateway import db
from gateway.decide.detached import detached, on_connection
from gateway.store.contacts import earlier_decision


async def test_a_call_left_waiting_for_a_connection_ends_at_the_callers_deadline(settings):
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire():  # the pool's only connection is busy: the call waits for it
            before = asyncio.all_tasks()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1) as budget:  # the caller's deadline, as decide has
                    await detached(on_connection(pool, budget.when(), earlier_decision, "phone", "CA-waiting"))
            await asyncio.sleep(0.2)
            waiting = asyncio.all_tasks() - before  # the call, if it still waited for a connection
            assert not waiting  # given up with its caller, not left waiting for ever
    finally:
        await pool.close()


async def test_a_call_that_answers_in_time_gives_its_answer(settings, conn):
    await conn.execute(
        "INSERT INTO contact_provider_ids (channel, provider_id, contact_id, decision)"
        " VALUES ('phone', 'CA-answered', gen_random_uuid(), '{\"action\": \"route\"}')"
    )
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        until = asyncio.get_running_loop().time() + 5
        found = await detached(on_connection(pool, until, earlier_decision, "phone", "CA-answered"))
        assert found == {"action": "route"}
    finally:
        await pool.close()
