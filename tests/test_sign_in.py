"""Staff sign-in: a session belongs to one staff member and takes their role, ends on sign-out or
expiry; attempts are audited and held back after too many refusals; its cookie is HttpOnly, Secure
and SameSite=None; a cookie-authenticated write needs the page's CSRF token."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from playwright.async_api import Page

from tests.browser import PASSWORD, assert_accessible, base_url, give_password, screenshot, sign_in
from tests.factory import Api, Team


async def test_sign_in_page_is_accessible_and_a_wrong_password_is_refused(
    client: Any, api: Api, team: Team, page: Page, conn: asyncpg.Connection
) -> None:
    base = base_url(client)
    login = await give_password(api, team.agent)
    await page.goto(f"{base}/sign-in")
    await assert_accessible(page, "sign-in")
    await screenshot(page, "sign-in")
    await sign_in(page, base, login, "not the password at all")
    assert "/sign-in" in page.url
    await page.get_by_role("alert").wait_for()
    assert "not right" in await page.get_by_role("alert").inner_text()
    await screenshot(page, "sign-in-refused")
    await assert_accessible(page, "sign-in-refused")
    kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM staff_sign_in_events ORDER BY id")]
    assert kinds == ["password_set", "refused"]


async def test_a_session_cookie_is_httponly_secure_samesite_none(client: Any, api: Api, team: Team, page: Page) -> None:
    base = base_url(client)
    await sign_in(page, base, await give_password(api, team.agent), next_path="/sign-in")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["gw_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "None"
    assert "Signed in as Sam Patel" in await page.inner_text("header")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/sign-in?signed_out=1")
    assert "You have signed out." in await page.inner_text("main")
    assert "gw_session" not in {c["name"] for c in await page.context.cookies() if c["value"]}


async def test_repeated_refusals_hold_sign_in_back(client: Any, api: Api, team: Team, conn: asyncpg.Connection) -> None:
    login = await give_password(api, team.agent)
    token, cookie = await _form_token(client)
    for _ in range(5):
        r = await _post_sign_in(client, cookie, token, login, "wrong password!")
        assert r.status == 422
    r = await _post_sign_in(client, cookie, token, login, PASSWORD)  # right, but held back
    assert r.status == 429 and "Too many attempts" in await r.text()
    held = await conn.fetchval("SELECT count(*) FROM staff_sign_in_events WHERE kind = 'held_back'")
    assert held == 1


async def test_a_burst_of_guesses_at_once_gets_no_more_than_guesses_one_after_another(
    client: Any, api: Api, team: Team, conn: asyncpg.Connection
) -> None:
    login = await give_password(api, team.agent)
    forms = [await _form_token(client) for _ in range(15)]
    answers = await asyncio.gather(
        *(_post_sign_in(client, cookie, token, login, f"guess number {n}") for n, (token, cookie) in enumerate(forms))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses == [422] * 5 + [429] * 10  # 5 refusals a login; each attempt counts those before it
    kinds = dict(await conn.fetch("SELECT kind, count(*) FROM staff_sign_in_events GROUP BY kind"))
    assert kinds.get("refused", 0) == 5 and kinds.get("held_back", 0) == 10
    assert "checking" not in kinds  # every attempt came to something


async def test_sign_in_without_or_with_a_forged_csrf_token_is_refused(client: Any, api: Api, team: Team) -> None:
    login = await give_password(api, team.agent)
    token, cookie = await _form_token(client)
    assert (await _post_sign_in(client, cookie, "", login, PASSWORD)).status == 403
    assert (await _post_sign_in(client, cookie, "f" * 64, login, PASSWORD)).status == 403
    assert (await _post_sign_in(client, "another-cookie-value", token, login, PASSWORD)).status == 403
    assert (await _post_sign_in(client, cookie, token, login, PASSWORD)).status == 303


async def test_a_password_is_stored_hashed_and_needs_a_length(
    client: Any, api: Api, team: Team, conn: asyncpg.Connection
) -> None:
    await give_password(api, team.agent)
    stored = await conn.fetchval("SELECT hash FROM staff_passwords WHERE staff_id = $1", team.agent.id)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    r = await client.post(
        f"/v1/staff/{team.agent.id}/password",
        headers={"Authorization": f"Bearer {api.keys['admin']}"},
        json={"password": "short"},
    )
    assert r.status == 422
    r = await client.post(
        f"/v1/staff/{team.agent.id}/password", headers=team.agent.headers, json={"password": PASSWORD}
    )
    assert r.status == 403


async def _form_token(client: Any) -> tuple[str, str]:
    r = await client.get("/sign-in")
    cookie = r.cookies["gw_form"].value
    html = await r.text()
    token = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return token, cookie


async def _post_sign_in(client: Any, cookie: str, token: str, login: str, password: str) -> Any:
    return await client.post(
        "/sign-in",
        data={"csrf_token": token, "mailbox": login, "password": password, "next": "/agent"},
        headers={"Cookie": f"gw_form={cookie}"},
        allow_redirects=False,
    )


async def test_a_post_that_is_not_a_form_is_refused_not_a_server_error(client: Any, api: Api, team: Team) -> None:
    broken = {"Content-Type": "multipart/form-data"}  # no boundary: nothing can be read
    for path in ("/sign-in", "/sign-out", "/contact", "/agent/incidents"):
        r = await client.post(path, data=b"\x00garbage", headers=broken, allow_redirects=False)
        assert r.status in (303, 403), (path, r.status)
    r = await client.post("/sign-in", data=b"x" * 5000, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 413


async def test_a_nul_in_a_form_field_is_refused_as_any_wrong_sign_in_not_a_server_error(
    client: Any, api: Api, team: Team
) -> None:
    token, cookie = await _form_token(client)
    wrong = await _post_sign_in(client, cookie, token, "nobody@example.com", "not the password")
    token, cookie = await _form_token(client)
    nul = await _post_sign_in(client, cookie, token, "nobody\x00@example.com", "not\x00the password")
    assert wrong.status != 500
    assert (nul.status, nul.headers.get("Location")) == (wrong.status, wrong.headers.get("Location"))


async def test_a_new_password_signs_out_every_browser(client: Any, api: Api, team: Team) -> None:
    login = await give_password(api, team.agent)
    token, cookie = await _form_token(client)
    r = await _post_sign_in(client, cookie, token, login, PASSWORD)
    session = {"Cookie": f"gw_session={r.cookies['gw_session'].value}"}
    assert (await client.get("/v1/banners?identifier=07700900001", headers=session)).status == 200
    await give_password(api, team.agent, "another long pass phrase")
    assert (await client.get("/v1/banners?identifier=07700900001", headers=session)).status == 401


async def test_another_sites_page_cannot_read_in_a_signed_in_name(
    client: Any, api: Api, team: Team, conn: asyncpg.Connection
) -> None:
    """The session cookie goes with a link from any site. Reading a restriction in full writes a
    'viewed' audit event with the reason given, in the reader's name: another site's link must not
    make one."""
    cid = await api.customer("Jo Rowe", ("phone", "07700 900444"))
    restriction = await api.restriction(cid, "written_only", deciders=team.deciders)
    token, cookie = await _form_token(client)
    r = await _post_sign_in(client, cookie, token, await give_password(api, team.cl1), PASSWORD)
    session = {"Cookie": f"gw_session={r.cookies['gw_session'].value}"}
    path = f"/v1/restrictions/{restriction['id']}"
    for elsewhere in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ):
        r = await client.get(path, params={"why": "forged elsewhere"}, headers={**session, **elsewhere})
        assert r.status == 403, elsewhere
    ours = await client.get(
        path, params={"why": "review meeting"}, headers={**session, "Sec-Fetch-Site": "same-origin"}
    )
    assert ours.status == 200, await ours.text()
    whys = await conn.fetch(
        "SELECT why FROM restriction_events WHERE restriction_id = $1 AND kind = 'viewed'", restriction["id"]
    )
    assert [w["why"] for w in whys] == ["review meeting"]
