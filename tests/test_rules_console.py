"""The managers' rules console in headless Chromium: sign in as a manager, draft, an invalid edit
shown in place, a failing test case, fixed, the guardrail report, a simulation's impact over a
seeded history, publish (decisions follow), diff, roll back. Screenshots are kept under
test-artefacts/; axe-core finds no serious or critical violation on any page of the walk."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from playwright.async_api import Page

from tests.browser import assert_accessible, base_url, give_password, screenshot, sign_in
from tests.factory import Api, Team, bearer
from tests.test_rulesets_authoring import DAMP, VULNERABLE, _case, _seed_history, draft_body

pytestmark = pytest.mark.timeout(180)


def _yaml(*rules: dict[str, Any], tests: list[dict[str, Any]]) -> str:
    body = draft_body(*rules, tests=tests)
    return yaml.safe_dump({"rules": body["rules"], "tests": body["tests"]}, sort_keys=False)


async def _look(page: Page, name: str) -> None:
    await screenshot(page, name)
    await assert_accessible(page, name)


async def _target_now(client: Any, keys: dict[str, str]) -> str:
    body = {"channel": "email", "from": "omar@example.org", "subject": "Damp returns"}
    r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body)
    d = await r.json()
    return f"{d['target']['id']}@{d['ruleset_version']}"


async def test_a_manager_walks_the_rules_console(client: Any, api: Api, team: Team, keys: dict[str, str], page: Page):
    base = base_url(client)
    await api.customer("Vera Brown", ("email", "vera@example.org"), adjustments={"flags": ["vulnerable"]})
    await api.customer("Omar Said", ("email", "omar@example.org"))
    await _seed_history(client, keys)
    await sign_in(page, base, await give_password(api, team.manager), next_path="/manage/rules")
    assert page.url.endswith("/manage/rules")
    await page.get_by_role("heading", name="Routing rules").wait_for()
    await _look(page, "rules-1-list")

    await page.get_by_role("button", name="Start a draft").click()
    await page.wait_for_url("**/manage/rules/*?drafted=1")
    v = page.url.rsplit("/", 1)[-1].split("?")[0]
    await _look(page, "rules-2-draft")

    editor = page.get_by_label("Rules and test cases (YAML)")
    bad = copy.deepcopy(DAMP)
    bad["then"]["target"]["id"] = "Urgent Repairs!"
    await editor.fill(_yaml(bad, tests=[]))
    await page.get_by_role("button", name="Save draft").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "rules.6.then.target" in await alert.inner_text()
    assert "Value error" not in await alert.inner_text()  # the problem in words, not the parser's jargon
    assert "Urgent Repairs!" in await editor.input_value()  # the text is kept to fix
    await _look(page, "rules-3-invalid-edit")

    await editor.fill(_yaml(DAMP, tests=[_case("damp goes to urgent repairs", "Damp in hall", "repairs")]))
    await page.get_by_role("button", name="Save draft").click()
    await page.get_by_text("The draft is saved.").wait_for()
    await page.get_by_role("button", name="Run the tests").click()
    await page.get_by_role("heading", name="Test cases: 4 of 5 pass").wait_for()
    assert "target: expected queue repairs, got queue urgent-repairs" in await page.inner_text("main")
    await _look(page, "rules-4-test-fails")

    # Publishing is refused while a test case fails.
    await page.get_by_label("Why").fill("Damp is urgent")
    await page.get_by_role("button", name=f"Publish version {v}").click()
    await page.get_by_role("alert").wait_for()
    assert "must pass to publish" in await page.get_by_role("alert").inner_text()

    fixed = [_case("damp goes to urgent repairs", "Damp in hall", "urgent-repairs")]
    await page.get_by_label("Rules and test cases (YAML)").fill(_yaml(DAMP, VULNERABLE, tests=fixed))
    await page.get_by_role("button", name="Save draft").click()
    await page.get_by_role("button", name="Run the tests").click()
    await page.get_by_role("heading", name="Test cases: 5 of 5 pass").wait_for()
    await page.get_by_role("button", name="Check against restrictions").click()
    await page.get_by_role("heading", name="Where restrictions override these rules").wait_for()
    assert "written only on phone, visit" in await page.inner_text("main")
    await _look(page, "rules-5-guardrails")

    await page.get_by_label("Days of the contact log to replay").fill("7")
    await page.get_by_role("button", name="Simulate against version 1").click()
    await page.get_by_text("Would go differently").wait_for(timeout=60_000)
    main = await page.inner_text("main")
    assert "Customers affected\n2, of whom 1 has recorded reasonable adjustments" in main
    assert "route to queue email\troute to queue trained\t2\t1" in main
    assert "Omar Said (" in main and "Vera Brown (" in main
    await _look(page, "rules-6-simulation")

    await page.get_by_role("link", name=f"Back to version {v}").click()
    assert await _target_now(client, keys) == "email@1"
    await page.get_by_label("Why").fill("Damp is urgent (policy 12)")
    await page.get_by_role("button", name=f"Publish version {v}").click()
    await page.get_by_text("Published: every gateway process").wait_for()
    assert await _target_now(client, keys) == f"urgent-repairs@{v}"
    await _look(page, "rules-7-published")

    await page.goto(f"{base}/manage/rules")
    assert "Damp is urgent (policy 12)" in await page.inner_text("main")
    await page.get_by_label("From version", exact=True).select_option("1")
    await page.get_by_label("To version", exact=True).select_option(v)
    await page.get_by_role("button", name="Compare").click()
    await page.get_by_role("heading", name=f"Version 1 and version {v}, rule by rule").wait_for()
    assert "damp\tadded" in await page.inner_text("main")
    await _look(page, "rules-8-diff")

    await page.goto(f"{base}/manage/rules")
    await page.get_by_label("Go back to version").select_option("1")
    await page.locator("#rollback-reason").fill("Repairs team overwhelmed")
    await page.get_by_role("button", name="Roll back").click()
    await page.get_by_text("Rolled back: every gateway process").wait_for()
    assert await _target_now(client, keys) == "email@1"
    await _look(page, "rules-9-rolled-back")


async def test_the_console_is_for_managers_signed_in(client: Any, api: Api, team: Team, page: Page) -> None:
    base = base_url(client)
    r = await client.get("/manage/rules", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/sign-in?next=")
    await sign_in(page, base, await give_password(api, team.agent), next_path="/manage/rules")
    agent_sees = await page.request.get(f"{base}/manage/rules")
    assert agent_sees.status == 403 and "/manage/rules/drafts" not in await agent_sees.text()
    # A manager signed in, and a form that did not come from our page (its token is wrong): refused.
    await page.context.clear_cookies()
    await sign_in(page, base, await give_password(api, team.manager), next_path="/manage/rules")
    forged = await page.request.post(f"{base}/manage/rules/drafts", form={"csrf_token": "x"}, max_redirects=0)
    assert forged.status == 403 and "did not come from this website" in await forged.text()
    listed = await page.request.get(f"{base}/v1/rulesets")  # as the manager signed in
    assert listed.status == 200 and [v for v in (await listed.json())["rulesets"] if v["status"] == "draft"] == []


async def test_the_console_refuses_what_no_rule_set_can_hold_with_a_page_not_an_error(
    client: Any, api: Api, team: Team, page: Page
) -> None:
    base = base_url(client)
    await sign_in(page, base, await give_password(api, team.manager), next_path="/manage/rules")
    await page.get_by_role("button", name="Start a draft").click()
    await page.wait_for_url("**/manage/rules/*?drafted=1")
    v = page.url.rsplit("/", 1)[-1].split("?")[0]
    editor = page.get_by_label("Rules and test cases (YAML)")
    for text, shown in (
        ('rules: []\ntests: []\n"bad\\ud800key": 1\n', "bad\\ud800key"),  # a lone surrogate, in the path shown
        ("rules: []\ntests: []\nnote: !!binary AGFiYw==\n", "no JSON form"),  # bytes holding a NUL
    ):
        await editor.fill(text)
        async with page.expect_response(f"**/manage/rules/{v}") as saved:
            await page.get_by_role("button", name="Save draft").click()
        assert (await saved.value).status == 422
        assert shown in await page.get_by_role("alert").inner_text()
    too_long = "rules: []\ntests: []\n#" + "x" * 400_000 + "\n"
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = await page.request.post(f"{base}/manage/rules/{v}", form={"csrf_token": token or "", "rules": too_long})
    assert r.status == 413 and "longer than a rule set may be" in await r.text()


async def test_the_console_answers_a_missing_version_and_busy_simulations_with_pages(
    client: Any, api: Api, team: Team, page: Page, conn: Any
) -> None:
    base = base_url(client)
    await sign_in(page, base, await give_password(api, team.manager), next_path="/manage/rules/1")
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    for path, said in (
        ("/manage/rules/999/validate", "There is no rule set version 999."),
        ("/manage/rules/999/test", "There is no rule set version 999."),
        ("/manage/rules/999/simulate", "Rule set version 999 does not exist."),
    ):
        r = await page.request.post(base + path, form={"csrf_token": token, "days": "7"})
        assert r.status == 404 and r.headers["content-type"].startswith("text/html"), path
        assert said in await r.text(), path
    r = await page.request.get(f"{base}/manage/rules/abc")
    assert r.status == 404 and "There is no rule set version abc." in await r.text()
    r = await page.request.get(f"{base}/manage/rules/{'9' * 5000}")  # past what int() reads: still a page
    assert r.status == 404 and "There is no rule set version 9999" in await r.text()
    # Two simulations running already: the version's page says so, and the form is still there.
    for _ in range(2):
        await conn.execute(
            "INSERT INTO ruleset_simulations (version, against, params, created_by) VALUES (1, 1, '{}', 'test')"
        )
    await page.get_by_label("Days of the contact log to replay").fill("12")
    await page.get_by_label("As they stand now").check()
    async with page.expect_response("**/manage/rules/1/simulate") as asked:
        await page.get_by_role("button", name="Simulate against version 1").click()
    assert (await asked.value).status == 409
    assert "2 simulations are running already" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("Days of the contact log to replay").input_value() == "12"
    assert await page.get_by_label("As they stand now").is_checked()
    await _look(page, "rules-simulations-busy")
