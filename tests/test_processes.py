"""Two real gateway processes over one database: propagation within 1 s, idempotency across both."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.helpers import GatewayProcess, bearer, customer, deciders, eventually, restrict

pytestmark = pytest.mark.timeout(120)


async def _decide(session, gw, key, **body):
    async with session.post(gw.url + "/v1/contacts", json=body, headers=bearer(key)) as r:
        return r.status, await r.json()


async def test_restriction_made_through_one_is_enforced_by_the_other_within_a_second(settings, keys, conn):
    admin = bearer(keys["admin"])
    async with (
        GatewayProcess(settings) as a,
        GatewayProcess(settings) as b,
        aiohttp.ClientSession(base_url=a.url) as sa,
        aiohttp.ClientSession() as sb,
    ):
        cid = await customer(sa, admin, "Aisha", ("phone", "07700 900003"))
        ids = await deciders(sa, admin)
        first = await _decide(sb, b, keys["channel"], channel="phone", **{"from": "07700 900003"})
        assert first[1]["action"] == "route"
        loop = asyncio.get_running_loop()
        made = loop.time()
        await restrict(sa, admin, cid, "written_only", ids)

        async def enforced_by_b() -> bool:
            _, d = await _decide(sb, b, keys["channel"], channel="phone", **{"from": "07700 900003"})
            return d["action"] == "deflect"

        await eventually(enforced_by_b, timeout=1.0)
        assert loop.time() - made < 1.0


async def test_idempotent_repeats_across_processes_give_one_row(settings, keys, conn):
    async with GatewayProcess(settings) as a, GatewayProcess(settings) as b, aiohttp.ClientSession() as s:
        body = {"channel": "phone", "from": "07700 900777", "provider_id": "CA-both"}
        results = await asyncio.gather(*(_decide(s, gw, keys["channel"], **body) for gw in (a, b) * 10))
    assert sorted(st for st, _ in results) == [200] * 19 + [201]
    assert len({d["contact_id"] for _, d in results}) == 1
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'CA-both'") == 1


async def test_without_redis_changes_still_arrive_by_notify(settings, keys):
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import create_app
    from tests.helpers import free_port

    admin, channel = bearer(keys["admin"]), bearer(keys["channel"])
    no_redis = settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0", decide_deadline_ms=2000)
    async with TestClient(TestServer(create_app(no_redis))) as client:
        ready = await (await client.get("/readyz")).json()
        assert ready["checks"]["cache"].startswith("down")
        cid = await customer(client, admin, "Aisha", ("phone", "07700 900003"))
        ids = await deciders(client, admin)
        await restrict(client, admin, cid, "written_only", ids)

        async def enforced() -> bool:
            r = await client.post("/v1/contacts", headers=channel, json={"channel": "phone", "from": "07700 900003"})
            return (await r.json())["action"] == "deflect"

        assert await eventually(enforced, timeout=1.0) < 1.0


async def test_index_resyncs_when_the_local_day_changes(settings):
    """A restriction that starts tomorrow is enforced from the first moments of tomorrow."""
    from datetime import date

    import redis.asyncio as aioredis

    from gateway import db
    from gateway.index import IndexKeeper, RestrictionIndex

    days = iter([1, 1, 1, 2])
    index = RestrictionIndex()
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    redis = aioredis.from_url(settings.redis_url)
    keeper = IndexKeeper(
        index, pool, redis, settings.database_url, 3600, lambda: date(2026, 1, next(days, 2)), day_check_seconds=0.05
    )
    try:
        await keeper.start()
        loaded = index.version

        async def resynced() -> bool:
            return index.version > loaded

        await eventually(resynced, timeout=2)
    finally:
        await keeper.close()
        await pool.close()
        await redis.aclose()


async def test_a_worker_that_dies_is_replaced(settings):
    import os
    import signal

    import psutil

    async with GatewayProcess(settings, GATEWAY_WORKERS="2") as gw:
        parent = psutil.Process(gw.proc.pid)

        def workers() -> list[int]:
            """Live worker processes (not multiprocessing's resource tracker, not an unreaped zombie)."""
            found = []
            for c in parent.children():
                try:
                    if c.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(c.cmdline()):
                        found.append(c.pid)
                except psutil.Error:
                    continue
            return sorted(found)

        async def two_workers() -> bool:
            return len(workers()) == 2

        await eventually(two_workers, timeout=20)
        victim = workers()[0]
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            now = workers()
            return len(now) == 2 and victim not in now

        await eventually(replaced, timeout=10)
        async with aiohttp.ClientSession() as s:

            async def ready() -> bool:
                async with s.get(gw.url + "/readyz") as r:
                    return r.status == 200

            await eventually(ready, timeout=20)
        children = [psutil.Process(pid) for pid in workers()]
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive
