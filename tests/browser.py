"""Browser tests in headless Chromium (Debian's, installed by tools/install-test-peers) driven by
Playwright: a browser for the session, a fresh context (its own cookies) per test, screenshots kept
under test-artefacts/, and an axe-core check that fails on serious or critical violations.

Pages under test are served by the `client` fixture's real HTTP server (`base_url`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.factory import Member
from tests.helpers import ROOT

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = ROOT / "test-artefacts"
PASSWORD = "correct horse battery staple"
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (tools/install-test-peers)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--lang=en-GB"])
        yield b
        await b.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1024, "height": 800}, locale="en-GB")
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    p = await context.new_page()
    p.set_default_timeout(5_000)
    yield p


def base_url(client: Any) -> str:
    """The test server's address, as a browser reaches it."""
    return str(client.make_url("")).rstrip("/")


async def screenshot(page: Page, name: str) -> Path:
    """Keep what the page looks like now: test-artefacts/<name>.png (the whole page)."""
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def assert_accessible(page: Page, name: str) -> None:
    """axe-core on the page as it is now: no serious or critical violation (the report is kept)."""
    results = await Axe().run(page)
    ARTEFACTS.mkdir(exist_ok=True)
    (ARTEFACTS / f"{name}.axe.txt").write_text(results.generate_report())
    bad = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
    assert not bad, "\n".join(f"{v['impact']}: {v['id']}: {v['help']} ({len(v['nodes'])} nodes)" for v in bad)


async def give_password(api: Any, member: Member, password: str = PASSWORD) -> str:
    """An admin sets `member`'s password; their login (their mailbox)."""
    r = await api.client.post(
        f"/v1/staff/{member.id}/password",
        headers={"Authorization": f"Bearer {api.keys['admin']}"},
        json={"password": password},
    )
    assert r.status == 200, await r.text()
    return str((await r.json())["login"])


async def session_cookie(client: Any, login: str) -> dict[str, str]:
    """A signed-in browser's cookie, got through the sign-in form."""
    r = await client.get("/sign-in")
    form_cookie = r.cookies["gw_form"].value
    token = (await r.text()).split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = await client.post(
        "/sign-in",
        data={"csrf_token": token, "mailbox": login, "password": PASSWORD, "next": "/agent"},
        headers={"Cookie": f"gw_form={form_cookie}"},
        allow_redirects=False,
    )
    assert r.status == 303, await r.text()
    return {"Cookie": f"gw_session={r.cookies['gw_session'].value}"}


async def sign_in(page: Page, base: str, login: str, password: str = PASSWORD, next_path: str = "/agent") -> None:
    """Sign in through the sign-in page, as a person would."""
    await page.goto(f"{base}/sign-in?next={next_path}")
    await page.get_by_label("Work email address").fill(login)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
