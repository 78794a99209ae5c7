"""Admin API: staff, customers with normalised identifiers, representatives, cases, CSV import."""

from __future__ import annotations

import io

import pytest

from tests.factory import bearer
from tests.helpers import run_cli

PHONE = {"kind": "phone", "value": "07700 900123"}


@pytest.fixture
def admin(keys):
    return bearer(keys["admin"])


async def test_create_customer(client, admin):
    body = {"name": "A", "identifiers": [{"kind": "phone", "value": "07700 900123"}]}
    r = await client.post("/v1/customers", json=body, headers=admin)
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["identifiers"] == [{"kind": "phone", "value": "+447700900123"}]


async def test_customer_round_trip_normalises_identifiers(client, admin):
    r = await client.post(
        "/v1/customers",
        headers=admin,
        json={
            "external_ref": "HMS-1",
            "name": "Jo Bloggs",
            "identifiers": [PHONE, {"kind": "email", "value": "Jo Bloggs <Jo.Bloggs@Example.COM>"}],
            "representatives": [
                {
                    "name": "Ann Advocate",
                    "relationship": "advocate",
                    "identifiers": [{"kind": "phone", "value": "+44 7700 900444"}],
                }
            ],
            "adjustments": {"text": "Large print", "flags": ["needs_large_print"]},
        },
    )
    assert r.status == 201, await r.text()
    created = await r.json()
    got = await (await client.get(f"/v1/customers/{created['id']}", headers=admin)).json()
    assert got["identifiers"] == [
        {"kind": "phone", "value": "+447700900123"},
        {"kind": "email", "value": "jo.bloggs@example.com"},
    ]
    assert got["representatives"][0]["identifiers"] == [{"kind": "phone", "value": "+447700900444"}]
    assert got["adjustments"] == {"text": "Large print", "flags": ["needs_large_print"]}


async def test_household_phone_may_reach_several_customers(client, admin):
    for name in ("A", "B"):
        r = await client.post("/v1/customers", headers=admin, json={"name": name, "identifiers": [PHONE]})
        assert r.status == 201


async def test_staff_and_cases(client, admin):
    r = await client.post(
        "/v1/staff",
        headers=admin,
        json={
            "name": "Sam",
            "role": "agent",
            "line": "01632 960106",
            "mailbox": "Sam@Example.org",
            "working_hours": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00"}],
        },
    )
    assert r.status == 201
    staff = await r.json()
    assert (staff["line"], staff["mailbox"]) == ("+441632960106", "sam@example.org")
    assert (await client.get(f"/v1/staff/{staff['id']}", headers=admin)).status == 200
    cust = await (await client.post("/v1/customers", headers=admin, json={"name": "C"})).json()
    r = await client.post(
        "/v1/cases", headers=admin, json={"customer_id": cust["id"], "reference": "CMP-1", "subject": "Damp"}
    )
    assert r.status == 201
    case = await r.json()
    r = await client.patch(f"/v1/cases/{case['id']}", headers=admin, json={"status": "exhausted"})
    assert r.status == 422  # closing needs the date it was closed
    assert (await r.json())["error"]["details"][0]["field"] == "closed_on"
    r = await client.patch(
        f"/v1/cases/{case['id']}", headers=admin, json={"status": "exhausted", "closed_on": "2026-10-01"}
    )
    assert r.status == 200 and (await r.json())["status"] == "exhausted"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "X", "identifiers": [{"kind": "phone", "value": "not a number"}]}, 422, "identifiers.0.value"),
        ({"name": "X", "identifiers": [{"kind": "email", "value": "nobody"}]}, 422, "identifiers.0.value"),
        ({"name": 12}, 422, "name"),
        ({"name": ""}, 422, "name"),
        ({"name": "X", "surprise": 1}, 422, "surprise"),
        ({"name": "X", "adjustments": {"flags": ["can_fly"]}}, 422, "adjustments.flags"),
        ({"name": "X", "identifiers": [PHONE, PHONE]}, 409, "identifiers.1.value"),
    ],
)
async def test_bad_customer_bodies(client, admin, body, status, field):
    r = await client.post("/v1/customers", headers=admin, json=body)
    assert r.status == status, await r.text()
    err = (await r.json())["error"]
    assert err["details"][0]["field"] == field
    assert err["message"]


