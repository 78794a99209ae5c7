"""The index keeper hands payloads that are not the index's own (a rule set change) to its owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest
import redis.asyncio as aioredis

from gateway import db
from gateway.index import IndexKeeper, RestrictionIndex
from gateway.invalidation import publish
from gateway.settings import Settings
from gateway.store.changes import notify_in_transaction
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[tuple[IndexKeeper, list[str], aioredis.Redis]]:
    received: list[str] = []

    async def on_message(payload: str) -> None:
        received.append(payload)

    pool = await db.create_pool(settings.database_url or "", min_size=1, max_size=2)
    redis = aioredis.from_url(settings.redis_url or "")
    keeper = IndexKeeper(
        RestrictionIndex(), pool, redis, settings.database_url or "", 3600, lambda: date(2026, 1, 5), on_message
    )
    await keeper.start()
    try:
        yield keeper, received, redis
    finally:
        await keeper.close()
        await pool.close()
        await redis.aclose()


async def test_a_ruleset_message_over_redis_reaches_on_message_and_index_payloads_do_not(running):
    keeper, received, redis = running
    assert keeper.index.loaded

    async def arrived() -> bool:
        # Published until seen: the subscription is made in the background after start().
        for payload in ("staff", "all", "42", "ruleset"):
            await publish(redis, payload)
        return "ruleset" in received

    await eventually(arrived, timeout=5)
    assert set(received) == {"ruleset"}


async def test_a_ruleset_notify_from_postgresql_reaches_on_message(running, conn: asyncpg.Connection):
    _, received, _ = running

    async def arrived() -> bool:
        async with conn.transaction():
            await notify_in_transaction(conn, "ruleset")
        return "ruleset" in received

    await eventually(arrived, timeout=5)
    assert set(received) == {"ruleset"}
