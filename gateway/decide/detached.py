"""Awaiting a database call from the decide path without being held by it.

Cancelling a query on a hung PostgreSQL connection waits for the cancellation to reach the server,
which can take as long as the hang. A detached call lets the caller's deadline answer at once and
leaves the call to end on its own; its outcome, if nobody waits for it any more, is dropped. It is
given up at the caller's deadline all the same: a call still waiting for a connection from a pool
that an outage has emptied would otherwise wait for ever, and such calls would pile up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def detached(coro: Coroutine[Any, Any, T], until: float | None) -> T:
    """`coro`'s outcome, awaited without being held by it; `until` (the event loop's time, the
    caller's deadline): when the call is given up, whether or not anyone still waits for it."""
    task = asyncio.ensure_future(_given_up_at(coro, until))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_drop_outcome)
        raise


async def _given_up_at(coro: Coroutine[Any, Any, T], until: float | None) -> T:
    async with asyncio.timeout_at(until):
        return await coro


def _drop_outcome(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so it is not reported as never retrieved
