"""A stopped app leaves no connection of its own open: a worker stopped for a restart, or an app
stopped and started again in one process, gives its Redis connections back to the server."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.appkeys import REDIS


async def test_a_stopped_app_has_closed_its_redis_connections(settings):
    app = create_app(settings)
    async with TestClient(TestServer(app)):
        client = app[REDIS]
        await asyncio.gather(*(client.ping() for _ in range(8)))  # several connections at once
        pool = client.connection_pool
        made = [*pool._available_connections, *pool._in_use_connections]
        assert any(c.is_connected for c in made)
    assert made and not any(c.is_connected for c in made)
