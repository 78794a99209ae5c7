"""A provider id is acknowledged with one contact id, even when its retry arrives while the database hangs."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from tests.factory import bearer
from tests.helpers import eventually, via_proxy

pytestmark = pytest.mark.timeout(90)


async def test_a_retry_during_a_database_hang_gets_the_first_answer(settings, keys, conn, proxy, tmp_path):
    hung = settings.with_(database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(tmp_path / "spool"))
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


async def test_while_the_database_hangs_answers_come_at_once_and_nothing_is_lost(settings, keys, conn, proxy, tmp_path):
    """A commit slower than half a second trips a circuit breaker: that batch is answered from the
    spool, and later contacts go straight to it instead of each waiting GATEWAY_LOG_WAIT_MS; when
    the database answers again they commit as usual."""
    hung = settings.with_(database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(tmp_path / "spool"))
    headers = bearer(keys["channel"])
    async with TestClient(TestServer(create_app(hung))) as client:

        async def post(n: int) -> tuple[float, str]:
            started = asyncio.get_running_loop().time()
            body = {"channel": "phone", "from": f"07700 9{n:05d}", "provider_id": f"breaker-{n}"}
            r = await client.post("/v1/contacts", headers=headers, json=body)
            assert r.status == 201
            return asyncio.get_running_loop().time() - started, (await r.json())["contact_id"]

        await post(0)
        proxy.freeze()
        first = await post(1)  # its commit does not come: the breaker trips before the log's wait
        during = [await post(n) for n in range(2, 22)]
        proxy.thaw()
        await asyncio.sleep(1.5)  # the breaker's probe finds the database again
        after = [await post(n) for n in range(22, 27)]
    assert 0.4 <= first[0] < 0.9
    assert max(t for t, _ in during) < 0.3, [round(t, 3) for t, _ in during]
    acknowledged = {cid for _, cid in (first, *during, *after)}

    async def logged() -> bool:
        return await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'breaker-%'") == 27

    await eventually(logged, timeout=20)
    rows = await conn.fetch(
        "SELECT id::text FROM contacts WHERE provider_id LIKE 'breaker-%' AND provider_id <> 'breaker-0'"
    )
    assert {r["id"] for r in rows} == acknowledged


@pytest.mark.parametrize("retry_after", [0.05, 0.15, 0.3])
async def test_a_retry_at_a_process_whose_database_answers_gets_the_first_answer(
    settings, keys, conn, proxy, tmp_path, retry_after
):
    """The first attempt's commit hangs at one process (it will be answered from its spool); the
    retry reaches another process whose database answers at once. Whichever way it goes (the retry
    committed before the other process saw the flag, so the first attempt hears its answer; or the
    retry claims first and waits for the first attempt's), both are answered with one contact id,
    and the log keeps that one."""
    hung = settings.with_(database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(tmp_path / "spool"))
    headers = bearer(keys["channel"])
    sid = f"two-ways-{retry_after}"
    body = {"channel": "phone", "from": "07700 900003", "provider_id": sid}
    async with TestClient(TestServer(create_app(hung))) as slow, TestClient(TestServer(create_app(settings))) as quick:
        for client in (slow, quick):  # each process has a live connection and has looked at the flag
            warm = {**body, "provider_id": f"{sid}-warm-{id(client)}"}
            assert (await client.post("/v1/contacts", headers=headers, json=warm)).status == 201

        async def retry() -> tuple[int, dict]:
            await asyncio.sleep(retry_after)
            r = await quick.post("/v1/contacts", headers=headers, json=body)
            return r.status, await r.json()

        async def first() -> tuple[int, dict]:
            r = await slow.post("/v1/contacts", headers=headers, json=body)
            return r.status, await r.json()

        proxy.freeze()
        (first_status, first_answer), (retry_status, retry_answer) = await asyncio.gather(first(), retry())
        proxy.thaw()
        assert first_status in (200, 201) and retry_status in (200, 201)
        assert first_answer["contact_id"] == retry_answer["contact_id"]

        async def logged() -> bool:
            return await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = $1", sid) >= 1

        await eventually(logged, timeout=20)
        await asyncio.sleep(2)  # the spool replayed, the hung statement ended
    rows = await conn.fetch("SELECT id::text, status FROM contacts WHERE provider_id = $1", sid)
    assert [r["id"] for r in rows if r["status"] == "decided"] == [first_answer["contact_id"]]
