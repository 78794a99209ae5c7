"""A provider id is acknowledged with one contact id, even when its retry arrives while the database hangs."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from tests.factory import bearer
from tests.helpers import eventually
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.timeout(90)


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


async def test_a_retry_during_a_database_hang_gets_the_first_answer(settings, keys, conn, proxy, tmp_path):
    hung = settings.with_(database_url=_via(settings.database_url, proxy.port), spool_dir=str(tmp_path / "spool"))
    headers = bearer(keys["channel"])
    async with TestClient(TestServer(create_app(hung))) as client:
        r = await client.post("/v1/contacts", headers=headers, json={"channel": "phone", "from": "07700 900001"})
        assert r.status == 201  # the pool has a live connection before the hang

        async def post(sid: str, delay: float) -> tuple[int, dict]:
            await asyncio.sleep(delay)
            body = {"channel": "phone", "from": "07700 900002", "provider_id": sid}
            r = await client.post("/v1/contacts", headers=headers, json=body)
            return r.status, await r.json()

        proxy.freeze()
        pairs = await asyncio.gather(*(asyncio.gather(post(f"hang-{n}", 0), post(f"hang-{n}", 0.5)) for n in range(5)))
        proxy.thaw()

        for (first_status, first), (retry_status, retry) in pairs:
            assert first_status == 201
            assert retry_status in (200, 201)
            assert retry["contact_id"] == first["contact_id"]
            assert retry["action"] == first["action"]

        async def logged() -> bool:
            return await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'hang-%'") == 5

        await eventually(logged, timeout=20)
    rows = await conn.fetch("SELECT id::text, provider_id FROM contacts WHERE provider_id LIKE 'hang-%'")
    assert sorted(r["id"] for r in rows) == sorted(first["contact_id"] for (_, first), _ in pairs)
