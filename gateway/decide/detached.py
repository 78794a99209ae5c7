"""Awaiting a database call from the decide path without being held by it.

Cancelling a query on a hung PostgreSQL connection waits for the cancellation to reach the server,
which can take as long as the hang. A detached call lets the caller's deadline answer at once and
leaves the call to end on its own; its outcome, if nobody waits for it any more, is dropped. Its wait
for a pool connection ends at the caller's deadline all the same (`on_connection`): in an outage that
has emptied the pool, calls waiting for ever for a connection would pile up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncpg

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


async def on_connection(pool: asyncpg.Pool, until: float | None, call: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`call(connection, *args)` on a connection from `pool`, waited for until `until` (the event
    loop's time: the caller's deadline), then TimeoutError. The query, once sent, ends on its own."""
    timeout = None if until is None else max(0.0, until - asyncio.get_running_loop().time())
    async with pool.acquire(timeout=timeout) as conn:
        return await call(conn, *args)
