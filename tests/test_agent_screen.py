"""The agent screen in a real browser: an agent signs in and a banner for a contact routed to them
through another gateway process appears within a second; the screen shows the banner and nothing
more; it works inside an iframe on a configured desktop origin and is refused on any other; an
incident referral lands with the caution leads; sessions keep to their role and expire."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import aiohttp
import asyncpg
from aiohttp import web
from playwright.async_api import Page

from gateway.settings import Settings
from tests.browser import PASSWORD, assert_accessible, base_url, give_password, screenshot, session_cookie, sign_in
from tests.factory import INCIDENT, REASONS, Api, Team, bearer
from tests.helpers import GatewayProcess, free_port, logged_contacts, running

PHONE = "07700 900444"


async def _named_contact_customer(api: Api, team: Team) -> int:
    """A customer whose contacts all go to the team's agent, Sam Patel (once this process knows)."""
    cid = await api.customer("Margaret Hughes", ("phone", PHONE))
    await api.restriction(cid, "named_contact", params={"staff_id": team.agent.id}, deciders=team.deciders)
    await api.enforced(cid, team.agent)
    return cid


async def test_a_banner_appears_within_a_second_of_a_contact_routed_through_another_process(
    client: Any, api: Api, team: Team, keys: dict[str, str], settings: Settings, page: Page
) -> None:
    await _named_contact_customer(api, team)
    base = base_url(client)
    await sign_in(page, base, await give_password(api, team.agent))
    assert page.url.endswith("/agent")
    await page.locator("#live-list[data-live=connected]").wait_for()
    await assert_accessible(page, "agent-waiting")
    async with GatewayProcess(settings) as other, aiohttp.ClientSession() as http:
        started = time.perf_counter()
        body = {"channel": "phone", "from": PHONE, "provider_id": "call-1"}
        async with http.post(other.url + "/v1/contacts", json=body, headers=bearer(keys["channel"])) as r:
            decided = await r.json()
        assert decided["target"] == {"type": "staff", "id": str(team.agent.id)}
        item = page.locator(".live__item--new")
        await item.wait_for(timeout=1000)
        seen = time.perf_counter() - started
    assert seen < 1.0
    text = await item.inner_text()
    assert "Named contact: Sam Patel handles all contact with this customer." in text
    assert "Restriction review date:" in text
    await screenshot(page, "agent-live-banner")
    await assert_accessible(page, "agent-live-banner")
    print(f"banner on screen {seen * 1000:.0f} ms after the other process was asked")


async def test_the_screen_shows_the_banner_and_nothing_more_and_takes_an_incident(
    client: Any, api: Api, team: Team, keys: dict[str, str], page: Page, conn: asyncpg.Connection
) -> None:
    cid = await _named_contact_customer(api, team)
    r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": PHONE})
    contact_id = (await r.json())["contact_id"]
    await logged_contacts(conn, "id = $1", contact_id)
    base = base_url(client)
    await sign_in(page, base, await give_password(api, team.agent), next_path=f"/agent?contact_id={contact_id}")
    main = await page.inner_text("main")
    assert (
        "Named contact: Sam Patel handles" in main and "Routed to: you (Sam Patel)" in main and "review date:" in main
    )
    assert REASONS not in main and INCIDENT not in main and "aggressive" not in main.lower()
    await screenshot(page, "agent-contact")
    await assert_accessible(page, "agent-contact")

    await page.get_by_text("Report an incident with this contact").click()
    await page.get_by_role("button", name="Send to the caution leads").click()
    await page.get_by_role("alert").wait_for()
    assert "Describe what happened" in await page.get_by_role("alert").inner_text()
    await screenshot(page, "agent-incident-error")
    await page.get_by_label("What happened").fill("Shouted at me and threatened to come to the office.")
    await page.get_by_role("button", name="Send to the caution leads").click()
    await page.get_by_text("Incident sent to the caution leads").wait_for()

    record = await (await client.get(f"/v1/customers/{cid}", headers=team.cl1.headers)).json()
    [referral] = record["incident_referrals"]
    assert referral["contact_id"] == contact_id and referral["referred_by_name"] == "Sam Patel"
    report = await (await client.get("/v1/reviews/due", headers=team.cl1.headers)).json()
    assert [r["what"] for r in report["incident_referrals"]] == ["Shouted at me and threatened to come to the office."]
    assert report["incident_referrals"][0]["customer_name"] == "Margaret Hughes"


async def test_incident_referrals_through_the_api(
    client: Any, api: Api, team: Team, keys: dict[str, str], conn: asyncpg.Connection
) -> None:
    cid = await _named_contact_customer(api, team)
    body = {"customer_id": cid, "happened_at": "2026-01-05T10:00:00+00:00", "what": "Threatened staff."}
    r = await client.post("/v1/incidents", headers=team.agent.headers, json=body)
    made = await r.json()
    assert r.status == 201 and made["referred_by"] == team.agent.id and made["customer_id"] == cid
    for headers in (bearer(keys["admin"]), team.cl1.headers, team.manager.headers):
        assert (await client.post("/v1/incidents", headers=headers, json=body)).status == 403
    bad = await client.post("/v1/incidents", headers=team.agent.headers, json={**body, "customer_id": None})
    assert bad.status == 422
    future = await client.post(
        "/v1/incidents", headers=team.agent.headers, json={**body, "happened_at": "2099-01-01T00:00:00Z"}
    )
    assert future.status == 422 and "future" in (await future.json())["error"]["message"]


