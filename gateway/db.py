"""PostgreSQL pool creation: JSON codecs and a pool that does not reset connections on release."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":")).encode()


def _jsonb_decode(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so that COPY (the contact log's group commit) can carry JSON columns too.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=lambda v: json.dumps(v).encode(), decoder=json.loads, schema="pg_catalog", format="binary"
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """We never leave session state behind, so skip asyncpg's RESET ALL round trip per release."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20, **kw: Any) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_no_reset,
        command_timeout=30,
        **kw,
    )


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn
