"""Managers tune routing rules through the API: draft → invalid edit (422 with the path) → fixed →
a failing test case → fixed → a simulation over a seeded history → publish, followed by a second real
gateway process within 1 s → roll back. Plus who/when/why, diff, YAML, and what cannot change."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.rules.default_ruleset import DEFAULT_RULESET
from tests.factory import bearer
from tests.helpers import GatewayProcess, eventually

pytestmark = pytest.mark.timeout(180)

DAMP = {
    "id": "damp",
    "description": "Damp and mould reports go to urgent repairs",
    "when": {"channels": ["email", "web_form"], "subject_has": ["damp", "black mould"]},
    "then": {"target": {"type": "queue", "id": "urgent-repairs"}, "priority": 5},
}
VULNERABLE = {
    "id": "vulnerable",
    "description": "Vulnerable customers reach the trained team",
    "when": {"adjustments": ["vulnerable"]},
    "then": {"target": {"type": "queue", "id": "trained"}, "priority": 9},
}


def _case(name: str, subject: str, queue: str) -> dict[str, Any]:
    return {
        "name": name,
        "contact": {"channel": "email", "subject": subject},
        "situation": {"sender": "unmatched"},
        "expect": {"action": "route", "target": {"type": "queue", "id": queue}},
    }


def draft_body(*rules: dict[str, Any], tests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT_RULESET)
    return {"rules": data["rules"] + list(rules), "tests": data["tests"] + (tests or []), "note": "damp to repairs"}


async def _json(r: aiohttp.ClientResponse | Any, status: int) -> Any:
    assert r.status == status, await r.text()
    return await r.json()


async def _seed_history(client: Any, keys: dict[str, str]) -> None:
    """Emails over the last days, decided and logged as they came."""
    now = datetime.now(UTC)
    sent = [
        ("vera@example.org", "Damp in the bedroom", 2),
        ("vera@example.org", "RE: damp again", 1),
        ("omar@example.org", "Black mould in bathroom", 3),
        ("omar@example.org", "Rent statement", 2),
        ("stranger@example.org", "Dampers for the piano", 1),
        ("stranger@example.org", "Damp, from long ago", 40),
    ]
    for sender, subject, days_ago in sent:
        body = {
            "channel": "email",
            "from": sender,
            "subject": subject,
            "received_at": (now - timedelta(days=days_ago, minutes=5)).isoformat(),
        }
        await _json(await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body), 201)


async def _simulate(client: Any, headers: dict[str, str], version: int, **params: Any) -> dict[str, Any]:
    started = await _json(await client.post(f"/v1/rulesets/{version}/simulate", headers=headers, json=params), 202)
    seen: dict[str, Any] = {}

    async def done() -> bool:
        seen.update(await _json(await client.get(started["poll"], headers=headers), 200))
        return seen["status"] != "running"

    await eventually(done, timeout=60.0)
    assert seen["status"] == "done", seen
    return seen


async def test_a_manager_tunes_the_rules_from_draft_to_rollback(client, api, team, keys, settings):
    m = team.manager.headers
    vera = await api.customer("Vera Brown", ("email", "vera@example.org"), adjustments={"flags": ["vulnerable"]})
    omar = await api.customer("Omar Said", ("email", "omar@example.org"))
    await _seed_history(client, keys)

    draft = await _json(await client.post("/v1/rulesets", headers=m, json={"note": "damp"}), 201)
    v = draft["version"]
    assert (draft["status"], draft["based_on"], draft["rules"]) == ("draft", 1, DEFAULT_RULESET["rules"])

    bad = copy.deepcopy(DAMP)
    bad["then"]["target"]["id"] = "Urgent Repairs!"
    refused = await _json(await client.put(f"/v1/rulesets/{v}", headers=m, json=draft_body(bad)), 422)
    assert refused["error"]["details"][0]["field"] == "rules.6.then.target"
    assert "queue name" in refused["error"]["details"][0]["message"]

    wrong = [_case("damp goes to urgent repairs", "Damp in hall", "repairs")]
    text = yaml.safe_dump(draft_body(DAMP, tests=wrong), sort_keys=False)
    put = await client.put(f"/v1/rulesets/{v}", headers={**m, "Content-Type": "application/yaml"}, data=text)
    assert (await _json(put, 200))["rules"][-1]["id"] == "damp"

    tested = await _json(await client.post(f"/v1/rulesets/{v}/test", headers=m), 200)
    assert (tested["passed"], tested["failed"]) == (False, 1)
    [failure] = [r for r in tested["results"] if not r["passed"]]
    assert failure["problems"] == ["target: expected queue repairs, got queue urgent-repairs"]
    assert any(r["source"] == "rule" and r["id"] == "damp" for r in failure["reasons"])
    refused = await _json(await client.post(f"/v1/rulesets/{v}/publish", headers=m, json={"reason": "go"}), 409)
    assert refused["error"]["code"] == "tests_failed"

    fixed = [_case("damp goes to urgent repairs", "Damp in hall", "urgent-repairs")]
    await _json(await client.put(f"/v1/rulesets/{v}", headers=m, json=draft_body(DAMP, VULNERABLE, tests=fixed)), 200)
    assert (await _json(await client.post(f"/v1/rulesets/{v}/test", headers=m), 200))["passed"]

    checked = await _json(await client.post(f"/v1/rulesets/{v}/validate", headers=m), 200)
    guard = {g["rule"]: g for g in checked["guardrails"]}
    by_kind = {o["kind"]: o for o in guard["damp"]["overridden_by"]}
    assert by_kind["closed_issue"]["channels"] == ["email", "web_form"]
    assert "written_only" not in by_kind  # emails are what written-only allows
    vulnerable = {o["kind"]: o for o in guard["vulnerable"]["overridden_by"]}
    assert {"phone", "visit"} <= set(vulnerable["written_only"]["channels"])

    sim = (await _simulate(client, m, v, days=7))["result"]
    assert (sim["version"], sim["against"], sim["contacts"]) == (v, 1, 5)
    changes = {(c["from"]["target"], c["to"]["target"]): c for c in sim["changes"]}
    assert changes[("queue email", "queue trained")]["contacts"] == 2  # Vera: vulnerable wins, later rule
    assert changes[("queue email", "queue urgent-repairs")]["contacts"] == 1  # Omar's black mould
    assert sim["changed"] == 3 and sim["customers_affected"] == 2 and sim["customers_with_adjustments"] == 1
    assert {c["id"]: c["adjustments"] for c in sim["customers"]} == {vera: ["vulnerable"], omar: []}
    example = next(e for e in sim["examples"] if e["customer_ids"] == [omar])
    assert example["published"]["ruleset_version"] == 1 and example["draft"]["ruleset_version"] == v
    assert {"email", "damp"} <= {r["id"] for r in example["draft"]["reasons"] if r["source"] == "rule"}

    async with GatewayProcess(settings) as other, aiohttp.ClientSession() as s:

        async def target_via_other(sender: str = "omar@example.org") -> str:
            body = {"channel": "email", "from": sender, "subject": "Damp returns"}
            async with s.post(other.url + "/v1/contacts", json=body, headers=bearer(keys["channel"])) as r:
                d = await _json(r, 201)
                return f"{d['target']['id']}@{d['ruleset_version']}"

        assert await target_via_other() == "email@1"
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        done = await _json(
            await client.post(f"/v1/rulesets/{v}/publish", headers=m, json={"reason": "Damp is urgent (policy 12)"}),
            200,
        )
        assert (done["version"], done["previous"]) == (v, 1)

        async def follows(expected: str) -> bool:
            return await target_via_other() == expected

        await eventually(lambda: follows(f"urgent-repairs@{v}"), timeout=1.0)
        assert loop.time() - t0 < 1.0
        # Vera has no restriction: the index knows her only by her recorded flag, and the rule sees it.
        assert await target_via_other("vera@example.org") == f"trained@{v}"

        listed = {r["version"]: r for r in (await _json(await client.get("/v1/rulesets", headers=m), 200))["rulesets"]}
        assert (listed[v]["status"], listed[1]["status"]) == ("published", "retired")
        assert listed[v]["last_published"]["actor"] == f"staff:{team.manager.id}:{team.manager.name}"
        assert listed[v]["last_published"]["why"] == "Damp is urgent (policy 12)"

        diff = await _json(await client.get(f"/v1/rulesets/diff?from=1&to={v}", headers=m), 200)
        assert [(r["id"], r["change"]) for r in diff["rules"] if r["change"] != "same"] == [
            ("damp", "added"),
            ("vulnerable", "added"),
        ]
        assert diff["tests"]["added"] == ["damp goes to urgent repairs"]

        t0 = loop.time()
        back = {"version": 1, "reason": "Repairs team overwhelmed"}
        await _json(await client.post("/v1/rulesets/rollback", headers=m, json=back), 200)
        await eventually(lambda: follows("email@1"), timeout=1.0)
        assert loop.time() - t0 < 1.0

    history = (await _json(await client.get("/v1/rulesets/1", headers=m), 200))["history"]
    assert [(h["kind"], h["why"]) for h in history][-1] == ("rolled_back", "Repairs team overwhelmed")
    frozen = await client.put(f"/v1/rulesets/{v}", headers=m, json=draft_body())
    assert (await _json(frozen, 409))["error"]["code"] == "not_a_draft"
    again = await client.post(f"/v1/rulesets/{v}/publish", headers=m, json={"reason": "again"})
    assert (await _json(again, 409))["error"]["code"] == "not_a_draft"
    yaml_back = await client.get(f"/v1/rulesets/{v}?format=yaml", headers=m)
    assert yaml.safe_load(await yaml_back.text())["rules"][-1]["id"] == "vulnerable"


async def test_simulation_takes_restrictions_as_they_stood_or_as_they_stand(client, api, team, keys):
    """A restriction made today did not touch last week's calls; 'now' applies it to them anyway."""
    m = team.manager.headers
    walt = await api.customer("Walt Jones", ("phone", "07700 900123"))
    now = datetime.now(UTC)
    for days in (3, 2):
        body = {"channel": "phone", "from": "07700 900123", "received_at": (now - timedelta(days=days)).isoformat()}
        await _json(await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body), 201)
    await api.restriction(walt, "written_only", deciders=team.deciders)
    v = (await _json(await client.post("/v1/rulesets", headers=m, json={}), 201))["version"]
    phones = {
        "id": "phones",
        "description": "Calls go to the phone team",
        "when": {"channels": ["phone"]},
        "then": {"target": {"type": "queue", "id": "phone-team"}},
    }
    await _json(await client.put(f"/v1/rulesets/{v}", headers=m, json=draft_body(phones)), 200)

    then = (await _simulate(client, m, v, days=7))["result"]
    assert [(c["from"], c["to"], c["contacts"]) for c in then["changes"]] == [
        ({"action": "route", "target": "queue general"}, {"action": "route", "target": "queue phone-team"}, 2)
    ]
    assert [c["id"] for c in then["customers"]] == [walt]
    today = (await _simulate(client, m, v, days=7, restrictions="now"))["result"]
    assert (today["contacts"], today["changed"], today["changes"]) == (2, 0, [])


