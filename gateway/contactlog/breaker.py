"""A circuit breaker for the contact log: once PostgreSQL is known to be slow or away, contacts go
straight to the spool instead of each waiting for a commit that will not come in time.

Tripped by a commit slower than the caller's wait or by a failed batch; closed again by a probe
that finds the database answering promptly. One log line per change of state.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from ..store.health import database_answers

log = logging.getLogger(__name__)
PROBE_EVERY = 0.5
PROBE_TIMEOUT = 0.5


class Breaker:
    def __init__(self, pool: asyncpg.Pool, every: float = PROBE_EVERY, timeout: float = PROBE_TIMEOUT) -> None:
        self.pool, self.every, self.timeout = pool, every, timeout
        self.open = False
        self.opened_at = 0.0
        self._probe: asyncio.Task[None] | None = None

    def trip(self, why: str) -> None:
        if self.open:
            return
        self.open, self.opened_at = True, time.monotonic()
        log.warning("contact log: database slow or away (%s); spooling contacts until it answers", why)
        self._probe = asyncio.create_task(self._probe_until_answered(), name="contact-log-breaker")

    async def _probe_until_answered(self) -> None:
        while self.open:
            await asyncio.sleep(self.every)
            try:
                async with asyncio.timeout(self.timeout):
                    await database_answers(self.pool)
            except Exception:  # still away: any failure keeps the breaker open
                continue
            self.open = False
            log.info("contact log: database answering again after %.1f s; committing contacts", self.elapsed())

    def elapsed(self) -> float:
        return time.monotonic() - self.opened_at

    async def close(self) -> None:
        self.open = False
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
