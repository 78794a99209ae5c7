"""POST /v1/contacts end to end: contract, logging of every contact, idempotency, deadline."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from tests.factory import Api, bearer
from tests.helpers import eventually, free_port


@pytest.fixture
def channel(keys):
    return bearer(keys["channel"])


async def _decide(client, headers, **body):
    r = await client.post("/v1/contacts", headers=headers, json=body)
    return r.status, await r.json()


async def test_decision_has_the_contract_fields(client, channel, conn):
    status, d = await _decide(client, channel, channel="phone", **{"from": "07700 900999"})
    assert status == 201
    assert set(d) >= {
        "contact_id",
        "action",
        "target",
        "flagged",
        "banner",
        "customer_message",
        "matched",
        "reasons",
        "ruleset_version",
        "degraded",
    }
    assert (d["action"], d["target"], d["degraded"]) == ("route", {"type": "queue", "id": "general"}, False)
    assert d["matched"]["customer_ids"] == [] and d["ruleset_version"] == 1
    row = await conn.fetchrow("SELECT * FROM contacts WHERE id = $1", uuid.UUID(d["contact_id"]))
    assert (row["sender"], row["sender_kind"], row["action"]) == ("+447700900999", "phone", "route")


async def test_written_only_customer_is_deflected_then_lifted_everywhere(client, api, channel):
    team = await api.team()
    cid = await api.customer("Aisha", ("phone", "07700 900003"))
    r = await api.restriction(cid, "written_only", deciders=team.deciders)

    async def deflected() -> bool:
        return (await _decide(client, channel, channel="phone", **{"from": "+447700900003"}))[1]["action"] == "deflect"

    await eventually(deflected, timeout=1.0)
    _, d = await _decide(client, channel, channel="phone", **{"from": "07700 900003"})
    assert d["matched"]["customer_ids"] == [cid] and d["banner"]["restriction_ids"] == [r["id"]]
    assert "writing" in d["customer_message"]
    lift = await client.post(
        f"/v1/restrictions/{r['id']}/lift", headers=team.scl.headers, json={"reason": "Behaviour has improved."}
    )
    assert lift.status == 200, await lift.text()

    async def routed() -> bool:
        return (await _decide(client, channel, channel="phone", **{"from": "07700 900003"}))[1]["action"] == "route"

    await eventually(routed, timeout=1.0)


async def test_an_unknown_caller_acting_for_a_restricted_customer_is_held_to_the_restriction(client, api, channel):
    """The index answers a sender nobody is linked to at once, unless the contact names a customer it
    is made for: then that customer's restriction applies (an unregistered third party)."""
    team = await api.team()
    cid = await api.customer("Aisha", ("phone", "07700 900004"), external_ref="HMS-40")
    await api.restriction(cid, "written_only", deciders=team.deciders)
    await api.enforced(cid, team.agent)
    _, alone = await _decide(client, channel, channel="phone", **{"from": "07700 900555"})
    assert alone["action"] == "route" and alone["matched"]["customer_ids"] == []
    for named in ("HMS-40", "07700 900004"):
        _, acting = await _decide(client, channel, channel="phone", on_behalf_of=named, **{"from": "07700 900555"})
        assert acting["action"] == "deflect" and acting["matched"]["customer_ids"] == [cid], named


async def test_unknown_customer_contacts_are_still_attributed_in_the_log(client, api, channel, conn):
    cid = await api.customer("Plain", ("email", "plain@example.com"))
    _, d = await _decide(client, channel, channel="email", **{"from": "Plain <PLAIN@example.com>"}, subject="Hello")
    assert d["matched"]["customer_ids"] == []  # nobody restricted: decided without a lookup
    row = await conn.fetchrow("SELECT customer_ids FROM contacts WHERE id = $1", uuid.UUID(d["contact_id"]))
    assert row["customer_ids"] == [cid]


async def test_repeat_with_same_provider_id_gets_same_decision_and_one_row(client, channel, conn):
    body = {"channel": "phone", "from": "07700 900555", "provider_id": "CA-123"}
    s1, d1 = await _decide(client, channel, **body)
    s2, d2 = await _decide(client, channel, **body)
    assert (s1, s2) == (201, 200)
    assert d1 == d2
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'CA-123'") == 1


async def test_twenty_concurrent_identical_requests_give_one_row(client, channel, conn):
    body = {"channel": "phone", "from": "07700 900556", "provider_id": "CA-burst"}
    results = await asyncio.gather(*(_decide(client, channel, **body) for _ in range(20)))
    assert sorted(s for s, _ in results) == [200] * 19 + [201]
    assert len({d["contact_id"] for _, d in results}) == 1
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'CA-burst'") == 1


