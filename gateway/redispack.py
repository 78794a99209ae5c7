"""Redis commands packed by hiredis (C) rather than by redis-py's asyncio connection (Python).

The answers remembered for retries go to Redis many in one call (decide/idempotency.py): at
saturation about 170 answers a call in each worker, ~690 arguments. redis-py packs each argument in
Python and joins its growing buffer again for each one: 425 µs for such a call on the bench machine
(2.5 µs an answer); hiredis.pack_command makes the same bytes in 72 µs. A command whose first
argument holds several words ("CLIENT SETNAME") is split as redis-py splits it; a value hiredis will
not take (None, a bool, a bytearray) goes to redis-py's packer, which packs it or refuses it as it
always has. A pool told to encode text other than as strict UTF-8 (REDIS_URL's `encoding` and
`encoding_errors`) keeps redis-py's packer: hiredis knows no other.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool


def packed_by_hiredis(pool: ConnectionPool) -> ConnectionPool:
    """The pool, its connections (made from now on) packing commands with hiredis."""
    kwargs = pool.connection_kwargs
    if (
        kwargs.get("encoding", "utf-8").lower().replace("_", "-") in ("utf-8", "utf8")
        and kwargs.get("encoding_errors", "strict") == "strict"
    ):
        pool.connection_class = _with_hiredis_packing(pool.connection_class)
    return pool


def _with_hiredis_packing(base: type[AbstractConnection]) -> type[AbstractConnection]:
    class HiredisPacking(base):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            first = args[0]
            if (isinstance(first, str) and " " in first) or (isinstance(first, bytes) and b" " in first):
                args = (*first.split(), *args[1:])
            try:
                return [hiredis.pack_command(args)]
            except TypeError:  # a value hiredis does not take: redis-py packs it, or says why, as before
                packed: list[bytes] = super().pack_command(*args)
                return packed

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"HiredisPacking{base.__name__}"
    return HiredisPacking
