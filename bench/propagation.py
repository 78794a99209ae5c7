"""Time for a new restriction to be in force in every worker, measured while the constant load runs.

One keep-alive connection is pinned to each worker (psutil maps our socket to the worker that
accepted it). For each change: commit an active `written_only` restriction with the gateway's own
invalidation (NOTIFY in the transaction, Redis publish after commit), then send decide calls for that
customer's phone on every pinned connection until every worker answers `deflect`. The clock runs
from before the INSERT to the last worker's deflecting answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import psutil
import redis.asyncio as aioredis

from gateway import db
from gateway.invalidation import publish
from gateway.store.changes import notify_in_transaction

from .load import PROPAGATION_CREATOR, RESTRICTION_COLUMNS, Shape, phone_of, restriction_row
from .servers import Server


class PinnedConnection:
    """A minimal HTTP/1.1 keep-alive client on one TCP connection (so it stays on one worker)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port
        self.local_port = int(writer.get_extra_info("sockname")[1])

    @classmethod
    async def open(cls, port: int) -> PinnedConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    async def post_json(self, path: str, body: dict[str, object], key: str) -> tuple[int, dict[str, object]]:
        data = json.dumps(body).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode()
        status = int(head.split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.lower().startswith("content-length:")
        )
        return status, json.loads(await self.reader.readexactly(length))

    def close(self) -> None:
        self.writer.close()


async def pin_workers(server: Server, attempts: int = 64) -> dict[int, PinnedConnection]:
    """One connection per worker pid, found by matching our local port to the accepting worker."""
    pinned: dict[int, PinnedConnection] = {}
    spare: list[PinnedConnection] = []
    for _ in range(attempts):
        conn = await PinnedConnection.open(server.port)
        await asyncio.sleep(0.01)
        owner = next(
            (
                pid
                for pid in server.worker_pids()
                for c in psutil.Process(pid).net_connections("tcp")
                if c.raddr and c.raddr.port == conn.local_port and c.laddr.port == server.port
            ),
            None,
        )
        if owner is not None and owner not in pinned:
            pinned[owner] = conn
        else:
            spare.append(conn)
        if len(pinned) == server.workers:
            break
    for c in spare:
        c.close()
    if len(pinned) != server.workers:
        raise RuntimeError(f"could not reach every worker ({len(pinned)}/{server.workers})")
    return pinned


@dataclass
class Change:
    customer_id: int
    restriction_id: int
    seconds: float
    polls: int


async def _poll_until_deflect(conn: PinnedConnection, cid: int, key: str, tag: str) -> int:
    polls = 0
    while True:
        polls += 1
        status, decision = await conn.post_json(
            "/v1/contacts", {"channel": "phone", "from": phone_of(cid), "provider_id": f"{tag}-{polls}"}, key
        )
        if status in (200, 201) and decision.get("action") == "deflect":
            return polls
        if polls > 5000:
            raise RuntimeError(f"restriction for customer {cid} never took effect on port {conn.local_port}")


async def _one_change(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    pinned: dict[int, PinnedConnection],
    cid: int,
    key: str,
    run_id: str,
) -> Change:
    started = time.perf_counter()
    async with conn.transaction():
        row = restriction_row(cid, "written_only", {"kind": "written_only"}, [], PROPAGATION_CREATOR)
        rid = await conn.fetchval(
            f"INSERT INTO restrictions ({', '.join(RESTRICTION_COLUMNS)}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(row)))}) RETURNING id",
            *row,
        )
        await notify_in_transaction(conn, cid)
    await publish(redis, cid)
    polls = await asyncio.gather(
        *(_poll_until_deflect(c, cid, key, f"{run_id}-prop-{cid}-{pid}") for pid, c in pinned.items())
    )
    return Change(cid, rid, time.perf_counter() - started, sum(polls))


async def measure(
    server: Server,
    database_url: str,
    redis_url: str,
    shape: Shape,
    key: str,
    run_id: str,
    changes: int = 100,
    during: asyncio.Future[Any] | None = None,
) -> list[Change]:
    """Up to `changes` changes, one after another; with `during` (a load running), only while it runs."""
    pinned = await pin_workers(server)
    conn = await db.connect(database_url)
    redis = aioredis.from_url(redis_url)
    done: list[Change] = []
    try:
        for k in range(changes):
            if during is not None and during.done():
                break
            cid = shape.restricted_customer(k % shape.restrictions) + 1  # an unrestricted neighbour
            done.append(await _one_change(conn, redis, pinned, cid, key, run_id))
        await conn.execute("DELETE FROM restrictions WHERE created_by = $1", PROPAGATION_CREATOR)
        for c in done:
            await publish(redis, c.customer_id)
    finally:
        for c in pinned.values():
            c.close()
        await conn.close()
        await redis.aclose()
    return done
