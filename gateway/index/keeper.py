"""Keeps the restriction index fresh: loads it at start (and retries until it can), refreshes
customers on invalidation messages (Redis pub/sub, and PostgreSQL LISTEN/NOTIFY when Redis is
down), and resyncs everything periodically and just after local midnight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date

import asyncpg
import redis.asyncio as aioredis

from ..rediskeys import INVALIDATE_CHANNEL, PG_INVALIDATE_CHANNEL
from ..store import index as store
from .lookup import RestrictionIndex

log = logging.getLogger(__name__)
DAY_CHECK_SECONDS = 30.0
LOAD_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class IndexKeeper:
    """Keeps an index fresh: listens on Redis and PostgreSQL, and resyncs everything periodically."""

    def __init__(
        self,
        index: RestrictionIndex,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        dsn: str,
        resync_seconds: int,
        today: Callable[[], date],
        on_message: Callable[[str], Awaitable[None]] | None = None,
        day_check_seconds: float = DAY_CHECK_SECONDS,
    ) -> None:
        self.index, self.pool, self.redis, self.dsn = index, pool, redis, dsn
        self.resync_seconds = resync_seconds
        self.day_check_seconds = day_check_seconds
        self.today = today  # the date in the provider's time zone
        self.on_message = on_message  # payloads that are not the index's own, such as "ruleset"
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        """Load, then listen. If the database is unreachable, start anyway (decisions are degraded
        until the index loads) and keep trying to load it in the background."""
        loops = [self._apply_loop(), self._redis_loop(), self._pg_loop(), self._resync_loop()]
        try:
            await self.load_all()
        except LOAD_ERRORS as exc:
            log.warning("restriction index not loaded (%r): answering degraded until it is", exc)
            loops.append(self._load_until_loaded())
        for coro in loops:
            self._tasks.append(asyncio.create_task(coro))

    async def _load_until_loaded(self) -> None:
        while not self.index.loaded:
            await asyncio.sleep(1.0)
            try:
                await self.load_all()
            except LOAD_ERRORS:
                continue
            self.notify("ruleset")  # the published rule set could not be read either; retried like the rest

    async def load_all(self) -> None:
        """Load every enforced restriction, the staff and the closures, then swap them in at once."""
        async with self.pool.acquire() as conn:
            loaded = await store.load(conn, self.today(), None)
            staff = await store.load_staff(conn)
            closures = await store.load_closures(conn)
        self.index.replace_all(loaded, staff, closures)

    async def refresh_customers(self, ids: Sequence[int]) -> None:
        async with self.pool.acquire() as conn:
            loaded = await store.load(conn, self.today(), ids)
        self.index.install(loaded, ids)

    async def refresh_staff(self) -> None:
        self.index.set_staff(await store.load_staff(self.pool))

    async def close(self) -> None:
        """Stop listening. Bounded: a client library that swallows cancellation cannot hang shutdown."""
        self._closing = True
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    def notify(self, payload: str) -> None:
        self._pending.add(payload)
        self._wake.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, set()
            try:
                await self._apply(batch)
            except Exception as exc:  # put the work back and try again shortly
                log.warning("index refresh failed (%r); retrying in a second", exc)
                self._pending |= batch
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _apply(self, batch: set[str]) -> None:
        customers = sorted({int(p) for p in batch if p.isdigit()})
        if "all" in batch:
            await self.load_all()
        elif customers:
            await self.refresh_customers(customers)
        if "staff" in batch:
            await self.refresh_staff()
        others = batch - {"all", "staff"} - {str(c) for c in customers}
        if "all" in batch:
            others.add("ruleset")  # a full resync brings the published rule set back too, whatever was missed
        if self.on_message is not None:
            for payload in others:
                await self.on_message(payload)

    async def _redis_loop(self) -> None:
        while not self._closing:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(INVALIDATE_CHANNEL)
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        data = message["data"]
                        self.notify(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("index: Redis subscription lost (%r); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]

    async def _pg_loop(self) -> None:
        while not self._closing:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn)
                await conn.add_listener(PG_INVALIDATE_CHANNEL, lambda *a: self.notify(str(a[3])))
                while not conn.is_closed() and not self._closing:
                    await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("index: PostgreSQL LISTEN lost (%r); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 1.0)

    async def _resync_loop(self) -> None:
        """A full resync every resync_seconds, and within half a minute of local midnight, when
        restrictions start (valid_from) and end (valid_to) without anyone changing them."""
        loop = asyncio.get_running_loop()
        while True:
            day, since = self.today(), loop.time()
            while loop.time() - since < self.resync_seconds and self.today() == day:
                await asyncio.sleep(min(self.day_check_seconds, self.resync_seconds))
            self.notify("all")
