"""How many refused attempts from one address are logged one by one: a flood cannot fill the log.

An attempt refused before anyone is known (a made-up or revoked key, a connection from a host not
allowed) is logged as a `rejected` row: a platform left on a rotated key then still leaves a trace
of every call. Such a row holds no more than why, the channel and where from, so past PER_MINUTE a
minute from one address on one channel the rest are counted instead, and their count is logged as
one row when the minute ends: nothing is lost, and made-up keys sent in a loop cost a row a minute
rather than a row each. A refusal that carries something of a caller (a number, a call id: a Twilio
call whose signature fails after the token was rotated) is always logged whole. Per process; at most
MOST_SOURCES addresses a minute are told apart, and at most MOST_ROWS rows a minute are logged one by
one in all (past either, the rest share one count a channel).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from .. import metrics
from .records import Rejected

PER_MINUTE = 30
MOST_SOURCES = 10_000
MOST_ROWS = 3_000  # a minute, from every address together (many addresses: a v6 prefix, a botnet)
OTHERS = "other addresses"


class RefusalLimit:
    def __init__(
        self, log_row: Callable[[Rejected], Coroutine[Any, Any, None]], clock: Callable[[], float] = time.time
    ) -> None:
        self._log_row, self._clock = log_row, clock
        self._minute = 0
        self._logged: dict[tuple[str, str], int] = {}  # (channel, address) → rows logged this minute
        self._held: dict[tuple[str, str], int] = {}  # … → attempts counted and not logged yet
        self._rows = 0  # logged one by one this minute, from every address
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def applies(rejected: Rejected) -> bool:
        """Whether the limit may count this attempt: refused, from a known address, and carrying
        nothing of a caller (no number or address, no call id)."""
        return (
            rejected.status == "rejected"
            and bool(rejected.address)
            and not rejected.sender
            and not rejected.provider_id
        )

    def admit(self, rejected: Rejected) -> bool:
        """Whether to log this attempt one by one; if not, it is counted for its minute's row."""
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self.flush()
            self._minute = minute
        key = (rejected.channel, rejected.address)
        if key not in self._logged and (len(self._logged) >= MOST_SOURCES or self._rows >= MOST_ROWS):
            key = (rejected.channel, OTHERS)
        n = self._logged.get(key, 0)
        if n < PER_MINUTE and self._rows < MOST_ROWS:
            self._logged[key] = n + 1
            self._rows += 1
            return True
        self._held[key] = self._held.get(key, 0) + 1
        metrics.REFUSALS_COUNTED.labels(rejected.channel).inc()
        if self._flush is None:  # the minute's count is logged when it ends, even if the attempts stop
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later((minute + 1) * 60 - self._clock() + 0.05, self.flush)
        return False

    def flush(self) -> None:
        """Log the count of each address's attempts not logged one by one, and start afresh."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        held, self._held, self._logged, self._rows = self._held, {}, {}, 0
        start = datetime.fromtimestamp(self._minute * 60, UTC).strftime("%H:%M")
        for (channel, address), n in held.items():
            why = (
                f"{n} more attempt(s) refused from {address} in the minute from {start} UTC, not logged "
                f"one by one (more than {PER_MINUTE} a minute)"
            )
            task = asyncio.get_running_loop().create_task(self._log_row(Rejected("rejected", why, channel)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """At shutdown: the counts held so far are logged."""
        self.flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
