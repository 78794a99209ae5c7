"""A stop that ends: every part of the runtime is closed whatever another's close raised, and the
PostgreSQL pool does not wait without end for a connection that never comes back."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway import app as app_module
from gateway import db
from gateway.appkeys import POOL, SETTINGS
from gateway.runtime import Runtime


async def test_the_contact_log_is_closed_even_when_a_part_before_it_fails_to_close(settings, tmp_path):
    settings = replace(settings, spool_dir=str(tmp_path))
    pool = await db.create_pool(settings.database_url, min_size=0, max_size=4)
    redis = aioredis.from_url(settings.redis_url)
    runtime = await Runtime.open(settings, pool, redis)
    try:

        async def fails() -> None:
            raise RuntimeError("the outbox could not stop")

        runtime.outbox.close = fails  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="the outbox could not stop"):
            await runtime.close()
        assert runtime.contact_log._task is not None and runtime.contact_log._task.done()
        assert all(task.done() for task in runtime.keeper._tasks)
        assert pool.get_idle_size() == pool.get_size()  # the log gave back what it kept
        await asyncio.wait_for(pool.close(), 5)
    finally:
        await redis.aclose()
        pool.terminate()


async def test_the_pool_closes_within_its_bound_when_a_connection_never_comes_back(settings, monkeypatch):
    monkeypatch.setattr(app_module, "POOL_CLOSE_WITHIN", 0.3)
    app = web.Application()
    app[SETTINGS] = settings
    cleanup = app_module._postgres(app)
    await anext(cleanup)
    pool = app[POOL]
    await pool.acquire()  # taken and never given back (a part that failed to stop)
    started = asyncio.get_running_loop().time()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(cleanup), 10)  # a failure, not a hang, if the bound is gone
    assert asyncio.get_running_loop().time() - started < 3
    assert pool.is_closing() and pool.get_size() == 0  # terminated: its connections closed
