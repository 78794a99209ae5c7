"""Whether the decide path should ask Redis right now, judged by Redis itself.

A refused or broken connection puts Redis at rest for a few seconds (callers use the database
meanwhile), so a dead Redis cannot eat every contact's deadline. A call that merely ran out of
its budget proves little — under saturation the event loop itself is late — so it starts a probe
instead: Redis is put at rest only if a PING with a generous time-out fails too. One log line per
change of state, not one per contact.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

log = logging.getLogger(__name__)
BUDGET_SECONDS = 0.1  # a healthy Redis answers in well under a millisecond
REST_SECONDS = 5.0
PROBE_SECONDS = 1.0


class RedisHealth:
    def __init__(
        self,
        redis: aioredis.Redis,
        budget: float = BUDGET_SECONDS,
        rest: float = REST_SECONDS,
        probe: float = PROBE_SECONDS,
    ) -> None:
        self.redis, self.budget, self.rest, self.probe_seconds = redis, budget, rest, probe
        self._resting_until = 0.0
        self._down = False
        self._probe: asyncio.Task[None] | None = None

    def usable(self) -> bool:
        if time.monotonic() < self._resting_until:
            return False
        if self._down:
            self._down = False
            log.info("Redis: trying it again after %g s at rest", self.rest)
        return True

    def failed(self, exc: BaseException) -> None:
        """A call failed. Errors rest Redis at once; a time-out asks Redis whether it is really slow."""
        if not isinstance(exc, TimeoutError):
            self._put_at_rest(exc)
        elif self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        try:
            async with asyncio.timeout(self.probe_seconds):
                await self.redis.ping()
        except Exception as exc:  # any failure of the probe is Redis's failure
            self._put_at_rest(exc)

    def _put_at_rest(self, exc: BaseException) -> None:
        self._resting_until = time.monotonic() + self.rest
        if not self._down:
            self._down = True
            log.warning("Redis unavailable (%r): using the database for %g s", exc, self.rest)