async def test_simulation_sees_a_household_number_as_ambiguous_as_the_live_decision_does(client, api, team, keys):
    """Calls from a number a restricted customer shares with one who has none: a rule for ambiguous
    senders takes them in the replay too, and not the calls from a number only she holds."""
    m = team.manager.headers
    rita = await api.customer("Rita Hall", ("phone", "0113 496 0123"), ("phone", "07700 900124"))
    await api.customer("Sam Hall", ("phone", "0113 496 0123"))
    await api.restriction(rita, "appointment_only", deciders=team.deciders)
    check = {
        "id": "who-is-it",
        "description": "A shared number: the identity check team asks who is calling",
        "when": {"sender": ["ambiguous"]},
        "then": {"target": {"type": "queue", "id": "identity-check"}},
    }
    v = (await _json(await client.post("/v1/rulesets", headers=m, json={}), 201))["version"]
    await _json(await client.put(f"/v1/rulesets/{v}", headers=m, json=draft_body(check)), 200)
    now = datetime.now(UTC)
    for number in ("0113 496 0123", "07700 900124"):
        body = {"channel": "phone", "from": number, "received_at": (now - timedelta(hours=1)).isoformat()}
        await _json(await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body), 201)

    result = (await _simulate(client, m, v, days=1, restrictions="now"))["result"]
    assert [(c["from"]["target"], c["to"]["target"], c["contacts"]) for c in result["changes"]] == [
        ("queue general", "queue identity-check", 1)
    ]
    (example,) = result["examples"]
    assert any("Rita Hall and Sam Hall" in r["because"] for r in example["draft"]["reasons"])  # named, as live


