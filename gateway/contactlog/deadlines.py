"""One timer for every caller waiting on the contact log, instead of a timer of its own per contact.

Each waiting record has a deadline (its caller's `wait`); the timer is set for the earliest one not
answered yet. When it fires, the records answered meanwhile are dropped and each one overdue is
handed to `expired` (the writer spools it and answers its caller). Under load that is one timer
firing a `wait` apart, where a timer per contact cost a schedule and a cancel on every decision.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Deadlines(Generic[T]):
    def __init__(self, answered: Callable[[T], bool], expired: Callable[[T, float], None]) -> None:
        self._answered, self._expired = answered, expired
        self._heap: list[tuple[float, int, T, float]] = []  # (deadline, order, item, its wait)
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def watch(self, item: T, wait: float) -> None:
        """Hand `item` to `expired` if it is not answered within `wait` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        heapq.heappush(self._heap, (deadline, next(self._order), item, wait))
        if self._timer is None or deadline < self._timer_at:
            self._arm(loop, deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._check), at

    def _check(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap:
            deadline, _, item, wait = heap[0]
            if self._answered(item):
                heapq.heappop(heap)
            elif deadline <= now:
                heapq.heappop(heap)
                self._expired(item, wait)
            else:
                self._arm(loop, deadline)
                return

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
