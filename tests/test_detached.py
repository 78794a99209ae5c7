"""A database call on the decide path that its caller stopped waiting for (the deadline answered the
caller) still ends by itself at that deadline: it does not wait on for a connection."""

from __future__ import annotations

import asyncio

import pytest

from gateway import db
from gateway.decide.detached import detached
from gateway.store.contacts import earlier_decision


async def test_a_call_left_waiting_for_a_connection_ends_at_the_callers_deadline(settings):
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire():  # the pool's only connection is busy: the call waits for it
            loop = asyncio.get_running_loop()
            before = asyncio.all_tasks()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05) as budget:  # the caller's own deadline, as decide has
                    until = budget.when()
                    assert until is not None
                    await detached(earlier_decision(pool, "phone", "CA-waiting"), until + 0.15)
            left = [t for t in asyncio.all_tasks() - before if not t.done()]
            assert left  # the caller was answered; the call goes on without it, still waiting
            await asyncio.wait(left, timeout=1.0)
            assert all(t.done() for t in left)  # given up at its deadline, not left waiting for ever
            assert loop.time() < until + 0.5
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
        assert await detached(earlier_decision(pool, "phone", "CA-answered"), until) == {"action": "route"}
    finally:
        await pool.close()
