"""Whether the decide path should ask Redis right now, judged by Redis and not by one slow call.

A failed or slow call puts Redis at rest for a few seconds (callers fall back to the database),
so a hung Redis cannot eat every contact's deadline. One log line per change of state, not one
per contact.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)
BUDGET_SECONDS = 0.1  # a healthy Redis answers in well under a millisecond
REST_SECONDS = 5.0


class RedisHealth:
    def __init__(self, budget: float = BUDGET_SECONDS, rest: float = REST_SECONDS) -> None:
        self.budget, self.rest = budget, rest
        self._resting_until = 0.0
        self._down = False

    def usable(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() < self._resting_until:
            return False
        if self._down:
            self._down = False
            log.info("Redis: trying it again after %g s at rest", self.rest)
        return True

    def failed(self, exc: BaseException) -> None:
        self._resting_until = asyncio.get_running_loop().time() + self.rest
        if not self._down:
            self._down = True
            log.warning("Redis unavailable (%r): using the database for %g s", exc, self.rest)
