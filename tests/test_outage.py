"""PostgreSQL goes away while contacts flow: every acknowledged contact is logged exactly once."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.contactlog import ContactRecord, Spool, replay_file
from tests.helpers import bearer, eventually
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.timeout(120)


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


@pytest.fixture
async def proxy(settings):
    parts = urlsplit(settings.database_url)
    p = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await p.start()
    yield p
    await p.close()


async def test_contacts_during_an_outage_are_spooled_and_replayed_once(settings, keys, conn, proxy, tmp_path):
    cut_settings = settings.with_(database_url=_via(settings.database_url, proxy.port),
                                  spool_dir=str(tmp_path / "spool"))
    acknowledged: list[str] = []
    async with TestClient(TestServer(create_app(cut_settings))) as client:
        async def send(n: int) -> None:
            r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={
                "channel": "phone", "from": f"07700 9{n:05d}", "provider_id": f"outage-{n}"})
            assert r.status == 201, await r.text()
            acknowledged.append((await r.json())["contact_id"])

        await asyncio.gather(*(send(n) for n in range(0, 40)))
        await proxy.cut()
        await asyncio.gather(*(send(n) for n in range(40, 80)))        # database unreachable
        assert any((tmp_path / "spool").glob("*.jsonl"))
        await proxy.restore()
        await asyncio.gather(*(send(n) for n in range(80, 120)))

        async def all_logged() -> bool:
            return await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'outage-%'") \
                == len(acknowledged)
        await eventually(all_logged, timeout=15)
    rows = await conn.fetch("SELECT id FROM contacts WHERE provider_id LIKE 'outage-%'")
    assert sorted(str(r["id"]) for r in rows) == sorted(acknowledged)
    assert not list((tmp_path / "spool").glob("*.jsonl"))


async def test_replaying_a_spool_twice_inserts_once(conn, tmp_path):
    from datetime import UTC, datetime
    spool = Spool(tmp_path)
    records = [ContactRecord(id=uuid.uuid4(), received_at=datetime.now(UTC), channel="email", action="route",
                             provider_id=f"spool-{i}", decision={"contact_id": "x"}) for i in range(5)]
    spool.write(records)
    copy = tmp_path / "contacts-copy.jsonl"
    copy.write_bytes(spool.path.read_bytes())
    assert await replay_file(conn, spool.path) == 5
    assert await replay_file(conn, copy) == 0
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'spool-%'") == 5


async def test_replay_command_pushes_spool_files_with_progress(settings, conn, tmp_path):
    import os
    import sys
    from datetime import UTC, datetime

    from tests.helpers import ROOT
    spool = Spool(tmp_path)
    spool.write([ContactRecord(id=uuid.uuid4(), received_at=datetime.now(UTC), channel="phone", action="route",
                               provider_id=f"cli-{i}") for i in range(3)])
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "GATEWAY_SPOOL_DIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "replay", env=env, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert "1/1 spool file(s), 3 contact(s) replayed" in out.decode()
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'cli-%'") == 3
    assert not list(tmp_path.glob("contacts-*.jsonl"))


async def test_api_keys_keep_working_while_the_database_is_away(settings, conn, proxy):
    from gateway import db
    from gateway.auth import KeyRing, create_key
    _, key = await create_key(conn, "channel", "switch")
    pool = await db.create_pool(_via(settings.database_url, proxy.port), min_size=0, max_size=2)
    try:
        ring = KeyRing(pool, ttl=0.05)
        first = await ring.resolve(key)
        await proxy.cut()
        await asyncio.sleep(0.1)  # the cached answer is stale now
        assert await ring.resolve(key) == first  # served stale rather than refused
        with pytest.raises(OSError):
            await ring.resolve("gwk_never-seen-before")
    finally:
        await pool.close()


async def test_a_gateway_started_without_its_database_answers_calls_degraded(settings, conn, proxy, tmp_path):
    """Cold start during an outage: calls are routed safely and logged, and it recovers by itself."""
    import xml.etree.ElementTree as ET

    from twilio.request_validator import RequestValidator
    token, public = "cold-start-token", "https://gateway.example.org"
    await proxy.cut()
    cold = settings.with_(database_url=_via(settings.database_url, proxy.port), spool_dir=str(tmp_path),
                          twilio_auth_token=token, public_url=public)
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