async def test_same_provider_id_on_another_channel_is_another_contact(client, channel, conn):
    await _decide(client, channel, channel="phone", **{"from": "07700 900557"}, provider_id="X-1")
    status, _ = await _decide(client, channel, channel="email", **{"from": "a@example.com"}, provider_id="X-1")
    assert status == 201
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'X-1'") == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"channel": "phone", "from": ', 400),
        ('{"channel": "pigeon", "from": "07700 900001"}', 422),
        ('{"channel": "phone", "from": 7700900001}', 422),
        ('{"channel": "phone", "received_at": "yesterday"}', 422),
        ('{"channel": "phone", "received_at": "2026-03-29T01:30:00"}', 422),  # no offset: ambiguous
        ('["phone"]', 422),
        # An email channel's verdict on RFC 3834 (here: "nothing against acknowledging"): a caller
        # who could set it would have the gateway mail any address it names.
        ('{"channel": "email", "from": "someone@example.com", "headers": {"no-ack": ""}}', 422),
    ],
)
async def test_malformed_contacts_are_refused_and_logged(client, channel, conn, body, status):
    r = await client.post("/v1/contacts", headers={**channel, "Content-Type": "application/json"}, data=body)
    assert r.status == status
    err = (await r.json())["error"]
    assert err["message"] and "Traceback" not in err["message"]
    rows = await conn.fetch("SELECT status, action, error FROM contacts")
    assert [(row["status"], row["action"]) for row in rows] == [("malformed", "hold")]
    assert rows[0]["error"]


async def test_withheld_number_is_never_matched(client, channel, conn):
    for raw in ("anonymous", "+266696687", "", "Restricted"):
        _, d = await _decide(client, channel, channel="phone", **{"from": raw})
        assert d["matched"]["withheld"] is True and d["action"] == "route"
    kinds = {r["sender_kind"] for r in await conn.fetch("SELECT sender_kind FROM contacts")}
    assert kinds == {"withheld"}


async def _limited_customer(settings, keys) -> int:
    """Made through an app of its own, so the app under test loads it at start-up."""
    async with TestClient(TestServer(create_app(settings))) as c:
        api = Api(c, keys)
        team = await api.team()
        cid = await api.customer("Gary", ("phone", "07700 900008"))
        await api.restriction(cid, "contact_limit", params={"limit": 2, "period": "day"}, deciders=team.deciders)
    return cid


async def test_redis_down_counts_contacts_from_the_log(settings, keys):
    await _limited_customer(settings, keys)
    no_redis = settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0", decide_deadline_ms=3000)
    async with TestClient(TestServer(create_app(no_redis))) as client:
        actions = [
            (await _decide(client, bearer(keys["channel"]), channel="phone", **{"from": "07700 900008"}))[1]
            for _ in range(3)
        ]
    assert [(d["action"], d["degraded"]) for d in actions] == [("route", False), ("route", False), ("deflect", False)]


@pytest.fixture
async def black_hole():
    """A TCP server that accepts connections and never answers: a hung dependency."""
    held = []

    async def hold(reader, writer):
        held.append(writer)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in held:
        w.close()
    server.close()


async def test_hung_redis_costs_little_and_the_database_decides(settings, keys, conn, black_hole):
    """A Redis that accepts connections and never answers: idempotency and contact counts fall back to
    the database after a small budget, so decisions stay correct and well inside the deadline."""
    await _limited_customer(settings, keys)
    hung = settings.with_(redis_url=f"redis://127.0.0.1:{black_hole}/0", decide_deadline_ms=500)
    async with TestClient(TestServer(create_app(hung))) as client:
        loop = asyncio.get_running_loop()
        decisions, slowest = [], 0.0
        for n in range(3):
            start = loop.time()
            r = await client.post(
                "/v1/contacts",
                headers=bearer(keys["channel"]),
                json={"channel": "phone", "from": "07700 900008", "provider_id": f"slow-{n}"},
            )
            slowest = max(slowest, loop.time() - start)
            decisions.append(await r.json())
    assert [(d["action"], d["degraded"]) for d in decisions] == [("route", False), ("route", False), ("deflect", False)]
    assert slowest < 0.5
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'slow-%'") == 3


async def test_nul_bytes_are_logged_not_lost(client, channel, conn):
    # Found by the property test: PostgreSQL text cannot hold NUL, so the log replaces it.
    status, d = await _decide(client, channel, channel="email", **{"from": "a\x00b"}, subject="x\x00y")
    assert status == 201
    row = await conn.fetchrow("SELECT sender_raw, subject FROM contacts WHERE id = $1", uuid.UUID(d["contact_id"]))
    assert (row["sender_raw"], row["subject"]) == ("a\ufffdb", "x\ufffdy")


