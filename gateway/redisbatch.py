"""Coalesces the Redis commands that concurrent decisions issue into one pipeline per round trip.

The same idea as the contact log's group commit: while one pipeline is in flight, new commands
queue, and the next pipeline carries all of them. redis-py spends most of a single command's cost
in Python; in a pipeline that cost is shared (about 85 µs a command alone, under 30 µs batched).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

_Command = tuple[str, tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class RedisBatch:
    def __init__(self, redis: aioredis.Redis, max_batch: int = 256) -> None:
        self.redis = redis
        self.max_batch = max_batch
        self._pending: list[_Command] = []
        self._runner: asyncio.Task[None] | None = None

    async def call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Run one command (a redis-py method name) in the next pipeline; its error is raised here."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((command, args, kwargs, fut))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await fut

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            pipe = self.redis.pipeline(transaction=False)
            for command, args, kwargs, _ in batch:
                getattr(pipe, command)(*args, **kwargs)
            try:
                results = await pipe.execute(raise_on_error=False)
            except BaseException as exc:  # the connection failed: every caller in the batch hears it
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (*_, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
