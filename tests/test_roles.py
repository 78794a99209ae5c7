"""The role table, route by route, generated from the app's own table (ROUTE_ROLES): every route × every
caller (each key role, held by a staff member or a system; a person's key that belongs to no one;
no key; a bad key) gets what the table says: allowed, 401 or 403. The README's API table is the
same table, written for people."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import asyncpg

from gateway.auth import ROLES
from gateway.http import ROUTE_ROLES
from tests.factory import Team, bearer, insert_unowned_key
from tests.helpers import ROOT

Table = dict[tuple[str, str], frozenset[str] | None]


def route_table(client: Any) -> Table:
    table: Table = {}
    for route, roles in client.server.app[ROUTE_ROLES].items():
        info = route.resource.get_info()
        if route.method != "HEAD":
            table[(route.method, info.get("path") or info.get("formatter"))] = roles
    return table


def readme_table() -> Table:
    """The README's "API in brief" table: each row's endpoints (`METHOD /path`) and key roles; `admin`
    may call every endpoint but a step a person takes as themselves, and `none` is public."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The API in brief") :]
    section = section[: section.index("\n### ")]
    table: Table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        endpoints = re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/[^`?\s]*)", cells[0])
        said = set(re.findall(r"[a-z_]+", cells[1]))
        admin = set() if "themselves" in said else {"admin"}
        roles = None if "none" in said else frozenset(said & set(ROLES)) | admin
        table.update({(method, path): roles for method, path in endpoints})
    return table


async def test_the_readme_states_the_role_table_exactly(client: Any) -> None:
    assert readme_table() == route_table(client)


async def test_the_table_says_what_design_7_says(client: Any) -> None:
    table = route_table(client)
    for (method, path), roles in table.items():
        if roles is not None and "channel" in roles:
            assert (method, path) in {
                ("POST", "/v1/contacts"),
                ("POST", "/v1/channels/flat"),
                ("POST", "/v1/channels/email"),
                ("POST", "/v1/channels/webform"),
            }
    assert table[("GET", "/v1/banners")] == {"agent", "admin"}
    # An appeal is decided by a manager, in person; a caution lead may not. So is an equality note signed.
    assert table[("POST", "/v1/restrictions/{id}/appeal/decision")] == {"manager"}
    assert table[("POST", "/v1/restrictions/{id}/equality-note/sign")] == {"manager"}
    assert table[("GET", "/v1/restrictions/{id}")] == {"caution_lead", "manager", "admin"}
    steps = [p for m, p in table if m == "POST" and p.startswith("/v1/restrictions")]
    assert len(steps) == 12 and all("admin" not in (table[("POST", p)] or ()) for p in steps)


def _routes(table: Table) -> Iterator[tuple[str, str, str, frozenset[str]]]:
    for (method, path), roles in table.items():
        if roles is not None:
            yield method, path, re.sub(r"{[^}]+}", "1", path), roles


async def _status(client: Any, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    headers = {**headers, "Content-Type": "application/json"}
    async with client.request(method, path, headers=headers, data="{}") as r:
        # A live stream that was let in is answered with its headers; its body never ends.
        body = "" if r.content_type == "text/event-stream" else await r.text()
        return r.status, body


async def test_every_route_for_every_caller(client: Any, keys: dict[str, str], team: Team, conn: asyncpg.Connection):
    # Each key role as held by whoever holds it: a system, or a staff member of each staff role.
    held = [
        ("channel", bearer(keys["channel"])),
        ("admin", bearer(keys["admin"])),
        ("agent", team.agent.headers),
        ("caution_lead", team.cl1.headers),
        ("caution_lead", team.scl.headers),
        ("manager", team.manager.headers),
        ("manager", team.senior.headers),
    ]
    unowned = [(role, bearer(await insert_unowned_key(conn, role))) for role in ("agent", "caution_lead", "manager")]
    checked = 0
    for method, template, path, allowed in _routes(route_table(client)):
        for headers in ({}, bearer("gwk_not-a-real-key"), {"Authorization": "Basic abc"}):
            status, body = await _status(client, method, path, headers)
            assert status == 401 and '"unauthorized"' in body, (method, template, status)
        for role, headers in held:
            status, body = await _status(client, method, path, headers)
            if role in allowed:
                assert status not in (401, 403) and status < 500, (method, template, role, status, body)
            else:
                assert status == 403 and '"forbidden"' in body, (method, template, role, status)
        for role, headers in unowned:  # may read what its role may read, and do nothing else
            status, _ = await _status(client, method, path, headers)
            reads = role in allowed and method == "GET"
            assert (status not in (401, 403)) if reads else status == 403, (method, template, role, status)
            checked += 1
    assert checked >= 3 * 25


async def test_a_revoked_key_is_refused(client: Any, team: Team, conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE staff_id = $1", team.agent.id)
    r = await client.get("/v1/banners?customer_id=1", headers=team.agent.headers)
    assert r.status == 401


async def test_public_operations_endpoints(client: Any) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": "ok", "cache": "ok", "index": "ok"}
    metrics = await client.get("/metrics")
    assert "gateway_decisions_total" in await metrics.text()
    spec = await (await client.get("/v1/openapi.json")).json()
    assert "/v1/contacts" in spec["paths"] and "InboundContact" in spec["components"]["schemas"]
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == set(route_table(client))
    body = spec["paths"]["/v1/restrictions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].rsplit("/", 1)[1] in spec["components"]["schemas"]


async def test_keys_are_stored_hashed(keys: dict[str, str], team: Team, conn: asyncpg.Connection) -> None:
    stored = await conn.fetch("SELECT hash FROM api_keys")
    assert len(stored) == len(keys) + 7
    for key in [*keys.values(), team.scl.key, team.agent.key]:
        assert all(key.encode() not in bytes(r["hash"]) for r in stored)