async def test_edits_and_requests_that_cannot_be_used_are_refused_clearly(client, team, keys):
    m = team.manager.headers
    v = (await _json(await client.post("/v1/rulesets", headers=m, json={}), 201))["version"]
    yaml_headers = {**m, "Content-Type": "application/yaml"}
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nrules: [*b]\n"
    refused = await _json(await client.put(f"/v1/rulesets/{v}", headers=yaml_headers, data=bomb), 400)
    assert "aliases" in refused["error"]["message"]
    broken = await _json(await client.put(f"/v1/rulesets/{v}", headers=yaml_headers, data="rules: [\n"), 400)
    assert broken["error"]["code"] == "malformed_yaml"
    # YAML values JSON has no form for (here bytes holding a NUL) are refused, never stored or a 500.
    binary = "rules: []\ntests: []\nnote: !!binary AGFiYw==\n"
    nul = await _json(await client.put(f"/v1/rulesets/{v}", headers=yaml_headers, data=binary), 400)
    assert nul["error"]["code"] == "malformed_yaml" and "no JSON form" in nul["error"]["message"]
    extra = await _json(await client.put(f"/v1/rulesets/{v}", headers=m, json={**draft_body(), "colour": 1}), 422)
    assert extra["error"]["details"][0]["field"] == "colour"
    bad_when = draft_body({"id": "x", "description": "X", "when": {"subject_has": ["(.*)+"]}, "then": {}})
    shown = await _json(await client.post(f"/v1/rulesets/{v}/validate", headers=m, json=bad_when), 422)
    assert shown["error"]["details"][0]["field"] == "rules.6.when.subject_has"
    assert (await _json(await client.get("/v1/rulesets/diff?from=1", headers=m), 422))["error"]["details"][0][
        "field"
    ] == "to"
    assert (await client.post("/v1/rulesets/rollback", headers=m, json={"version": v, "reason": "x"})).status == 409
    assert (await client.post(f"/v1/rulesets/{v}/publish", headers=m, json={"reason": ""})).status == 422
    assert (await client.post("/v1/rulesets/999/simulate", headers=m, json={})).status == 404
    assert (await _json(await client.get(f"/v1/rulesets/{v}?format=toml", headers=m), 422))["error"]["details"][0][
        "field"
    ] == "format"
    admin = await client.post(f"/v1/rulesets/{v}/publish", headers=bearer(keys["admin"]), json={"reason": "x"})
    assert admin.status == 403  # a person publishes, as themselves