async def test_a_session_keeps_to_its_role_and_needs_the_token_to_write(
    client: Any, api: Api, team: Team, conn: asyncpg.Connection
) -> None:
    agent = await session_cookie(client, await give_password(api, team.agent))
    assert (await client.get("/v1/banners?identifier=07700900444", headers=agent)).status == 200
    for path in ("/v1/reviews/due", "/v1/customers/1", "/v1/rulesets", "/v1/contacts?customer_id=1", "/v1/staff/1"):
        r = await client.get(path, headers=agent)
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden", path
    body = {"customer_id": await _named_contact_customer(api, team), "happened_at": "2026-01-05T10:00:00Z", "what": "x"}
    assert (await client.post("/v1/incidents", headers=agent, json=body)).status == 403  # no CSRF token
    forged = {**agent, "X-CSRF-Token": "0" * 64}
    assert (await client.post("/v1/incidents", headers=forged, json=body)).status == 403
    page = await client.get("/agent", headers=agent)
    token = (await page.text()).split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    good = await client.post("/v1/incidents", headers={**agent, "X-CSRF-Token": token}, json=body)
    assert good.status == 201
    cross = {**agent, "X-CSRF-Token": token, "Origin": "https://elsewhere.example"}
    assert (await client.post("/v1/incidents", headers=cross, json=body)).status == 403

    lead = await session_cookie(client, await give_password(api, team.cl1))
    r = await client.get("/agent", headers=lead)
    assert r.status == 403 and "You cannot use this page" in await r.text()
    assert (await client.get("/v1/reviews/due", headers=lead)).status == 200

    r = await client.get("/agent", allow_redirects=False)
    assert r.status == 303 and unquote(r.headers["Location"]) == "/sign-in?next=/agent"
    await conn.execute("UPDATE staff_sessions SET expires_at = now() - interval '1 second'")
    r = await client.get("/agent", headers=agent, allow_redirects=False)
    assert r.status == 303
    r = await client.get("/sign-in", headers=agent)
    assert "Your session has ended" in await r.text()


async def test_every_page_has_a_strict_policy(client: Any) -> None:
    for path in ("/contact", "/sign-in", "/healthz"):
        csp = (await client.get(path)).headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in (await client.get("/contact")).headers["Content-Security-Policy"]
    assert (await client.get("/contact")).headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'self'" in (await client.get("/sign-in")).headers["Content-Security-Policy"]


async def test_the_screen_in_an_iframe_on_an_allowed_origin_works_and_on_another_is_refused(
    settings: Settings, conn: asyncpg.Connection, keys: dict[str, str], page: Page
) -> None:
    desktop_port, other_port = free_port(), free_port()
    allowed = f"http://localhost:{desktop_port}"
    async with running(settings.with_(agent_frame_origins=(allowed,)), conn, demo=False) as (client, _):
        api = Api(client, keys)
        team = await api.team()
        await _named_contact_customer(api, team)
        base = base_url(client)
        login = await give_password(api, team.agent)
        await sign_in(page, base, login)  # signed in on its own too: a separate session
        screen = f"{base}/agent?identifier={PHONE.replace(' ', '')}"
        async with _desktop(desktop_port, screen), _desktop(other_port, screen):
            await page.goto(f"{allowed}/")
            frame = page.frame_locator("iframe")
            # The agent signs in inside the desktop: the session cookie is partitioned to it.
            await frame.get_by_label("Work email address").fill(login)
            await frame.get_by_label("Password").fill(PASSWORD)
            await frame.get_by_role("button", name="Sign in").click()
            await frame.get_by_text("Named contact: Sam Patel handles").wait_for()
            await frame.locator("#live-list[data-live=connected]").wait_for()
            await screenshot(page, "agent-in-desktop")

            refusals: list[str] = []
            page.on("console", lambda m: refusals.append(m.text))
            await page.goto(f"http://localhost:{other_port}/")
            await page.wait_for_timeout(500)
            assert await frame.get_by_text("Named contact").count() == 0
            assert any("frame-ancestors" in text for text in refusals), refusals
            await screenshot(page, "agent-in-another-site")


@asynccontextmanager
async def _desktop(port: int, screen: str) -> AsyncIterator[None]:
    """A contact-centre desktop on its own origin that embeds the agent screen."""
    html = (
        "<!DOCTYPE html><html lang='en'><head><title>Desktop</title></head><body><h1>Desktop</h1>"
        f"<iframe src='{screen}' title='Agent screen' width='1000' height='700'></iframe></body></html>"
    )

    async def home(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", home)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "localhost", port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()
