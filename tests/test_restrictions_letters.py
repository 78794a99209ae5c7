"""The letter telling a customer of a restriction: what it must say, in text and HTML, with the
customer's own words escaped and the provider's own addresses for an appeal."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import Settings
from tests.factory import PHONE, Api, Team, bearer

pytestmark = pytest.mark.asyncio


async def test_the_letter_reads_as_text_and_html(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    lead = team.cl1.headers
    resp = await client.get(f"/v1/restrictions/{rid}/letter?format=text", headers=lead)
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain"
    for needed in (
        "Housing Ombudsman",
        "appeal",
        "Margaret Hughes",
        "review it by",
        "aggressive, abusive",
        "in writing",
    ):
        assert needed in text
    resp = await client.get(f"/v1/restrictions/{rid}/letter", headers=lead)
    assert resp.content_type == "text/html" and "<h1>" in await resp.text()


async def test_letter_escapes_customer_text(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("<script>alert(1)</script> $reasons", PHONE)
    r = await api.restriction(
        cid,
        "named_contact",
        params={"staff_id": team.cl3.id},
        reasons="Said <b>this</b> & ${that}",
        deciders=team.deciders,
    )
    resp = await client.get(f"/v1/restrictions/{r['id']}/letter?format=json", headers=team.cl1.headers)
    letter = await resp.json()
    assert "<script>" not in letter["html"] and "&lt;script&gt;" in letter["html"]
    assert "Said &lt;b&gt;this&lt;/b&gt; &amp; ${that}" in letter["html"]
    assert "$reasons" in letter["text"] and "Ravi Kumar" in letter["text"]


async def test_letter_quotes_the_providers_own_addresses(settings: Settings, keys: dict[str, str]) -> None:
    named = settings.with_(
        provider_name="Riverside Homes",
        provider_address="1 River Street, Leeds LS1 1AA",
        provider_email="contact@riverside.example",
    )
    async with TestClient(TestServer(create_app(named))) as client:
        api = Api(client, keys)
        cid = await api.customer("Aisha", ("phone", "07700 900003"))
        r = await api.restriction(cid, "written_only", deciders=(await api.team()).deciders)
        letter = await client.get(
            f"/v1/restrictions/{r['id']}/letter",
            params={"format": "text", "why": "checking the letter"},
            headers=bearer(keys["admin"]),
        )
        text = await letter.text()
    assert "by letter to 1 River Street, Leeds LS1 1AA; or by email to contact@riverside.example" in text
    assert text.rstrip().endswith("Riverside Homes")
