"""Counting contacts for `contact_limit` and manager rules: Redis counters, or the log when Redis is down.

The rules name the counters they need (gateway.rules.counters); this module increments them for
the contact being decided and returns each count, this contact included.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from redis.exceptions import RedisError

from ..redisbatch import RedisBatch
from ..rediskeys import COUNTER
from ..rules.compiled import CompiledRuleSet
from ..rules.context import Match
from ..rules.counters import CounterSpec, contact_limit_key, counters_needed, customer_count_key
from ..rules.kinds.contact_limit import ContactLimit
from ..store.contacts import decided_since
from .detached import detached, on_connection
from .redishealth import RedisHealth


class Counting:
    def __init__(self, batch: RedisBatch, health: RedisHealth, pool: asyncpg.Pool, tz: ZoneInfo) -> None:
        self.batch, self.health, self.pool, self.tz = batch, health, pool, tz

    def needed(self, compiled: CompiledRuleSet, match: Match, channel: str, now: datetime) -> list[CounterSpec]:
        """The counters the rules need for this contact (none for most: no Redis call then)."""
        if not match.bundles:
            return []
        return counters_needed(compiled, match.bundles, now, self.tz, channel)

    async def count(
        self, compiled: CompiledRuleSet, match: Match, specs: list[CounterSpec], now: datetime, until: float | None
    ) -> dict[str, int]:
        """This contact counted in each of `specs` (from `needed`); `until`: the caller's deadline
        (the event loop's time), past which a count from the log waits for no pool connection."""
        if not specs:
            return {}
        if self.health.usable():
            try:
                return await self._in_redis(specs)
            except (RedisError, OSError, TimeoutError) as exc:
                self.health.failed(exc)
        return await self._from_log(specs, compiled, match, now, until)

    async def _in_redis(self, specs: list[CounterSpec]) -> dict[str, int]:
        async with asyncio.timeout(self.health.budget):
            results = await asyncio.gather(
                *(
                    self.batch.call(cmd, COUNTER + s.key, *extra)
                    for s in specs
                    for cmd, extra in (("incr", ()), ("expire", (s.ttl_seconds,)))
                )
            )
        return {s.key: int(results[2 * i]) for i, s in enumerate(specs)}

    async def _from_log(
        self, specs: list[CounterSpec], compiled: CompiledRuleSet, match: Match, now: datetime, until: float | None
    ) -> dict[str, int]:
        owners = counter_owners(compiled, match, now, self.tz)
        counts = {}
        for s in specs:
            customer_id, period = owners[s.key]
            since = period_start(period, now, self.tz)
            counts[s.key] = 1 + await detached(on_connection(self.pool, until, decided_since, customer_id, since))
        return counts


def counter_owners(compiled: CompiledRuleSet, match: Match, now: datetime, tz: ZoneInfo) -> dict[str, tuple[int, str]]:
    """counter key → (customer id, period), to count the log instead when Redis is down."""
    owners: dict[str, tuple[int, str]] = {}
    for b in match.bundles:
        for r in b.restrictions:
            if isinstance(r.params, ContactLimit):
                owners[contact_limit_key(r, now, tz)] = (b.customer.id, r.params.period)
        for period in compiled.periods:
            owners[customer_count_key(b.customer.id, period, now, tz)] = (b.customer.id, period)
    return owners


def period_start(period: str, now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=local.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.replace(tzinfo=None).replace(tzinfo=tz)
