"""The web form channel: the accessible form in a real browser (a validation error and its fix, the
acknowledgement, axe-core), the closed-issue wording, refusals (CSRF 403, oversize 413, rate limit
429) each logged, one contact per submission however often it is re-sent, and the JSON variant."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import asyncpg
from playwright.async_api import Page

from gateway.settings import Settings
from tests.browser import assert_accessible, base_url, screenshot
from tests.factory import Api, Team, bearer
from tests.helpers import logged_contacts, running

EMAIL = ("email", "margaret@example.org")


async def test_a_customer_fills_in_the_form_fixes_a_mistake_and_is_acknowledged(
    client: Any, page: Page, conn: asyncpg.Connection
) -> None:
    base = base_url(client)
    await page.goto(f"{base}/contact")
    await assert_accessible(page, "contact")
    await screenshot(page, "contact")

    await page.get_by_label("Email address").fill("margaret at example")
    await page.get_by_label("Your message").fill("The boiler has stopped working again.")
    await page.get_by_role("button", name="Send message").click()
    summary = page.get_by_role("alert")
    await summary.wait_for()
    assert await page.title() == "Error: Contact us – the housing team"
    links = summary.get_by_role("link")
    assert await links.all_inner_texts() == [
        "Enter your name",
        "Enter an email address in the correct format, like name@example.com",
    ]
    assert await page.get_by_label("Your message").input_value() == "The boiler has stopped working again."
    await assert_accessible(page, "contact-errors")
    await screenshot(page, "contact-errors")
    await links.nth(1).click()  # the summary's link takes you to the field
    assert await page.evaluate("document.activeElement.id") == "email"

    await page.get_by_label("Your name").fill("Margaret Hughes")
    await page.get_by_label("Email address").fill("margaret@example.org")
    await page.get_by_role("button", name="Send message").click()
    await page.get_by_role("heading", name="Message sent").wait_for()
    reference = (await page.locator(".reference").inner_text()).strip()
    assert "will reply using the contact details you gave" in await page.inner_text("main")
    await assert_accessible(page, "contact-sent")
    await screenshot(page, "contact-sent")

    rows = await logged_contacts(conn, "channel = 'web_form' AND status = 'decided'")
    assert [str(r["id"]) for r in rows] == [reference]
    assert rows[0]["sender"] == "margaret@example.org" and rows[0]["action"] == "route"
    refused = await logged_contacts(conn, "channel = 'web_form' AND status = 'malformed'")
    assert len(refused) == 1 and "name: Enter your name" in refused[0]["error"]


async def test_the_same_form_sent_twice_is_one_contact(client: Any, conn: asyncpg.Connection) -> None:
    form, cookie = await _fresh_form(client)
    body = {**form, "name": "Ann", "email": "ann@example.org", "message": "Hello"}
    first = await _post(client, body, cookie)
    again = await _post(client, body, cookie)
    assert first.status == again.status == 200
    assert _reference(await first.text()) == _reference(await again.text())
    assert len(await logged_contacts(conn, "channel = 'web_form'")) == 1


async def test_an_exhausted_complaint_gets_the_closed_issue_acknowledgement(
    client: Any, api: Api, team: Team, conn: asyncpg.Connection
) -> None:
    cid = await api.customer("Margaret Hughes", EMAIL)
    case_id = await api.case(cid, "CMP-77", "exhausted")
    await api.restriction(cid, "closed_issue", params={"case_id": case_id}, deciders=team.deciders)
    await api.enforced(cid, team.agent)
    form, cookie = await _fresh_form(client)
    body = {**form, "name": "Margaret Hughes", "email": "Margaret@example.org", "reference": "CMP-77"}
    r = await _post(client, {**body, "message": "I still do not accept the outcome."}, cookie)
    html = await r.text()
    assert r.status == 200 and "Message received" in html
    assert "It has been filed with case CMP-77, which is closed." in html
    row = (await logged_contacts(conn, "channel = 'web_form' AND status = 'decided'"))[0]
    assert row["action"] == "auto_acknowledge" and row["case_id"] == case_id
    # An unrelated message from the same customer is routed as usual.
    form, cookie = await _fresh_form(client)
    r = await _post(
        client, {**form, "name": "Margaret Hughes", "email": "margaret@example.org", "message": "Leak"}, cookie
    )
    assert "Message sent" in await r.text()


async def test_a_customer_who_may_only_write_is_welcome(
    client: Any, api: Api, team: Team, conn: asyncpg.Connection
) -> None:
    cid = await api.customer("Ken Adams", ("phone", "07700 900123"), EMAIL)
    await api.restriction(cid, "written_only", deciders=team.deciders)
    await api.enforced(cid, team.agent)
    form, cookie = await _fresh_form(client)
    r = await _post(client, {**form, "name": "Ken Adams", "phone": "07700 900123", "message": "Repair please"}, cookie)
    assert r.status == 200 and "Message sent" in await r.text()
    row = (await logged_contacts(conn, "channel = 'web_form' AND status = 'decided'"))[0]
    assert row["action"] == "route" and row["customer_ids"] == [cid]
    assert "Written contact only" in str(row["banner"])


async def test_refused_posts_get_their_page_and_are_logged(client: Any, conn: asyncpg.Connection) -> None:
    form, cookie = await _fresh_form(client)
    good = {**form, "name": "Ann", "email": "ann@example.org", "message": "Hello"}
    missing = await _post(client, {k: v for k, v in good.items() if k != "csrf_token"}, cookie)
    forged = await _post(client, {**good, "csrf_token": "0" * 64}, cookie)
    other_cookie = await _post(client, good, "someone-elses-form-cookie")
    cross_site = await _post(client, good, cookie, {"Origin": "https://attacker.example"})
    for r in (missing, forged, other_cookie, cross_site):
        assert r.status == 403 and "your message was not sent" in await r.text()
        assert r.headers["Content-Type"].startswith("text/html")
    big = await _post(client, {**good, "message": "x" * 70_000}, cookie)
    assert big.status == 413 and "Your message is too long" in await big.text()
    long_field = await _post(client, {**good, "message": "x" * 5001}, cookie)
    assert long_field.status == 422 and "Shorten this to 5,000 characters or fewer" in await long_field.text()
    many_fields = await _post(client, {**good, **{f"x{n}": "1" for n in range(30)}}, cookie)
    assert many_fields.status == 413 and "Your message is too long" in await many_fields.text()
    rows = await logged_contacts(conn, "channel = 'web_form' AND status IN ('rejected', 'malformed')")
    assert len(rows) == 7
    assert sum("CSRF" in r["error"] for r in rows) == 4 and sum("larger than" in r["error"] for r in rows) == 2


async def test_too_many_posts_from_one_address_get_429(settings: Settings, conn: asyncpg.Connection) -> None:
    async with running(settings.with_(webform_per_hour=2), conn, demo=False) as (client, _):
        form, cookie = await _fresh_form(client)
        for n in range(2):
            r = await _post(client, {**form, "name": "Ann", "email": "ann@example.org", "message": f"m{n}"}, cookie)
            assert r.status == 200
        r = await _post(client, {**form, "name": "Ann", "email": "ann@example.org", "message": "again"}, cookie)
        assert r.status == 429 and "wait an hour" in await r.text()
        rows = await logged_contacts(conn, "channel = 'web_form' AND status = 'rejected'")
        assert len(rows) == 1 and "rate limit" in rows[0]["error"]


async def test_behind_a_trusted_proxy_each_customer_has_their_own_limit(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    """Behind the provider's load balancer every post comes from its address: the limit is kept by the
    address it forwards (the nearest one it did not write itself), and a hop a client wrote itself on
    the left of the header gets it nothing. Without trusted proxies the header is not read at all."""
    local = (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    async with running(settings.with_(webform_per_hour=2, trusted_proxies=local), conn, demo=False) as (client, _):
        form, cookie = await _fresh_form(client)

        async def post(forwarded: str, message: str) -> int:
            fields = {**form, "name": "Ann", "email": "ann@example.org", "message": message}
            return (await _post(client, fields, cookie, {"X-Forwarded-For": forwarded})).status

        assert [await post("203.0.113.5", f"a{n}") for n in range(2)] == [200, 200]
        assert await post("198.51.100.7", "b0") == 200  # another customer, the same balancer
        assert await post("192.0.2.1, 203.0.113.5:4711", "a-spoofed") == 429  # its own hop; a port ignored
        rows = await logged_contacts(conn, "channel = 'web_form' AND status = 'rejected'")
        assert [r["error"] for r in rows] == ["web form rate limit from 203.0.113.5"]
    async with running(settings.with_(webform_per_hour=1), conn, demo=False) as (client, _):
        form, cookie = await _fresh_form(client)
        fields = {**form, "name": "Ann", "email": "ann@example.org", "message": "c0"}
        assert (await _post(client, fields, cookie, {"X-Forwarded-For": "203.0.113.9"})).status == 200
        fields["message"] = "c1"
        assert (await _post(client, fields, cookie, {"X-Forwarded-For": "203.0.113.10"})).status == 429


async def test_the_json_variant_for_a_portal(client: Any, keys: dict[str, str], team: Team, conn: asyncpg.Connection):
    body = {"name": "Ann", "email": "ann@example.org", "message": "Hello", "provider_id": "portal-1"}
    r = await client.post("/v1/channels/webform", headers=bearer(keys["channel"]), json=body)
    made = await r.json()
    assert r.status == 201 and made["action"] == "route" and made["reference"] == made["contact_id"]
    assert made["acknowledgement"].startswith("We have received your message")
    again = await client.post("/v1/channels/webform", headers=bearer(keys["channel"]), json=body)
    assert again.status == 200 and (await again.json())["contact_id"] == made["contact_id"]
    bad = await client.post("/v1/channels/webform", headers=bearer(keys["channel"]), json={"name": "Ann"})
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "invalid"
    agent = await client.post("/v1/channels/webform", headers=team.agent.headers, json=body)
    assert agent.status == 403
    rows = await logged_contacts(conn, "channel = 'web_form' AND status = 'malformed'")
    assert len(rows) == 1


async def _fresh_form(client: Any) -> tuple[dict[str, str], str]:
    r = await client.get("/contact")
    html = await r.text()
    fields = {
        name: html.split(f'name="{name}" value="', 1)[1].split('"', 1)[0] for name in ("csrf_token", "submission")
    }
    return fields, r.cookies["gw_form"].value


async def _post(client: Any, form: dict[str, str], cookie: str, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/contact", data=form, headers={"Cookie": f"gw_form={cookie}", **(headers or {})})


def _reference(html: str) -> str:
    return html.split('class="reference">', 1)[1].split("<", 1)[0]
