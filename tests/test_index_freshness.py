"""How a change reaches the in-memory restriction index: Redis and PostgreSQL messages on every
change, NOTIFY alone when Redis is down, and a full resync when the provider's day changes."""

from __future__ import annotations

import asyncio
from datetime import date

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from gateway import db
from gateway.app import create_app
from gateway.identifiers import normalise
from gateway.index import IndexKeeper, RestrictionIndex
from gateway.rediskeys import INVALIDATE_CHANNEL
from tests.factory import Api, bearer, insert_customer, insert_restriction
from tests.helpers import eventually, free_port


async def test_changes_publish_invalidations(api, conn, settings):
    team = await api.team()
    cid = await api.customer("Margaret Hughes", ("phone", "07700 900001"))
    redis = aioredis.from_url(settings.redis_url or "")
    pubsub = redis.pubsub()
    await pubsub.subscribe(INVALIDATE_CHANNEL)
    heard: list[str] = []
    await conn.add_listener("gateway_invalidate", lambda *args: heard.append(args[3]))
    try:
        await api.restriction(cid, deciders=team.deciders)
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                break
        assert message is not None and message["data"] == str(cid).encode()
        await asyncio.sleep(0.05)
        assert str(cid) in heard
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def test_without_redis_changes_still_arrive_by_notify(settings, keys):
    channel = bearer(keys["channel"])
    no_redis = settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0", decide_deadline_ms=2000)
    async with TestClient(TestServer(create_app(no_redis))) as client:
        ready = await (await client.get("/readyz")).json()
        assert ready["checks"]["cache"].startswith("down")
        api = Api(client, keys)
        cid = await api.customer("Aisha", ("phone", "07700 900003"))
        await api.restriction(cid, "written_only", deciders=(await api.team()).deciders)

        async def enforced() -> bool:
            r = await client.post("/v1/contacts", headers=channel, json={"channel": "phone", "from": "07700 900003"})
            return (await r.json())["action"] == "deflect"

        assert await eventually(enforced, timeout=1.0) < 1.0


async def test_index_resyncs_when_the_local_day_changes(settings, conn):
    """A restriction that starts tomorrow is enforced from the first moments of tomorrow."""
    cid = await insert_customer(conn, "Aisha", ("phone", "07700 900003"))
    rid = await insert_restriction(conn, cid, {"kind": "written_only"}, valid_from=date(2026, 1, 2))
    days = iter([1, 1, 1, 2])  # the provider's day, each time the keeper asks: 1 January, then the 2nd
    index = RestrictionIndex()

    def restrictions_held() -> list[int]:
        match = index.match("phone", normalise("phone", "07700 900003"))
        return [r.id for bundle in match.bundles for r in bundle.restrictions]

    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    redis = aioredis.from_url(settings.redis_url)
    keeper = IndexKeeper(
        index, pool, redis, settings.database_url, 3600, lambda: date(2026, 1, next(days, 2)), day_check_seconds=0.05
    )
    try:
        await keeper.start()
        loaded = index.version
        assert restrictions_held() == []  # 1 January: not in force yet

        async def resynced() -> bool:
            return index.version > loaded

        await eventually(resynced, timeout=2)
        assert restrictions_held() == [rid]  # 2 January: in force
    finally:
        await keeper.close()
        await pool.close()
        await redis.aclose()


def test_a_case_is_found_by_id_while_its_customer_is_in_the_index_and_not_after():
    from gateway.rules.context import Bundle
    from gateway.store.index import Loaded
    from tests.rules.factories import CLOSED_CASE, CUSTOMER, OTHER_CASE

    index = RestrictionIndex()
    both = Bundle(CUSTOMER, (), (), (CLOSED_CASE, OTHER_CASE))
    index.replace_all(Loaded(bundles={CUSTOMER.id: both}), {}, frozenset())
    assert index.cases_by_id[CLOSED_CASE.id] is CLOSED_CASE and index.case("cmp-2000") is OTHER_CASE
    index.install(Loaded(bundles={CUSTOMER.id: Bundle(CUSTOMER, (), (), (OTHER_CASE,))}), [CUSTOMER.id])
    assert CLOSED_CASE.id not in index.cases_by_id and index.cases_by_id[OTHER_CASE.id] is OTHER_CASE
    index.install(Loaded(), [CUSTOMER.id])  # the customer's last restriction lifted
    assert index.cases_by_id == {} and index.cases_by_ref == {}