async def test_a_recorded_flag_reaches_the_rules_without_any_restriction(client, api, team, keys, conn):
    """The index links customers with adjustment flags: a flag recorded (or removed) on a customer with
    no restriction changes where the published rules send them, within a second."""
    m = team.manager.headers
    v = (await _json(await client.post("/v1/rulesets", headers=m, json={}), 201))["version"]
    await _json(await client.put(f"/v1/rulesets/{v}", headers=m, json=draft_body(VULNERABLE)), 200)
    await _json(await client.post(f"/v1/rulesets/{v}/publish", headers=m, json={"reason": "trained team"}), 200)
    ann = await api.customer("Ann Lee", ("phone", "07700 900456"))

    async def queue() -> str:
        body = {"channel": "phone", "from": "07700 900456"}
        d = await _json(await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body), 201)
        assert d["matched"]["customer_ids"] == []  # no restriction: the decision names no customer
        return str(d["target"]["id"])

    assert await queue() == "general"
    await api.change_customer(team.cl1, ann, adjustments={"text": "Recently bereaved", "flags": ["vulnerable"]})
    await eventually(lambda: _is(queue, "trained"), timeout=1.0)
    await api.change_customer(team.cl1, ann, adjustments={"text": "", "flags": []})
    await eventually(lambda: _is(queue, "general"), timeout=1.0)


