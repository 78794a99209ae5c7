"""A household phone: a number a restricted customer shares with a customer who has no restriction.

The restriction still covers the call (DESIGN §2: the decision covers all of them), and the decision
says it was ambiguous, naming both, so the agent asks who is calling and the log shows both. The
index keeps this right as either customer gains or loses the number, and after a full load.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import date

import redis.asyncio as aioredis

from gateway import db
from gateway.identifiers import normalise
from gateway.index import IndexKeeper, RestrictionIndex
from tests.factory import bearer
from tests.helpers import eventually

HOME = "0113 496 0123"


@contextlib.asynccontextmanager
async def _keeper(settings) -> AsyncIterator[IndexKeeper]:
    """An index of its own and its keeper, loaded by the test (not started: no listening)."""
    pool = await db.create_pool(settings.database_url or "", min_size=1, max_size=2)
    redis = aioredis.from_url(settings.redis_url or "")
    try:
        yield IndexKeeper(RestrictionIndex(), pool, redis, settings.database_url or "", 3600, lambda: date.today())
    finally:
        await pool.close()
        await redis.aclose()


async def _call(client, keys) -> dict:
    r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": HOME})
    assert r.status == 201, await r.text()
    return await r.json()


async def test_a_number_shared_with_an_unrestricted_customer_is_ambiguous(client, api, team, keys, conn):
    rita = await api.customer("Rita Hall", ("phone", HOME))
    await api.restriction(rita, "caution", params={"note": "Raised voice at the door"}, deciders=team.deciders)
    sam = await api.customer("Sam Hall", ("phone", HOME), ("phone", "07700 900555"))

    async def ambiguous() -> bool:
        return (await _call(client, keys))["matched"]["ambiguous"]

    await eventually(ambiguous)
    d = await _call(client, keys)
    assert d["action"] == "route" and d["matched"]["customer_ids"] == [rita, sam]
    assert "Shared identifier: could be Rita Hall or Sam Hall" in d["banner"]["text"]
    assert "Rita Hall: " in d["banner"]["text"]  # whose restriction each line is
    (why,) = [r["because"] for r in d["reasons"] if r["id"] == "ambiguous"]
    assert "Sam Hall has none" in why
    row = await conn.fetchrow("SELECT ambiguous, customer_ids FROM contacts WHERE id = $1", uuid.UUID(d["contact_id"]))
    assert row["ambiguous"] is True and sorted(row["customer_ids"]) == [rita, sam]

    # Sam's subject-access export holds the call, but nothing of Rita's restriction nor her id.
    doc = await (await client.get(f"/v1/customers/{sam}/export", headers=team.cl1.headers)).json()
    (call,) = [c for c in doc["contacts"] if c["id"] == d["contact_id"]]
    assert call["customer_ids"] == [sam] and call["redacted"]
    assert not {"banner", "reasons", "customer_message", "target"} & set(call)
    doc = await (await client.get(f"/v1/customers/{rita}/export", headers=team.cl1.headers)).json()
    (call,) = [c for c in doc["contacts"] if c["id"] == d["contact_id"]]
    assert "Raised voice at the door" in call["banner"]["text"] and "redacted" not in call

    # Sam moves out and takes his own number only: the home number is Rita's alone again.
    await api.change_customer(team.cl1, sam, identifiers={"remove": [{"kind": "phone", "value": HOME}]})

    async def hers_alone() -> bool:
        return not (await _call(client, keys))["matched"]["ambiguous"]

    await eventually(hers_alone)
    d = await _call(client, keys)
    assert d["matched"]["customer_ids"] == [rita] and "Shared identifier" not in d["banner"]["text"]

    # He comes back: shared again, heard from his change alone (Rita's entry is not reloaded).
    await api.change_customer(team.cl1, sam, identifiers={"add": [{"kind": "phone", "value": HOME}]})
    await eventually(ambiguous)


async def test_a_full_load_finds_the_shared_number_and_a_number_nobody_restricted_shares_stays_plain(
    api, team, settings
):
    rita = await api.customer("Rita Hall", ("phone", HOME))
    await api.restriction(rita, "written_only", deciders=team.deciders)
    sam = await api.customer("Sam Hall", ("phone", HOME))
    await api.customer("Ann Lee", ("phone", "07700 900321"))
    await api.customer("Bob Lee", ("phone", "07700 900321"))
    async with _keeper(settings) as keeper:
        index = keeper.index
        await keeper.load_all()
        match = index.match("phone", normalise("phone", HOME))
        assert match.ambiguous and match.customer_ids == (rita, sam)
        assert match.shared_with == ((sam, "Sam Hall"),)
        # Two customers with no restriction sharing a number: nothing of theirs is in the index.
        lees = index.match("phone", normalise("phone", "07700 900321"))
        assert lees.bundles == () and lees.shared_with == () and not lees.ambiguous
        # Rita's restriction lifted (her entry reloaded on its own): the number reaches no one restricted.
        await keeper.pool.execute("UPDATE restrictions SET status = 'lifted' WHERE customer_id = $1", rita)
        await keeper.refresh_customers([rita])
        assert index.match("phone", normalise("phone", HOME)).customer_ids == ()


async def test_a_representative_s_number_other_customers_hold_reads_the_same_after_any_reload(
    api, team, settings, conn
):
    """What a number reaches does not depend on which customer was reloaded last: a representative
    of a restricted customer uses a number two other customers hold as their own. A full load does
    not call it ambiguous, and nor does a reload of one of those customers."""
    rita = await api.customer("Rita Hall", ("phone", "07700 900001"))
    await api.restriction(rita, "written_only", deciders=team.deciders)
    await api.change_customer(
        team.cl1,
        rita,
        representatives={
            "add": [
                {"name": "Ann Advocate", "relationship": "advocate", "identifiers": [{"kind": "phone", "value": HOME}]}
            ]
        },
    )
    ben = await api.customer("Ben Cole", ("phone", HOME))
    await api.customer("Cat Cole", ("phone", HOME))
    async with _keeper(settings) as keeper:
        index = keeper.index
        await keeper.load_all()
        full = index.match("phone", normalise("phone", HOME))
        assert full.representative_of == (rita,) and not full.ambiguous
        await keeper.refresh_customers([ben])
        assert index.match("phone", normalise("phone", HOME)) == full
