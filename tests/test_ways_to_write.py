"""A customer deflected to write in is told where: the provider's address, email and web form in
the deflection when configured; and /readyz and the start-up log say plainly when an enforced
restriction sends customers to write while none of those is configured."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest

from gateway.settings import Settings
from tests.factory import PHONE, Api, bearer
from tests.helpers import eventually, running

pytestmark = pytest.mark.asyncio

WRITTEN_ONLY_CALLER = "07700 900003"  # the demo's Aisha Rahman, under written_only


async def call(client: Any, keys: dict[str, str]) -> dict[str, Any]:
    resp = await client.post(
        "/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": WRITTEN_ONLY_CALLER}
    )
    assert resp.status == 201, await resp.text()
    decision: dict[str, Any] = await resp.json()
    return decision


async def test_nowhere_to_write_is_said_at_start_up_and_by_readyz(
    settings: Settings, conn: asyncpg.Connection, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.runtime")
    async with running(settings, conn) as (client, _):
        said = [r.getMessage() for r in caplog.records if "way to write" in r.getMessage()]
        assert len(said) == 1 and "1 no_personal_contact, 1 written_only" in said[0]
        assert "GATEWAY_PROVIDER_ADDRESS" in said[0]
        ready = await (await client.get("/readyz")).json()
        assert ready["ready"] is True and ready["warnings"] == said
        decision = await call(client, keys)
        assert decision["action"] == "deflect"
        assert decision["customer_message"].endswith("in writing. Please write to us.")


async def test_configured_ways_to_write_are_named_in_the_deflection(
    settings: Settings, conn: asyncpg.Connection, keys: dict[str, str]
) -> None:
    named = settings.with_(
        provider_name="Riverside Homes",
        provider_address="Riverside House\n1 Mill Lane\nLeeds\nLS1 4AB",
        provider_email="contact@riverside.example",
        provider_web_form_url="https://riverside.example/contact",
    )
    async with running(named, conn) as (client, _):
        assert (await (await client.get("/readyz")).json())["warnings"] == []
        message = (await call(client, keys))["customer_message"]
    assert message == (
        "We can only accept contact from you in writing. Please write to Riverside Homes, Riverside House, "
        "1 Mill Lane, Leeds, LS1 4AB, email contact@riverside.example or use the contact form at "
        "https://riverside.example/contact."
    )


async def test_the_warning_follows_the_restrictions(
    settings: Settings, conn: asyncpg.Connection, keys: dict[str, str]
) -> None:
    async with running(settings, conn, demo=False) as (client, _):

        async def warnings() -> list[str]:
            said: list[str] = (await (await client.get("/readyz")).json())["warnings"]
            return said

        assert await warnings() == []
        api = Api(client, keys)
        team = await api.team()
        cid = await api.customer("Aisha Rahman", PHONE)
        rid = (await api.restriction(cid, "written_only", deciders=team.deciders))["id"]

        async def warned() -> bool:
            return any("1 written_only" in w for w in await warnings())

        await eventually(warned)
        lifted = await client.post(f"/v1/restrictions/{rid}/lift", headers=team.scl.headers, json={"reason": "Better."})
        assert lifted.status == 200

        async def cleared() -> bool:
            return await warnings() == []

        await eventually(cleared)
