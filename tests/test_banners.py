"""Agent banners: what to show for a caller now, least disclosure, and the live SSE push."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
from aiohttp.test_utils import TestServer

from gateway.api import banners
from gateway.app import create_app
from gateway.auth import hash_key
from tests.browser import give_password, session_cookie
from tests.factory import INCIDENT, REASONS, bearer
from tests.helpers import eventually


async def _cautioned_customer(api, team):
    cid = await api.customer("Lorraine", ("phone", "07700 900007"), ("email", "lbell@example.com"))
    note = {"note": "Do not visit alone: dog at the property."}
    r = await api.restriction(cid, "caution", params=note, deciders=team.deciders)
    return cid, r


async def test_banner_for_identifier_and_customer(client, api, team):
    agent = team.agent.headers
    cid, r = await _cautioned_customer(api, team)

    async def shown() -> bool:
        resp = await client.get("/v1/banners", params={"identifier": "07700 900007"}, headers=agent)
        return (await resp.json())["banner"] is not None

    await eventually(shown)
    by_phone = await (await client.get("/v1/banners", params={"identifier": "07700 900007"}, headers=agent)).json()
    by_id = await (await client.get("/v1/banners", params={"customer_id": cid}, headers=agent)).json()
    assert by_phone["banner"] == by_id["banner"]
    banner = by_phone["banner"]
    assert banner["severity"] == "danger" and "dog at the property" in banner["text"]
    assert banner["restriction_ids"] == [r["id"]] and banner["review_due"]
    text = json.dumps(by_phone)
    assert REASONS not in text and INCIDENT not in text  # no reasons, no incidents
    assert by_phone["restrictions"][0]["kind"] == "caution"


async def test_banner_errors(client, team):
    agent = team.agent.headers
    assert (await client.get("/v1/banners", headers=agent)).status == 422
    assert (await client.get("/v1/banners", params={"identifier": "not a handle"}, headers=agent)).status == 422
    assert (await client.get("/v1/banners", params={"customer_id": 999}, headers=agent)).status == 404
    nobody = await (await client.get("/v1/banners", params={"identifier": "07700 900999"}, headers=agent)).json()
    assert nobody == {"customer_ids": [], "banner": None, "restrictions": []}


async def test_banners_are_pushed_live_to_agent_screens(client, keys, api, team):
    agent = team.agent.headers
    await _cautioned_customer(api, team)
    stream = await client.get("/v1/banners/stream", headers=agent)
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert (await stream.content.readline()).startswith(b": connected")

    async def decide_until_banner() -> bool:
        r = await client.post(
            "/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": "07700 900007"}
        )
        return (await r.json())["banner"] is not None

    await eventually(decide_until_banner)
    lines = []
    async with asyncio.timeout(5):
        while not any(line.startswith("data:") for line in lines):
            lines.append((await stream.content.readline()).decode().strip())
    event = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
    assert event["banner"]["severity"] == "danger" and event["channel"] == "phone"
    stream.close()


async def test_a_stopping_gateway_ends_the_open_banner_streams(settings, team):
    """A stream would notice a gone client only at its next keep-alive (15 s, twice), and an agent
    screen left open would hold a stopping gateway until the server's shutdown timeout (60 s in the
    test server, 5 s as `serve` runs it): a gateway that stops ends its streams at once."""
    server = TestServer(create_app(settings))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as screen:  # an agent's browser
            stream = await screen.get(server.make_url("/v1/banners/stream"), headers=team.agent.headers)
            assert (await stream.content.readline()).startswith(b": connected")
            stopping = asyncio.create_task(server.close())
            with contextlib.suppress(aiohttp.ClientPayloadError):  # cut off rather than finished: ended all the same
                await asyncio.wait_for(stream.content.read(), timeout=10)
            await asyncio.wait_for(stopping, timeout=10)
    finally:
        await server.close()


async def _ended(stream: aiohttp.ClientResponse) -> list[str]:
    """The stream's lines until the gateway ends it (keep-alives included)."""
    lines = []
    async with asyncio.timeout(10):
        while line := await stream.content.readline():
            lines.append(line.decode().strip())
    return lines


async def test_a_stream_ends_when_its_key_is_revoked(client, api, team, conn, monkeypatch):
    """Checked once at the start, a stream would go on carrying every banner to a revoked key for as
    long as its connection stays open."""
    monkeypatch.setattr(banners, "RECHECK_SECONDS", 0.2)
    key = await api.key_of(team.agent.id)
    stream = await client.get("/v1/banners/stream", headers=bearer(key))
    assert (await stream.content.readline()).startswith(b": connected")
    await asyncio.sleep(0.5)  # rechecked meanwhile: the key still stands, the stream goes on
    assert not stream.content.at_eof()
    await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE hash = $1", hash_key(key))
    lines = await _ended(stream)
    assert "event: signed-out" in lines


async def test_a_stream_ends_when_its_session_ends(client, api, team, monkeypatch):
    """A new password signs the agent out of every browser, and so out of the banner stream too."""
    monkeypatch.setattr(banners, "RECHECK_SECONDS", 0.2)
    login = await give_password(api, team.agent)
    browser = await session_cookie(client, login)
    stream = await client.get("/v1/banners/stream", headers=browser)
    assert (await stream.content.readline()).startswith(b": connected")
    await asyncio.sleep(0.5)
    assert not stream.content.at_eof()
    await give_password(api, team.agent, "another long pass phrase")
    assert "event: signed-out" in await _ended(stream)
