"""Agent banners: what to show for a caller now, least disclosure, and the live SSE push."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
from aiohttp.test_utils import TestServer

from gateway.app import create_app
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
