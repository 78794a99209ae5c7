"""Telling every gateway process, after commit, that a customer's restriction bundle changed (Redis).

The NOTIFY sent inside the transaction (gateway.store.changes) covers a lost publish."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .rediskeys import INVALIDATE_CHANNEL

log = logging.getLogger(__name__)


async def publish(redis: aioredis.Redis | None, customer_id: int | str) -> None:
    """The fast path (after commit). Failure is tolerated: the NOTIFY and the periodic resync cover it."""
    if redis is None:
        return
    try:
        await redis.publish(INVALIDATE_CHANNEL, str(customer_id))
    except (RedisError, OSError) as exc:
        log.warning("invalidation publish failed, relying on NOTIFY: %r", exc)
