"""The spool shared by every process on a machine: claimed and replayed so that no record is lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from gateway import db
from gateway.contactlog import ContactRecord, Spool, replay_file
from gateway.store.contactlog import Batch, write_batch
from tests.factory import bearer
from tests.helpers import GatewayProcess, eventually, via_proxy

pytestmark = pytest.mark.timeout(120)


def _records(prefix: str, n: int) -> list[ContactRecord]:
    return [
        ContactRecord(
            id=uuid.uuid4(), received_at=datetime.now(UTC), channel="phone", action="route", provider_id=f"{prefix}-{i}"
        )
        for i in range(n)
    ]


def _spooled_lines(directory: Path) -> list[str]:
    lines = []
    for p in directory.glob("contacts-*"):
        with contextlib.suppress(FileNotFoundError):  # replayed and removed while we looked
            lines += [line for line in p.read_text().splitlines() if line.strip()]
    return lines


def _quarantined(directory: Path) -> set[str]:
    path = directory / "quarantine.jsonl"
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):  # a line kept aside because it is unreadable
            ids.add(json.loads(line)["id"])
    return ids


async def _logged(conn: asyncpg.Connection, prefix: str) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT id::text, count(*) AS n FROM contacts WHERE provider_id LIKE $1 GROUP BY id", prefix + "-%"
    )
    return {r["id"]: r["n"] for r in rows}


async def test_a_failed_replay_and_a_newer_file_of_the_same_process_are_both_replayed(settings, conn, tmp_path):
    """Found in production: the next round renamed the newer file onto the one whose replay had failed."""
    spool = Spool(tmp_path)
    older, newer = _records("older", 3), _records("newer", 4)
    spool.write(older)
    gone = await db.connect(settings.database_url)
    await gone.close()
    with pytest.raises(asyncpg.InterfaceError):  # the database went away mid-replay
        await replay_file(gone, spool.path)
    spool.write(newer)  # the process keeps spooling meanwhile
    for _ in range(2):
        for path in spool.files():
            await replay_file(conn, path)
    assert await _logged(conn, "older") == {str(r.id): 1 for r in older}
    assert await _logged(conn, "newer") == {str(r.id): 1 for r in newer}
    assert not list(tmp_path.glob("contacts-*"))


async def test_processes_sharing_a_spool_through_a_hung_database_lose_nothing(settings, keys, conn, proxy, tmp_path):
    """Found in production: two workers, a hung database, and a quarter of the spooled contacts gone."""
    spool = tmp_path / "spool"
    via = settings.with_(database_url=via_proxy(settings.database_url, proxy.port))
    # Replies wait for their batch to fail rather than spooling early, so each contact is spooled once.
    env = {"GATEWAY_SPOOL_DIR": str(spool), "GATEWAY_LOG_WAIT_MS": "10000"}
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def send(session: aiohttp.ClientSession, gw: GatewayProcess, provider_id: str) -> None:
        body = {"channel": "phone", "from": "07700 900123", "provider_id": provider_id}
        async with session.post(gw.url + "/v1/contacts", json=body, headers=bearer(keys["channel"])) as r:
            assert r.status == 201, await r.text()
            acknowledged.append((await r.json())["contact_id"])

    async def ready(session: aiohttp.ClientSession, gw: GatewayProcess) -> None:
        """In parallel, these leave idle pooled connections behind, as any busy process has."""
        async with session.get(gw.url + "/readyz") as r:
            assert r.status == 200

    async def caller(session: aiohttp.ClientSession, gw: GatewayProcess, name: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await send(session, gw, f"shared-{name}-{n}")

    logs = tmp_path / "a.log", tmp_path / "b.log"
    gateways = GatewayProcess(via, logs[0], **env), GatewayProcess(via, logs[1], **env)
    async with gateways[0] as a, gateways[1] as b, aiohttp.ClientSession() as s:
        await asyncio.gather(send(s, a, "shared-a-0"), send(s, b, "shared-b-0"))  # each has checked the key
        await asyncio.gather(*(ready(s, gw) for gw in (a, b) for _ in range(8)))
        callers = [asyncio.create_task(caller(s, gw, f"{i}{j}")) for i, gw in enumerate((a, b)) for j in range(40)]
        await asyncio.sleep(0.5)
        # The database hangs: batches time out and are spooled, and each replay loop, on an idle
        # pooled connection, claims a spool file, reads it and waits.
        proxy.freeze()
        await asyncio.sleep(6)
        await proxy.cut()  # then drops every connection: those replays fail; spooling goes on
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*callers)
        assert _spooled_lines(spool)
        proxy.thaw()
        await proxy.restore()

        async def spool_drained() -> bool:  # a record leaves the spool only once it is in the log
            return not _spooled_lines(spool)

        await eventually(spool_drained, timeout=30)
    logged = await _logged(conn, "shared")
    missing = set(acknowledged) - set(logged)
    quarantined = _quarantined(spool)
    said = "".join(
        line for p in logs for line in p.read_text(errors="replace").splitlines(keepends=True) if "WARNING" not in line
    )
    assert not missing, (
        f"{len(missing)} of {len(acknowledged)} acknowledged contacts never logged "
        f"({len(missing & quarantined)} of them quarantined); the gateways said:\n{said[-6000:]}"
    )
    assert sorted(logged) == sorted(acknowledged)
    assert set(logged.values()) == {1}
    assert not quarantined, f"{len(quarantined)} contact(s) quarantined; the gateways said:\n{said[-6000:]}"


async def test_a_file_another_replayer_holds_is_left_to_it(settings, conn, proxy, tmp_path):
    spool = Spool(tmp_path)
    records = _records("held", 3)
    spool.write(records)
    slow = await db.connect(via_proxy(settings.database_url, proxy.port))
    try:
        proxy.freeze()
        first = asyncio.create_task(replay_file(slow, spool.path))
        await asyncio.sleep(0.2)  # it has claimed the file and waits on the database
        (claimed,) = spool.files()
        assert claimed.suffix == ".replaying"
        assert await replay_file(conn, claimed) == 0
        proxy.thaw()
        assert await first == 3
    finally:
        await slow.close()
    assert await _logged(conn, "held") == {str(r.id): 1 for r in records}
    assert spool.files() == []


async def test_an_append_after_one_that_failed_part_way_is_replayed(conn, tmp_path):
    """A write that fails part-way (disk full, a quota) leaves a torn line; its callers are told
    their contacts were not logged. The next append is reported durable: it must not be glued to
    the torn line and quarantined with it."""
    spool = Spool(tmp_path)
    before, after = _records("torn-before", 2), _records("torn-after", 2)
    spool.write(before)
    torn = _records("torn-lost", 1)[0].to_json()
    with open(spool.path, "a", encoding="utf-8") as f:
        f.write(torn[: len(torn) // 2])  # as a write cut off by a full disk leaves it
    spool.write(after)
    assert await replay_file(conn, spool.path) == 4
    assert await _logged(conn, "torn-before") == {str(r.id): 1 for r in before}
    assert await _logged(conn, "torn-after") == {str(r.id): 1 for r in after}
    assert torn[: len(torn) // 2] in (tmp_path / "quarantine.jsonl").read_text()


async def test_a_spooled_record_the_database_refuses_is_kept_aside_and_the_rest_replayed(conn, tmp_path):
    spool = Spool(tmp_path)
    good = _records("poison", 3)
    bad = _records("poison-bad", 1)[0]
    bad.action = "shout"  # not an action the log accepts: it will never be written
    spool.write([good[0], bad, *good[1:]])
    assert await replay_file(conn, spool.path) == 3
    assert await _logged(conn, "poison") == {str(r.id): 1 for r in good}
    assert str(bad.id) in (tmp_path / "quarantine.jsonl").read_text()
    assert spool.files() == []


async def test_a_spooled_contact_whose_provider_id_was_answered_meanwhile_is_kept_not_dropped(conn, tmp_path):
    """Its caller was given its contact id while the database was away: it must have a row."""
    first, second = _records("answered", 1)[0], _records("answered", 1)[0]
    first.decision = second.decision = {"action": "route"}
    await write_batch(conn, Batch.of([first.to_json()]))  # the provider id is claimed by the first contact
    spool = Spool(tmp_path)
    spool.write([second])
    assert await replay_file(conn, spool.path) == 1
    rows = {
        r["id"]: r["status"]
        for r in await conn.fetch("SELECT id, status FROM contacts WHERE provider_id = 'answered-0'")
    }
    assert rows == {first.id: "decided", second.id: "duplicate"}
    assert spool.files() == []