async def test_malformed_json_is_400(client, admin):
    r = await client.post("/v1/customers", headers={**admin, "Content-Type": "application/json"}, data="{not json")
    assert r.status == 400
    assert (await r.json())["error"]["code"] == "malformed_json"


async def test_body_must_be_an_object(client, admin):
    r = await client.post("/v1/customers", headers=admin, json=[1, 2])
    assert r.status == 422


async def test_oversized_body_is_413(client, admin):
    r = await client.post(
        "/v1/customers",
        headers={**admin, "Content-Type": "application/json"},
        data=io.BytesIO(b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
    )
    assert r.status == 413
    assert (await r.json())["error"]["code"] == "too_large"


async def test_unknown_records_are_404(client, admin):
    for path in ("/v1/customers/999", "/v1/staff/999", "/v1/cases/999"):
        r = await client.get(path, headers=admin)
        assert r.status == 404, path
        assert (await r.json())["error"]["code"] == "not_found"
    r = await client.post("/v1/cases", headers=admin, json={"customer_id": 999, "reference": "X-1", "subject": "s"})
    assert r.status == 404
    assert (await client.get("/v1/customers/abc", headers=admin)).status == 422
    assert (await client.get("/v1/no-such-thing", headers=admin)).status == 404


async def test_duplicates_are_409(client, admin):
    body = {"external_ref": "HMS-9", "name": "A", "identifiers": [{"kind": "web", "value": "acct-1"}]}
    assert (await client.post("/v1/customers", headers=admin, json=body)).status == 201
    r = await client.post("/v1/customers", headers=admin, json=body)
    assert r.status == 409 and (await r.json())["error"]["details"][0]["field"] == "external_ref"
    r = await client.post("/v1/customers", headers=admin, json={**body, "external_ref": "HMS-10"})
    assert r.status == 409 and "web account" in (await r.json())["error"]["message"]


CSV = """external_ref,name,phones,emails,web_account,adjustments,adjustment_flags
HMS-1,Ann Jones,07700 900001;01632 960001,ann@example.com,,,
HMS-2,,07700 900002,,,,
HMS-3,Bob Smith,0770,,,,
HMS-4,Cat Lee,,cat@example,,,
HMS-5,Dan Roe,,,,Uses a wheelchair,needs_visit
HMS-6,Eve Fox,,,,,can_fly
"""


async def test_csv_import_keeps_good_rows_and_reports_bad_ones(client, admin, conn):
    r = await client.post("/v1/customers/import", headers={**admin, "Content-Type": "text/csv"}, data=CSV)
    assert r.status == 200, await r.text()
    report = await r.json()
    assert (report["created"], report["rejected"]) == (2, 4)
    assert [(e["line"], e["field"]) for e in report["errors"]] == [
        (3, "name"),
        (4, "phones"),
        (5, "emails"),
        (7, "adjustment_flags"),
    ]
    phones = await conn.fetch("SELECT value FROM identifiers WHERE kind = 'phone' ORDER BY value")
    assert [p["value"] for p in phones] == ["+441632960001", "+447700900001"]
    # Importing again changes nothing and duplicates nothing.
    again = await (
        await client.post("/v1/customers/import", headers={**admin, "Content-Type": "text/csv"}, data=CSV)
    ).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert await conn.fetchval("SELECT count(*) FROM customers") == 2


async def test_csv_without_required_columns_is_422(client, admin):
    r = await client.post(
        "/v1/customers/import", headers={**admin, "Content-Type": "text/csv"}, data="ref,fullname\n1,x\n"
    )
    assert r.status == 422
    assert "external_ref" in (await r.json())["error"]["message"]
    r = await client.post("/v1/customers/import", headers={**admin, "Content-Type": "application/json"}, data="{}")
    assert r.status == 400


async def test_cli_import_shows_progress_and_names_bad_rows(settings, tmp_path):
    import os

    path = tmp_path / "export.csv"
    path.write_text(CSV)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    returncode, out, err = await run_cli(env, "import", str(path))
    assert returncode == 1  # some rows were rejected
    assert "2 created, 0 updated, 4 rejected" in out
    assert f"{path}:3: name:" in err and "6/6 rows" in err
