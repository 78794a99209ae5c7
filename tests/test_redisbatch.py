"""The Redis batcher: concurrent commands share pipelines, and each caller gets its own answer."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.redisbatch import RedisBatch


@pytest.fixture
async def redis(settings):
    r = aioredis.from_url(settings.redis_url)
    yield r
    await r.aclose()


async def test_concurrent_calls_each_get_their_own_result(redis):
    batch = RedisBatch(redis)
    results = await asyncio.gather(*(batch.call("incr", "gw:test:n") for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await batch.call("set", "gw:test:k", "v", nx=True) is True
    assert await batch.call("set", "gw:test:k", "w", nx=True) is None
    assert await batch.call("get", "gw:test:k") == b"v"


async def test_one_command_failing_does_not_fail_its_batch_mates(redis):
    batch = RedisBatch(redis)
    await redis.set("gw:test:text", "not a number")
    good, bad = await asyncio.gather(
        batch.call("incr", "gw:test:m"), batch.call("incr", "gw:test:text"), return_exceptions=True
    )
    assert good == 1 and isinstance(bad, ResponseError)


async def test_a_dead_server_fails_every_caller_without_hanging(settings):
    from tests.helpers import free_port

    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    batch = RedisBatch(dead)
    results = await asyncio.wait_for(
        asyncio.gather(*(batch.call("get", "x") for _ in range(5)), return_exceptions=True), 5
    )
    assert all(isinstance(r, Exception) for r in results)
    await dead.aclose()
