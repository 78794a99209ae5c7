"""Periodic work, idempotent and safe from any process, done by one process at a time: restrictions
past their valid_to lapse, the contact log's monthly partitions are created ahead of time, old
provider ids are forgotten, every customer is re-proved to have a way in, and once a day the
retention settings are enforced."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from . import retention
from .appkeys import POOL, REDIS, SETTINGS
from .invalidation import publish
from .reviews import local_today, utc_now
from .settings import Settings
from .store.contacts import forget_provider_ids, make_partitions
from .store.customers import audit_ways_in
from .store.retention import runs
from .store.transitions import lapse_expired

log = logging.getLogger(__name__)
LAPSE_INTERVAL_SECONDS = 300.0


async def lapse_once(pool: asyncpg.Pool, redis: aioredis.Redis | None, tz: ZoneInfo) -> list[int]:
    """Lapse what has expired by the provider's local date; safe to run from several processes."""
    async with pool.acquire() as conn:
        lapsed = await lapse_expired(conn, local_today(utc_now(), tz))
    for customer_id in sorted({c for _, c in lapsed}):
        await publish(redis, customer_id)
    if lapsed:
        log.info("lapsed %d restriction(s): %s", len(lapsed), [r for r, _ in lapsed])
    return [r for r, _ in lapsed]


PARTITION_MONTHS_AHEAD = 3


async def ensure_partitions(pool: asyncpg.Pool) -> int:
    """This month's and the next few months' contact-log partitions; returns how many were made."""
    made = await make_partitions(pool, PARTITION_MONTHS_AHEAD + 1)
    if made:
        log.info("created %d contact-log partition(s) ahead", made)
    return made


PROVIDER_ID_RETENTION_DAYS = 30


async def forget_old_provider_ids(pool: asyncpg.Pool, days: int = PROVIDER_ID_RETENTION_DAYS) -> int:
    """Retries come within minutes; after a month a provider id no longer needs remembering (the
    contact rows themselves stay)."""
    return await forget_provider_ids(pool, days)


async def audit_once(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    """Report every customer left with no way in (their restrictions are flagged for urgent review)."""
    failing = await audit_ways_in(pool)
    for customer_id, why in failing:
        log.warning("customer %d has no way in: %s", customer_id, why)
    return failing


# The advisory lock a process holds while it does a round of the periodic work ('gate' in ASCII).
PERIODIC_LOCK = 0x67617465


@contextlib.asynccontextmanager
async def one_process_at_a_time(pool: asyncpg.Pool) -> AsyncIterator[bool]:
    """Whether this process does this round: the round is the same work in every process, so while
    one does it the others skip theirs (every worker starts together and would otherwise do it twice,
    at start-up, when the decide path is busiest warming up). The pool does not reset connections,
    so one whose unlock is not confirmed (the lock may be held: even the try may have been granted
    before a time-out or a cancellation) is terminated, never handed back still holding it."""
    async with pool.acquire() as conn:
        held = True  # until known otherwise
        try:
            mine = held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", PERIODIC_LOCK))
            yield mine
        finally:
            if held:
                try:
                    await conn.execute("SELECT pg_advisory_unlock($1)", PERIODIC_LOCK)
                    held = False
                finally:
                    if held:  # its backend ends, and the lock with it (asyncpg may have closed it already)
                        with contextlib.suppress(asyncpg.InterfaceError):
                            conn.terminate()


async def periodic_round(pool: asyncpg.Pool, redis: aioredis.Redis | None, tz: ZoneInfo) -> bool:
    """One round of the periodic work, unless another process is doing it; whether this one did."""
    async with one_process_at_a_time(pool) as mine:
        if mine:
            await ensure_partitions(pool)
            await forget_old_provider_ids(pool)
            await lapse_once(pool, redis, tz)
            await audit_once(pool)
        return mine


async def _loop(app: web.Application, interval: float) -> None:
    tz = ZoneInfo(app[SETTINGS].tz)
    while True:
        try:
            await periodic_round(app[POOL], app[REDIS], tz)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("periodic round failed, will retry: %r", exc)
        except Exception:  # never let the periodic work stop for good: said loudly, tried again
            log.exception("periodic round failed unexpectedly, will retry")
        await asyncio.sleep(interval)


RETENTION_EVERY = timedelta(days=1)
# Start-up is left alone: the first check comes a few minutes after a process starts.
RETENTION_FIRST_CHECK_SECONDS = 600.0


async def enforce_retention(pool: asyncpg.Pool, settings: Settings) -> dict[str, object] | None:
    """Run retention if no run (from any process) started in the last day; what it removed, or None."""
    now = utc_now()
    latest = await runs(pool, 1)
    last = datetime.fromisoformat(latest[0]["started_at"]) if latest else None
    if not retention.is_due(last, now, RETENTION_EVERY):
        return None
    today = local_today(now, ZoneInfo(settings.tz))
    return await retention.run(pool, retention.Limits.of(settings), now, today, actor="periodic")


async def _retention_loop(app: web.Application) -> None:
    await asyncio.sleep(RETENTION_FIRST_CHECK_SECONDS)
    while True:
        try:
            await enforce_retention(app[POOL], app[SETTINGS])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("retention run failed, will retry: %r", exc)
        except Exception:  # never let retention stop for good: said loudly, tried again
            log.exception("retention run failed unexpectedly, will retry")
        await asyncio.sleep(LAPSE_INTERVAL_SECONDS)


async def periodic_tasks(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context running the periodic work above for as long as the app runs."""
    tasks = [
        asyncio.create_task(_loop(app, LAPSE_INTERVAL_SECONDS), name="periodic-tasks"),
        asyncio.create_task(_retention_loop(app), name="retention"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
