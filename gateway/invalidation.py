"""Telling every gateway process that a customer's restriction bundle changed."""

from __future__ import annotations

import logging

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .rediskeys import INVALIDATE_CHANNEL, PG_INVALIDATE_CHANNEL

log = logging.getLogger(__name__)


async def notify_in_transaction(conn: asyncpg.Connection, customer_id: int | str) -> None:
    """NOTIFY is delivered at commit, so listeners never see an uncommitted change."""
    await conn.execute("SELECT pg_notify($1, $2)", PG_INVALIDATE_CHANNEL, str(customer_id))


async def publish(redis: aioredis.Redis | None, customer_id: int | str) -> None:
    """The fast path (after commit). Failure is tolerated: the NOTIFY and the periodic resync cover it."""
    if redis is None:
        return
    try:
        await redis.publish(INVALIDATE_CHANNEL, str(customer_id))
    except (RedisError, OSError) as exc:
        log.warning("invalidation publish failed, relying on NOTIFY: %r", exc)
