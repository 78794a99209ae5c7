"""RFC 3834's rate limits on automatic replies: at most one per sender per case in N days, and a
daily cap per sender. Shared through Redis across processes; read from the outbox when Redis is away."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..rediskeys import ACK_LIMIT
from ..settings import Settings
from ..store import outbox as store

log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AckLimits:
    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings) -> None:
        self.redis, self.pool = redis, pool
        self.days, self.cap = settings.ack_case_days, settings.ack_daily_cap

    async def why_not(self, outbox_id: int, to: str, case_id: int | None) -> str | None:
        """Why this automatic reply must not be sent now, or None. A retry of the same message is
        not counted twice: the per-case key holds the id of the message that took it."""
        to = to.lower()
        try:
            return await self._redis(str(outbox_id), to, case_id)
        except (RedisError, OSError) as exc:
            log.info("acknowledgement limits read from the outbox (Redis: %r)", exc)
            return await self._database(to, case_id)

    def _case_rule(self) -> str:
        return f"already acknowledged about this case within {self.days} days"

    async def _redis(self, mine: str, to: str, case_id: int | None) -> str | None:
        case_key = f"{ACK_LIMIT}{to}:{case_id or 'none'}"
        held = await self.redis.get(case_key)
        if held is not None:
            return None if _text(held) == mine else self._case_rule()
        day_key = f"{ACK_LIMIT}day:{datetime.now(UTC).date().isoformat()}:{to}"
        count = await self.redis.incr(day_key)
        await self.redis.expire(day_key, 2 * 86_400)
        if count > self.cap:
            await self.redis.decr(day_key)
            return f"daily cap of {self.cap} acknowledgements to this sender reached"
        if not await self.redis.set(case_key, mine, nx=True, ex=self.days * 86_400):
            await self.redis.decr(day_key)
            return self._case_rule()
        return None

    async def _database(self, to: str, case_id: int | None) -> str | None:
        now = datetime.now(UTC)
        if await store.sent_since(self.pool, to, now - timedelta(days=self.days), case_id=case_id, per_case=True):
            return self._case_rule()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if await store.sent_since(self.pool, to, today, case_id=None, per_case=False) >= self.cap:
            return f"daily cap of {self.cap} acknowledgements to this sender reached"
        return None

    async def release(self, outbox_id: int, to: str, case_id: int | None) -> None:
        """A message that will never be sent gives its place back."""
        case_key = f"{ACK_LIMIT}{to.lower()}:{case_id or 'none'}"
        try:
            held = await self.redis.get(case_key)
            if held is not None and _text(held) == str(outbox_id):
                await self.redis.delete(case_key)
                await self.redis.decr(f"{ACK_LIMIT}day:{datetime.now(UTC).date().isoformat()}:{to.lower()}")
        except (RedisError, OSError):
            pass
