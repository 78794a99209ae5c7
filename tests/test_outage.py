"""PostgreSQL goes away while contacts flow: every acknowledged contact is logged exactly once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.contactlog import ContactRecord, Spool, replay_file
from tests.factory import SET_UP, Api, bearer
from tests.helpers import eventually, via_proxy

pytestmark = pytest.mark.timeout(120)


async def test_contacts_during_an_outage_are_spooled_and_replayed_once(settings, keys, conn, proxy, tmp_path):
    cut_settings = settings.with_(
        database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(tmp_path / "spool")
    )
    acknowledged: list[str] = []
    async with TestClient(TestServer(create_app(cut_settings))) as client:

        async def send(n: int) -> None:
            r = await client.post(
                "/v1/contacts",
                headers=bearer(keys["channel"]),
                json={"channel": "phone", "from": f"07700 9{n:05d}", "provider_id": f"outage-{n}"},
            )
            assert r.status == 201, await r.text()
            acknowledged.append((await r.json())["contact_id"])

        await asyncio.gather(*(send(n) for n in range(0, 40)))
        await proxy.cut()
        await asyncio.gather(*(send(n) for n in range(40, 80)))  # database unreachable
        assert any((tmp_path / "spool").glob("*.jsonl"))
        await proxy.restore()
        await asyncio.gather(*(send(n) for n in range(80, 120)))

        async def all_logged() -> bool:
            return await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'outage-%'") == len(
                acknowledged
            )

        await eventually(all_logged, timeout=15)
    rows = await conn.fetch("SELECT id FROM contacts WHERE provider_id LIKE 'outage-%'")
    assert sorted(str(r["id"]) for r in rows) == sorted(acknowledged)
    assert not list((tmp_path / "spool").glob("*.jsonl"))


async def test_replaying_a_spool_twice_inserts_once(conn, tmp_path):
    from datetime import UTC, datetime

    spool = Spool(tmp_path)
    records = [
        ContactRecord(
            id=uuid.uuid4(),
            received_at=datetime.now(UTC),
            channel="email",
            action="route",
            provider_id=f"spool-{i}",
            decision={"contact_id": "x"},
        )
        for i in range(5)
    ]
    spool.write(records)
    copy = tmp_path / "contacts-copy.jsonl"
    copy.write_bytes(spool.path.read_bytes())
    assert await replay_file(conn, spool.path) == 5
    assert await replay_file(conn, copy) == 0
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'spool-%'") == 5


async def test_replay_command_pushes_spool_files_with_progress(settings, conn, tmp_path):
    import os
    from datetime import UTC, datetime

    from tests.helpers import run_cli

    spool = Spool(tmp_path)
    spool.write(
        [
            ContactRecord(
                id=uuid.uuid4(), received_at=datetime.now(UTC), channel="phone", action="route", provider_id=f"cli-{i}"
            )
            for i in range(3)
        ]
    )
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "GATEWAY_SPOOL_DIR": str(tmp_path),
    }
    returncode, out, _ = await run_cli(env, "replay")
    assert returncode == 0
    assert "1/1 spool file(s), 3 contact(s) replayed" in out
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'cli-%'") == 3
    assert not list(tmp_path.glob("contacts-*.jsonl"))


async def test_api_keys_keep_working_while_the_database_is_away(settings, conn, proxy):
    from gateway import db
    from gateway.auth import KeyRing, create_key

    _, key = await create_key(conn, "channel", "switch", actor=SET_UP)
    pool = await db.create_pool(via_proxy(settings.database_url, proxy.port), min_size=0, max_size=2)
    try:
        ring = KeyRing(pool, ttl=0.05)
        first = await ring.resolve(key)
        await proxy.cut()
        await asyncio.sleep(0.1)  # the cached answer is stale now
        assert await ring.resolve(key) == first  # served stale rather than refused
        with pytest.raises(OSError):  # ConnectionError: no process has seen it, nowhere to ask
            await ring.resolve("gwk_never-seen-before")
    finally:
        await pool.close()


async def test_a_gateway_started_without_its_database_answers_calls_degraded(settings, conn, proxy, tmp_path):
    """Cold start during an outage: calls are routed safely and logged, and it recovers by itself."""
    import xml.etree.ElementTree as ET

    from twilio.request_validator import RequestValidator

    token, public = "cold-start-token", "https://gateway.example.org"
    await proxy.cut()
    cold = settings.with_(
        database_url=via_proxy(settings.database_url, proxy.port),
        spool_dir=str(tmp_path),
        twilio_auth_token=token,
        public_url=public,
    )
    params = {"CallSid": "CA-cold-start", "From": "07700 900003", "To": "+441632960000"}
    signature = RequestValidator(token).compute_signature(public + "/v1/channels/twilio/voice", params)
    async with TestClient(TestServer(create_app(cold))) as client:
        assert (await client.get("/readyz")).status == 503
        r = await client.post("/v1/channels/twilio/voice", data=params, headers={"X-Twilio-Signature": signature})
        assert r.status == 200
        twiml = ET.fromstring(await r.text())
        assert twiml.find("Enqueue") is not None and twiml.find("Enqueue").text == "general"
        await proxy.restore()

        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await eventually(ready, timeout=10)

        async def logged() -> bool:
            return await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'CA-cold-start'") == 1

        await eventually(logged, timeout=10)
    row = await conn.fetchrow("SELECT degraded, action FROM contacts WHERE provider_id = 'CA-cold-start'")
    assert (row["degraded"], row["action"]) == (True, "route")


async def test_a_hung_database_does_not_hold_the_reply(settings, keys, conn, proxy, tmp_path):
    """Found in review: a database that stops answering held replies for 30 s and more."""
    hung = settings.with_(
        database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(tmp_path), log_wait_ms=300
    )
    async with TestClient(TestServer(create_app(hung))) as client:
        await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": ""})
        proxy.freeze()
        loop = asyncio.get_running_loop()
        start = loop.time()
        r = await client.post(
            "/v1/contacts",
            headers=bearer(keys["channel"]),
            json={"channel": "phone", "from": "07700 900123", "provider_id": "hung-1"},
        )
        assert r.status == 201 and loop.time() - start < 1.5
        assert any(tmp_path.glob("contacts-*"))
        proxy.thaw()

        async def logged() -> bool:
            return await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'hung-1'") == 1

        await eventually(logged, timeout=10)
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'hung-1'") == 1


async def test_a_record_spooled_while_its_file_is_replayed_is_not_lost(settings, conn, proxy, tmp_path):
    """Found in review: a replay removed a file another writer was still appending to."""
    from datetime import UTC, datetime

    from gateway import db

    def record(n: int) -> ContactRecord:
        return ContactRecord(
            id=uuid.uuid4(), received_at=datetime.now(UTC), channel="phone", action="route", provider_id=f"race-{n}"
        )

    spool = Spool(tmp_path)
    spool.write([record(1)])
    slow = await db.connect(via_proxy(settings.database_url, proxy.port))
    proxy.freeze()
    replaying = asyncio.create_task(replay_file(slow, spool.path))
    await asyncio.sleep(0.2)  # the replayer has claimed the file and is waiting on the database
    spool.write([record(2)])  # the live writer appends meanwhile
    proxy.thaw()
    assert await replaying == 1
    await slow.close()
    left = list(tmp_path.glob("contacts-*.jsonl"))
    assert len(left) == 1 and "race-2" in left[0].read_text()
    assert await replay_file(conn, left[0]) == 1
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'race-%'") == 2


async def test_unreadable_spool_lines_are_set_aside_and_the_rest_replayed(conn, tmp_path):
    from datetime import UTC, datetime

    spool = Spool(tmp_path)
    spool.write(
        [
            ContactRecord(
                id=uuid.uuid4(), received_at=datetime.now(UTC), channel="email", action="route", provider_id="torn-ok"
            )
        ]
    )
    with open(spool.path, "a") as f:
        f.write('{"id": "torn-by-a-cr')  # a crash mid-line
    assert await replay_file(conn, spool.path) == 1
    assert "torn-by-a-cr" in (tmp_path / "quarantine.jsonl").read_text()
    assert not list(tmp_path.glob("contacts-*"))


async def test_database_refusing_writes_spools_instead_of_quarantining(settings, tmp_path, conn):
    """Found in review: a read-only database (e.g. after a failover) sent contacts to quarantine."""
    from datetime import UTC, datetime

    from gateway import db
    from gateway.contactlog import ContactLog

    pool = await db.create_pool(
        settings.database_url, min_size=1, max_size=2, server_settings={"default_transaction_read_only": "on"}
    )
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()
    try:
        got = await log.append(
            ContactRecord(
                id=uuid.uuid4(), received_at=datetime.now(UTC), channel="phone", action="route", provider_id="ro-1"
            ),
            wait=5,
        )
    finally:
        await log.close()
        await pool.close()
    assert got.spooled
    assert not (tmp_path / "quarantine.jsonl").exists()
    (spooled,) = list(tmp_path.glob("contacts-*"))
    assert await replay_file(conn, spooled) == 1


async def test_an_unwritable_spool_still_answers_and_says_so(settings, keys, proxy, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    broken = settings.with_(database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(not_a_dir / "x"))
    async with TestClient(TestServer(create_app(broken))) as client:
        await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": ""})
        await proxy.cut()
        r = await asyncio.wait_for(
            client.post(
                "/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": "07700 900123"}
            ),
            10,
        )
        assert r.status == 201
        ready = await (await client.get("/readyz")).json()
        assert ready["checks"]["spool"].startswith("down")


async def test_a_retry_during_an_outage_gets_the_same_answer(settings, keys, conn, proxy, tmp_path):
    """Found in review: the retry of a spooled contact waited out the deadline and came back degraded."""
    cut = settings.with_(database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(tmp_path))
    async with TestClient(TestServer(create_app(cut))) as client:
        api = Api(client, keys)
        cid = await api.customer("Aisha", ("phone", "07700 900003"))
        await api.restriction(cid, "written_only", deciders=(await api.team()).deciders)

        async def deflected() -> bool:
            r = await client.post(
                "/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": "07700 900003"}
            )
            return (await r.json())["action"] == "deflect"

        await eventually(deflected)
        await proxy.cut()
        body = {"channel": "phone", "from": "07700 900003", "provider_id": "CA-during-outage"}
        first = await (await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body)).json()
        await asyncio.sleep(0.1)  # the decision is remembered once the contact is spooled
        again = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body)
        assert again.status == 200 and await again.json() == first
        assert first["action"] == "deflect" and first["degraded"] is False


async def test_a_new_process_checks_keys_others_have_seen_while_the_database_is_away(settings, conn, proxy):
    import redis.asyncio as aioredis

    from gateway import db
    from gateway.auth import KeyRing, create_key, revoke_key

    key_id, key = await create_key(conn, "channel", "switch", actor=SET_UP)
    redis = aioredis.from_url(settings.redis_url)
    pool = await db.create_pool(via_proxy(settings.database_url, proxy.port), min_size=0, max_size=2)
    try:
        seen = await KeyRing(pool, redis).resolve(key)  # a running process resolves it
        await proxy.cut()
        assert await KeyRing(pool, redis).resolve(key) == seen  # a fresh one, database away
        await proxy.restore()
        await revoke_key(conn, key_id, SET_UP)
        assert await KeyRing(pool, redis).resolve(key) is None  # revoked: and forgotten in Redis
        await proxy.cut()
        with pytest.raises(OSError):
            await KeyRing(pool, redis).resolve(key)
    finally:
        await pool.close()
        await redis.aclose()
