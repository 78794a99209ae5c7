"""The housing-system CSV import as each customer's current truth: identifiers not in the row are
unlinked, adjustments replaced, an absent column left alone; changes reported per row; a dry run."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp
import pytest

from tests.factory import Api, Team, bearer
from tests.helpers import GatewayProcess, eventually, run_cli

HEADER = "external_ref,name,phones,emails,web_account,adjustments,adjustment_flags\n"


async def _call(client: Any, keys: dict[str, str], number: str) -> dict[str, Any]:
    r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": number})
    assert r.status == 201, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def test_a_row_is_the_customers_current_truth(api: Api, team: Team, conn):
    await api.import_csv(
        HEADER + "HMS-1,Ann Jones,07700 900001;07700 900002,ann@x.org,,Large print,needs_large_print\n"
    )
    report = await api.import_csv(HEADER + "HMS-1,Ann Jones,07700 900002,,,Cannot read or write,cannot_write\n")
    (change,) = report["changes"]
    assert change["line"] == 2 and not change["created"]
    assert change["identifiers_removed"] == ["email:ann@x.org", "phone:+447700900001"]
    assert change["identifiers_added"] == []
    assert change["adjustments"]["after"] == {"text": "Cannot read or write", "flags": ["cannot_write"]}
    cid = change["customer_id"]
    got = await (await api.client.get(f"/v1/customers/{cid}", headers=team.cl1.headers)).json()
    assert got["identifiers"] == [{"kind": "phone", "value": "+447700900002"}]
    assert got["adjustments"] == {"text": "Cannot read or write", "flags": ["cannot_write"]}
    kinds = await conn.fetch("SELECT kind, actor FROM customer_events WHERE customer_id = $1 ORDER BY id", cid)
    assert [k["kind"] for k in kinds] == ["imported", "imported"]


async def test_an_absent_column_is_left_alone(api: Api, team: Team):
    await api.import_csv(HEADER + "HMS-1,Ann Jones,07700 900001,ann@x.org,,Large print,needs_large_print\n")
    report = await api.import_csv("external_ref,name,phones\nHMS-1,Ann Jones,07700 900003\n")
    (change,) = report["changes"]
    assert change["identifiers_added"] == ["phone:+447700900003"]
    assert change["identifiers_removed"] == ["phone:+447700900001"] and "adjustments" not in change
    got = await (await api.client.get(f"/v1/customers/{change['customer_id']}", headers=team.cl1.headers)).json()
    assert {"kind": "email", "value": "ann@x.org"} in got["identifiers"]
    assert got["adjustments"] == {"text": "Large print", "flags": ["needs_large_print"]}
    # Only the flags column: the text stays.
    await api.import_csv("external_ref,name,adjustment_flags\nHMS-1,Ann Jones,\n")
    got = await (await api.client.get(f"/v1/customers/{change['customer_id']}", headers=team.cl1.headers)).json()
    assert got["adjustments"] == {"text": "Large print", "flags": []}


async def test_old_mac_line_endings_and_quoted_line_breaks_are_read_not_a_server_error(api: Api, team: Team):
    # Bare CR line endings, and an adjustments note written over two lines inside its quotes.
    text = HEADER.replace("\n", "\r") + 'HMS-7,Ann Jones,07700 900007,,,"Large print\rplease",\r'
    report = await api.import_csv(text)
    (change,) = report["changes"]
    got = await (await api.client.get(f"/v1/customers/{change['customer_id']}", headers=team.cl1.headers)).json()
    assert got["name"] == "Ann Jones" and got["adjustments"]["text"] == "Large print\rplease"


async def test_a_file_that_is_not_csv_gets_a_422_naming_the_line(api: Api):
    headers = {**bearer(api.keys["admin"]), "Content-Type": "text/csv"}
    text = 'external_ref,name\nHMS-1,"Ann\n'  # a quoted field that never ends
    r = await api.client.post("/v1/customers/import", headers=headers, data=text)
    body = await r.json()
    assert r.status in (400, 422) and "line" in body["error"]["message"], body


async def test_a_dry_run_reports_and_writes_nothing(api: Api, conn):
    await api.import_csv(HEADER + "HMS-1,Ann Jones,07700 900001,,,,\n")
    report = await api.import_csv(HEADER + "HMS-1,Ann Jones,07700 900009,,,,\nHMS-2,Bo,,,,,\n", dry_run=True)
    assert report["dry_run"] is True and (report["created"], report["updated"]) == (1, 1)
    assert report["changes"][0]["identifiers_removed"] == ["phone:+447700900001"]
    assert await conn.fetchval("SELECT count(*) FROM customers") == 1
    assert await conn.fetchval("SELECT value FROM identifiers") == "+447700900001"
    assert await conn.fetchval("SELECT count(*) FROM customer_events") == 1


async def test_cannot_write_from_the_import_flags_urgent_review_and_routes_the_call(client, keys, api: Api, team: Team):
    customer_id = await _imported(api, "HMS-100003,Jo Reed,07700 900001,jo@x.org,,,\n")
    report = await api.import_csv(HEADER + "HMS-100003,Jo Reed,07700 900001,jo@x.org,,,\n")
    assert report["unchanged"] == 1 and report["changes"] == []
    made = await api.restriction(customer_id, deciders=team.deciders, channels=["phone", "visit"])

    async def deflected() -> bool:
        return (await _call(client, keys, "07700 900001"))["action"] == "deflect"

    await eventually(deflected, timeout=1.0)
    report = await api.import_csv(HEADER + "HMS-100003,Jo Reed,07700 900001,,,Cannot read or write,cannot_write\n")
    (change,) = report["changes"]
    assert "no way in" in change["urgent_review"] and change["identifiers_removed"] == ["email:jo@x.org"]

    async def to_caution() -> bool:
        d = await _call(client, keys, "07700 900001")
        return d["action"] == "route" and d["target"] == {"type": "queue", "id": "caution"}

    await eventually(to_caution, timeout=1.0)
    d = await _call(client, keys, "07700 900001")
    assert d["flagged"] and "Urgent review" in d["banner"]["text"]
    due = await (await client.get("/v1/reviews/due", headers=team.cl1.headers)).json()
    assert due["items"][0]["restriction_id"] == made["id"]


async def _imported(api: Api, row: str) -> int:
    """A new customer from one row; their id."""
    (change,) = (await api.import_csv(HEADER + row))["changes"]
    assert change["created"]
    return int(change["customer_id"])


@pytest.mark.timeout(120)
async def test_a_removed_number_stops_matching_in_another_process_within_a_second(settings, keys):
    async with (
        GatewayProcess(settings) as a,
        GatewayProcess(settings) as b,
        aiohttp.ClientSession(base_url=a.url) as sa,
        aiohttp.ClientSession() as sb,
    ):
        api = Api(sa, keys)
        team = await api.team()
        cid = await _imported(api, "HMS-7,Al Moss,07700 900007;07700 900008,,,,\n")
        await api.restriction(cid, deciders=team.deciders)

        async def matched_by_b() -> bool:
            return await _matches(sb, b, keys, "07700 900007") == [cid]

        await eventually(matched_by_b, timeout=2.0)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await api.import_csv(HEADER + "HMS-7,Al Moss,07700 900008,,,,\n")

        async def gone_from_b() -> bool:
            return await _matches(sb, b, keys, "07700 900007") == []

        await eventually(gone_from_b, timeout=1.0)
        assert loop.time() - sent < 1.0


async def _matches(session: aiohttp.ClientSession, gw: GatewayProcess, keys: dict[str, str], number: str) -> list[int]:
    body = {"channel": "phone", "from": number}
    async with session.post(gw.url + "/v1/contacts", json=body, headers=bearer(keys["channel"])) as r:
        ids: list[int] = (await r.json())["matched"]["customer_ids"]
        return ids


async def test_cli_dry_run_prints_each_change(settings, tmp_path, api: Api):
    await api.import_csv(HEADER + "HMS-1,Ann Jones,07700 900001,,,,\n")
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "HMS-1,Ann Jones,07700 900002,,,,\n")
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    returncode, out, _ = await run_cli(env, "import", "--dry-run", str(path))
    text = out
    assert returncode == 0, text
    assert f"{path}:2: HMS-1: customer 1, +phone:+447700900002, -phone:+447700900001" in text
    assert "dry run, nothing written: 0 created, 1 updated, 0 rejected" in text