async def test_reception_names_a_visitor_by_housing_reference(client, api, channel, conn):
    team = await api.team()
    cid = await api.customer("Sandra", ("phone", "07700 900005"), external_ref="HMS-100005")
    plain = await api.customer("Pat", external_ref="HMS-100006")
    await api.restriction(cid, "appointment_only", deciders=team.deciders)

    async def deflected() -> bool:
        return (await _decide(client, channel, channel="visit", **{"from": "hms-100005"}))[1]["action"] == "deflect"

    await eventually(deflected)
    _, with_appointment = await _decide(client, channel, channel="visit", **{"from": "HMS-100005"}, appointment=True)
    assert with_appointment["action"] == "route" and with_appointment["matched"]["customer_ids"] == [cid]
    _, other = await _decide(client, channel, channel="visit", **{"from": "HMS-100006"})
    assert other["action"] == "route" and other["matched"]["customer_ids"] == []
    row = await conn.fetchrow(
        "SELECT sender_kind, customer_ids FROM contacts WHERE id = $1", uuid.UUID(other["contact_id"])
    )
    assert (row["sender_kind"], row["customer_ids"]) == ("ref", [plain])


async def test_contact_log_for_a_customer_with_since(client, api, channel, team):
    cid = await api.customer("Jo", ("phone", "07700 900321"))
    old = {"channel": "phone", "from": "07700 900321", "received_at": "2026-01-05T10:00:00+00:00"}
    await _decide(client, channel, **old)
    await _decide(client, channel, channel="phone", **{"from": "07700 900321"})
    await _decide(client, channel, channel="phone", **{"from": "07700 900999"})  # someone else
    lead = team.cl1.headers
    everything = await (await client.get("/v1/contacts", params={"customer_id": cid}, headers=lead)).json()
    assert len(everything["contacts"]) == 2
    recent = await (
        await client.get("/v1/contacts", params={"customer_id": cid, "since": "2026-06-01"}, headers=lead)
    ).json()
    assert len(recent["contacts"]) == 1 and recent["contacts"][0]["sender"] == "+447700900321"
    bad = await client.get("/v1/contacts", params={"customer_id": cid, "since": "last week"}, headers=lead)
    assert bad.status == 422 and (await bad.json())["error"]["details"][0]["field"] == "since"


async def test_deeply_nested_json_is_a_400_and_logged(client, channel, conn):
    # Found in review: a RecursionError from the JSON parser came back as a 500.
    r = await client.post("/v1/contacts", headers={**channel, "Content-Type": "application/json"}, data="[" * 100_000)
    assert r.status == 400 and (await r.json())["error"]["code"] == "malformed_json"
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE status = 'malformed'") == 1


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-14:00", "2019-01-01T00:00:00+00:00"]
)
async def test_implausible_received_at_is_refused_and_logged(client, channel, conn, when):
    # Found in review: year 1 overflowed on the way to the log and the contact was not logged.
    status, body = await _decide(client, channel, channel="phone", **{"from": "07700 900001"}, received_at=when)
    assert status == 422 and body["error"]["details"][0]["field"] == "received_at"
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE status = 'malformed'") == 1


async def test_a_lone_surrogate_is_refused_and_still_logged(client, channel, conn):
    r = await client.post(
        "/v1/contacts",
        headers={**channel, "Content-Type": "application/json"},
        data='{"channel": "phone", "from": "\\ud800"}',
    )
    assert r.status == 422
    row = await conn.fetchrow("SELECT status, sender_raw FROM contacts")
    assert row["status"] == "malformed"


async def test_json_the_quick_reader_refuses_is_read_as_before(client, channel, conn):
    """orjson reads nearly every body; one it refuses (a byte-order mark) or would misread (an integer
    over 64 bits, read as a float) is read by the standard library, as before."""
    bom = b'\xef\xbb\xbf{"channel": "phone", "from": "07700 900002", "provider_id": "CA-bom"}'
    r = await client.post("/v1/contacts", headers={**channel, "Content-Type": "application/json"}, data=bom)
    assert r.status == 201
    huge = '{"channel": "phone", "from": "07700 900003", "provider_id": 1000000000000000000000000000001}'
    r = await client.post("/v1/contacts", headers={**channel, "Content-Type": "application/json"}, data=huge)
    assert r.status == 422
    assert await conn.fetchval("SELECT error FROM contacts WHERE status = 'malformed'") is not None


async def test_every_reply_carries_the_safety_headers(client, channel):
    """API replies and pages alike: never framed, no sniffing; a page is never cached."""
    r = await client.post("/v1/contacts", headers=channel, json={"channel": "phone", "from": "07700 900004"})
    assert r.status == 201
    assert r.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Cache-Control" not in r.headers
    page = await client.get("/contact")
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"
