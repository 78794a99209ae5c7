"""Awaiting a database call from the decide path without being held by it.

Cancelling a query on a hung PostgreSQL connection waits for the cancellation to reach the server,
which can take as long as the hang. A detached call lets the caller's deadline answer at once and
leaves the call to end on its own; its outcome, if nobody waits for it any more, is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def detached(coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_drop_outcome)
        raise


def _drop_outcome(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so it is not reported as never retrieved
