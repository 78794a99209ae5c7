"""The demo data set loads through the real lifecycle and shows every restriction kind working."""

from __future__ import annotations

from gateway.demo import load_demo
from gateway.rules.registry import KINDS
from tests.factory import bearer
from tests.helpers import eventually


async def test_demo_has_one_active_restriction_per_kind_and_decides(client, keys, conn):
    message = await load_demo(conn)
    assert "12 customers" in message
    kinds = {r["kind"] for r in await conn.fetch("SELECT kind FROM restrictions WHERE status = 'active'")}
    assert kinds == set(KINDS)
    assert await conn.fetchval("SELECT count(*) FROM restriction_events WHERE kind = 'activated'") == len(KINDS)
    assert "already present" in await load_demo(conn, only_if_empty=True)

    async def deflected() -> bool:
        r = await client.post(
            "/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": "07700 900003"}
        )
        return (await r.json())["action"] == "deflect"

    await eventually(deflected)
