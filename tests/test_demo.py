"""The demo data set loads through the real lifecycle and shows every restriction kind working."""

from __future__ import annotations

from gateway.demo import PROVIDER_SETTINGS, load_demo
from gateway.rules.registry import KINDS
from gateway.settings import Settings
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


async def test_demo_letters_look_as_they_would_in_production(settings, conn):
    """Every demo customer has a postal address, and `make run`'s provider settings are valid and
    name an address, an email and a web form for customers told to write."""
    await load_demo(conn)
    assert await conn.fetchval("SELECT count(*) FROM customers WHERE postcode IS NULL") == 0
    provider = Settings.from_env({**PROVIDER_SETTINGS}).provider()
    assert provider.name == "Demo Homes" and provider.can_be_written_to
    assert provider.address_lines() == ("Riverside House", "1 Mill Lane", "Leeds", "LS1 4AB")
    assert provider.phone and provider.email and provider.web_form_url
