"""Rule-set storage: the default published by migration equals the code's DEFAULT_RULESET."""

from __future__ import annotations

from gateway.rules.default_ruleset import DEFAULT_RULESET
from tests.factory import bearer


async def test_default_ruleset_is_published_and_matches_the_code(client, team, conn):
    row = await conn.fetchrow("SELECT version, rules, tests, published FROM rulesets WHERE published")
    assert (row["version"], row["published"]) == (1, True)
    assert row["rules"] == DEFAULT_RULESET["rules"] and row["tests"] == DEFAULT_RULESET["tests"]
    listed = await (await client.get("/v1/rulesets", headers=team.manager.headers)).json()
    assert [(r["version"], r["published"]) for r in listed["rulesets"]] == [(1, True)]
    one = await client.get("/v1/rulesets/1", headers=team.manager.headers)
    assert (await one.json())["rules"][0]["id"] == "general"
    assert (await client.get("/v1/rulesets/99", headers=team.manager.headers)).status == 404


async def test_decisions_carry_the_published_version(client, keys):
    r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "visit", "from": ""})
    d = await r.json()
    assert d["ruleset_version"] == 1 and d["target"] == {"type": "queue", "id": "reception"}