async def _is(get: Any, expected: str) -> bool:
    return bool(await get() == expected)


async def test_only_two_simulations_run_at_once(client, team, conn):
    m = team.manager.headers
    for _ in range(2):
        await conn.execute(
            "INSERT INTO ruleset_simulations (version, against, params, created_by) VALUES (1, 1, '{}', 'test')"
        )
    busy = await _json(await client.post("/v1/rulesets/1/simulate", headers=m, json={}), 409)
    assert busy["error"]["code"] == "simulations_busy"
    await conn.execute("UPDATE ruleset_simulations SET created_at = now() - interval '2 hours'")
    assert (await client.post("/v1/rulesets/1/simulate", headers=m, json={})).status == 202


async def test_simulations_asked_for_at_once_take_the_free_places_only(client, team, conn):
    from gateway import authoring
    from gateway.appkeys import POOL, SETTINGS
    from gateway.decide.simulate import SimulationParams
    from gateway.errors import StateConflict

    # Four requests in step: without one lock around count-then-record, each counted none running
    # before any had recorded its job, and all four started.
    app = client.server.app
    params = SimulationParams.model_validate({})
    held = [await app[POOL].acquire() for _ in range(4)]  # connections ready, so the four run in step
    for c in held:
        await app[POOL].release(c)
    started = await asyncio.gather(
        *(authoring.start_simulation(app[POOL], app[SETTINGS], 1, params, "test") for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(s, int) for s in started) == 2
    assert sum(isinstance(s, StateConflict) for s in started) == 2
    assert await conn.fetchval("SELECT count(*) FROM ruleset_simulations") == 2


def test_the_stored_form_reads_back_as_the_same_rule_set():
    from gateway.authoring import as_yaml, stored_form
    from gateway.rules.ruleset import parse_ruleset
    from tests.rules.test_ruleset import NEW_CONDITIONS

    data = draft_body(DAMP, VULNERABLE, tests=[_case("damp", "Damp", "urgent-repairs")])
    data["tests"] += [{**_case("rep", "x", "general"), "situation": {"sender": "representative", "count": 3}}]
    for source in (DEFAULT_RULESET, NEW_CONDITIONS, {"version": 5, "rules": data["rules"], "tests": data["tests"]}):
        ruleset = parse_ruleset(source)
        stored = stored_form(ruleset)
        assert parse_ruleset({"version": ruleset.version, **stored}) == ruleset
        shown = yaml.safe_load(as_yaml({"version": ruleset.version, **stored}))
        assert parse_ruleset({"version": ruleset.version, **shown}) == ruleset
        assert "flag" not in str(shown["rules"][0])  # defaults are left out
