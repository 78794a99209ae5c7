"""Redis is judged by Redis: a slow call (a late event loop) does not send the decide path to the database."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.decide.redishealth import RedisHealth
from tests.helpers import free_port


async def test_a_time_out_with_redis_answering_pings_keeps_redis_in_use(settings):
    client = aioredis.from_url(settings.redis_url)
    try:
        health = RedisHealth(client, rest=5.0)
        health.failed(TimeoutError())
        await asyncio.sleep(0.1)  # the probe's PING answers
        assert health.usable()
    finally:
        await client.aclose()


async def test_a_time_out_with_redis_not_answering_rests_it():
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    try:
        health = RedisHealth(client, rest=5.0, probe=0.5)
        health.failed(TimeoutError())
        assert health.usable()  # only suspected until the probe has spoken
        await asyncio.sleep(0.8)
        assert not health.usable()
    finally:
        await client.aclose()


async def test_a_refused_connection_rests_redis_at_once_and_logs_once(caplog):
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        health = RedisHealth(client, rest=5.0)
        for _ in range(50):
            health.failed(RedisConnectionError("refused"))
        assert not health.usable()
        assert sum("Redis unavailable" in r.message for r in caplog.records) == 1
    finally:
        await client.aclose()
