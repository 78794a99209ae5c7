"""API-key checks never make a caller wait on a slow or starting database; who made and revoked a key is kept."""

from __future__ import annotations

import asyncio
import struct
import time

from gateway import auth, db
from gateway.auth import LOOKUP_SECONDS, KeyRing, create_key, create_staff_key, revoke_key
from gateway.lifecycle import Actor, staff_actor
from gateway.store.keys import key_events, revoke_others
from tests.factory import SET_UP
from tests.helpers import via_proxy


async def _timed(coro):
    started = time.monotonic()
    try:
        return await coro, time.monotonic() - started
    except Exception as exc:
        return exc, time.monotonic() - started


async def test_a_hung_database_delays_no_key_check(settings, conn, proxy):
    _, known = await create_key(conn, "channel", "switch", actor=SET_UP)
    pool = await db.create_pool(via_proxy(settings.database_url, proxy.port), min_size=0, max_size=2)
    try:
        ring = KeyRing(pool, ttl=0.05)
        first = await ring.resolve(known)
        proxy.freeze()
        await asyncio.sleep(0.1)  # the cached answer is stale: its re-check will hang
        for _ in range(5):
            again, took = await _timed(ring.resolve(known))
            assert again == first and took < 0.05
        unseen, took = await _timed(ring.resolve("gwk_never-seen-before"))
        assert isinstance(unseen, OSError)  # 503 at the edge: nobody can say whether it is good
        assert took < LOOKUP_SECONDS + 0.3
    finally:
        proxy.thaw()
        await pool.close()


async def test_a_revoked_key_is_refused_once_rechecked(settings, conn):
    key_id, key = await create_key(conn, "channel", "switch", actor=SET_UP)
    pool = await db.create_pool(settings.database_url, min_size=0, max_size=2)
    try:
        ring = KeyRing(pool, ttl=0.05)
        assert await ring.resolve(key) is not None
        await revoke_key(conn, key_id, SET_UP)
        await asyncio.sleep(0.1)
        await ring.resolve(key)  # stale: answered from memory, re-checked behind it
        await asyncio.sleep(0.2)
        assert await ring.resolve(key) is None
    finally:
        await pool.close()


async def _starting_up_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers like a PostgreSQL that is still starting: SQLSTATE 57P03 to every connection."""
    length = struct.unpack("!I", await reader.readexactly(4))[0]
    body = await reader.readexactly(length - 4)
    if struct.unpack("!I", body[:4])[0] == 80877103:  # SSLRequest: no SSL, then the startup message
        writer.write(b"N")
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        await reader.readexactly(length - 4)
    fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
    writer.write(b"E" + struct.pack("!I", len(fields) + 4) + fields)
    await writer.drain()
    writer.close()


async def test_a_database_still_starting_is_a_database_away(settings, conn):
    """Before: CannotConnectNowError escaped the key check, and callers got 503 unlogged."""
    server = await asyncio.start_server(_starting_up_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = await db.create_pool(via_proxy(settings.database_url, port), min_size=0, max_size=2)
    try:
        ring = KeyRing(pool)
        outcome, _ = await _timed(ring.resolve("gwk_never-seen-before"))
        assert isinstance(outcome, OSError), repr(outcome)
    finally:
        await pool.close()
        server.close()


async def test_each_key_change_names_who_made_it_once(conn, team):
    """Made, revoked (again: nothing new), and the rotation `make run` does: one event per change."""
    lead = staff_actor(team.cl1.id, team.cl1.name)
    made = await create_staff_key(conn, team.scl.id, actor=lead)
    key_id, _ = await create_key(conn, "channel", "Amazon Connect", actor=SET_UP)
    assert await revoke_key(conn, key_id, lead) is not None
    assert await revoke_key(conn, key_id, Actor("someone later")) is not None  # already revoked
    newer, _ = await create_key(conn, "channel", "Amazon Connect", actor=SET_UP)
    rotated = Actor("rotation")
    assert await revoke_others(conn, "channel", "Amazon Connect", newer, rotated) == []  # the other is revoked
    events = await key_events(conn)
    assert [(e["kind"], e["actor"]) for e in events[made.id]] == [("created", lead.label)]
    assert [(e["kind"], e["actor"]) for e in events[key_id]] == [("created", SET_UP.label), ("revoked", lead.label)]
    staff = await conn.fetchval("SELECT staff_id FROM api_key_events WHERE key_id = $1 AND kind = 'revoked'", key_id)
    assert staff == team.cl1.id
    third, _ = await create_key(conn, "channel", "Amazon Connect", actor=SET_UP)
    assert await revoke_others(conn, "channel", "Amazon Connect", third, rotated) == [newer]
    assert [(e["kind"], e["actor"]) for e in (await key_events(conn))[newer]][-1] == ("revoked", rotated.label)


async def test_made_up_keys_never_push_out_the_keys_at_work(settings, conn, monkeypatch):
    """Refused keys are remembered apart and only so many of them: a flood of made-up keys (each one
    refused) leaves the good keys answered from memory, as the lean edge needs them to be."""
    monkeypatch.setattr(auth, "REFUSED_KEPT", 20)
    _, good = await create_key(conn, "channel", "switch", actor=SET_UP)
    pool = await db.create_pool(settings.database_url, min_size=0, max_size=2)
    try:
        ring = KeyRing(pool)
        assert await ring.resolve(good) is not None
        for n in range(60):
            assert await ring.resolve(f"gwk_made-up-{n}") is None
        assert ring.known(good) is not None  # still answered without asking the database
        assert len(ring._refused) == 20
        assert await ring.resolve("gwk_made-up-59") is None  # the latest refusals are still remembered
    finally:
        await pool.close()
