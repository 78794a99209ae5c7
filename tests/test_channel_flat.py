"""The flat map for Amazon Connect and Genesys; set_times at fixed instants (DST, holidays)."""

from __future__ import annotations

import itertools

import pytest

from tests.factory import bearer, insert_staff_key
from tests.helpers import logged_contacts, running, staff_numbers

FLAT = "/v1/channels/flat"
FIELDS = {
    "contact_id",
    "action",
    "target_type",
    "target_id",
    "target_number",
    "message",
    "banner",
    "flagged",
    "degraded",
}
_ids = itertools.count(1)
SET_TIMES = "07700 900001"  # the demo's set_times customer: Tuesdays and Thursdays 10am-12 noon


@pytest.fixture
async def flat(settings, conn, keys):
    async with running(settings, conn) as (client, _):

        async def post(body, key="channel"):
            return await client.post(FLAT, json=body, headers=bearer(keys[key]))

        yield post


async def decide(post, sender, at=None, contact_id=None):
    body = {"contact_id": contact_id or f"flat-{next(_ids)}", "from": sender, "to": "+441632960000"}
    if at:
        body["received_at"] = at
    r = await post(body)
    assert r.status == 200, await r.text()
    out = await r.json()
    assert set(out) == FIELDS and all(isinstance(v, str) for v in out.values())
    return out


async def test_our_shape_written_only_deflects(flat):
    out = await decide(flat, "07700 900003")
    assert out["action"] == "deflect" and out["message"] and out["target_type"] == ""
    assert out["degraded"] == "false" and out["banner"]


async def test_amazon_connect_event_shape(flat, conn):
    event = {
        "Name": "ContactFlowEvent",
        "Details": {
            "Parameters": {},
            "ContactData": {
                "ContactId": "4a573372-1f28-4e26-b97b-XXXXXXXXXXX",
                "Channel": "VOICE",
                "CustomerEndpoint": {"Address": "+447700900010", "Type": "TELEPHONE_NUMBER"},
                "SystemEndpoint": {"Address": "+441632960000", "Type": "TELEPHONE_NUMBER"},
            },
        },
    }
    out = await (await flat(event)).json()
    assert out["action"] == "route" and out["target_type"] == "queue" and out["target_id"]
    (row,) = await logged_contacts(conn, "provider_id = $1", "4a573372-1f28-4e26-b97b-XXXXXXXXXXX")
    assert row["sender"] == "+447700900010" and row["recipient"] == "+441632960000"


async def test_forwarded_contact_data_and_idempotent_retry(flat, conn):
    data = {
        "ContactId": "connect-retry-1",
        "CustomerEndpoint": {"Address": "+447700900003"},
        "SystemEndpoint": {"Address": "+441632960000"},
    }
    first, again = await (await flat(data)).json(), await (await flat(data)).json()
    assert first == again and first["action"] == "deflect"
    assert len(await logged_contacts(conn, "provider_id = $1", "connect-retry-1")) == 1


async def test_named_contact_gives_a_number_to_dial(flat, conn):
    out = await decide(flat, "07700 900002")
    sam = await staff_numbers(conn, "Sam Patel")
    assert out["target_id"] == sam["id"]
    assert out["target_number"] == sam[out["target_type"]]


async def test_withheld_connect_caller(flat, conn):
    out = await (await flat({"ContactId": "connect-anon", "CustomerEndpoint": None})).json()
    assert out["action"] == "route"
    (row,) = await logged_contacts(conn, "provider_id = $1", "connect-anon")
    assert row["sender_kind"] == "withheld"


async def test_authentication_and_malformed(flat, conn, keys):
    keys["agent"] = await insert_staff_key(conn, "Sam Patel")  # the demo's agent
    assert (await flat({"contact_id": "x", "from": "07700 900010"}, key="agent")).status == 403
    r = await flat(["not", "an", "object"])
    assert r.status == 422
    r = await flat({"contact_id": "bad-1", "from": 7700900010})
    assert r.status == 422
    assert any(row["status"] == "malformed" for row in await logged_contacts(conn, "channel = 'phone'"))


# (instant, action, spoken next time). UK clocks went forward 29 Mar 2026 and back 25 Oct 2026;
# 25 Dec 2025 (a Thursday) is a bank holiday.
SET_TIMES_CASES = [
    ("2026-03-31T09:30:00Z", "route", None),  # 10:30 BST, not 09:30
    ("2026-03-31T11:15:00Z", "deflect", "Thursday at 10am"),  # 12:15 BST
    ("2026-03-26T09:30:00Z", "deflect", "today at 10am"),  # 09:30 GMT
    ("2026-03-26T11:30:00Z", "route", None),  # 11:30 GMT
    ("2026-03-26T12:00:00Z", "deflect", "Tuesday at 10am"),  # next window is after the change
    ("2026-10-22T09:30:00Z", "route", None),  # 10:30 BST
    ("2026-10-27T09:30:00Z", "deflect", "today at 10am"),  # 09:30 GMT, after the change back
    ("2025-12-25T10:30:00Z", "deflect", "Tuesday at 10am"),  # Christmas Day: closed
    ("2025-12-23T11:30:00Z", "route", None),
    ("2025-12-23T12:30:00Z", "deflect", "Tuesday 30 December at 10am"),  # skips Christmas
]


@pytest.mark.parametrize(("at", "action", "spoken"), SET_TIMES_CASES)
async def test_set_times_at_fixed_instants(flat, at, action, spoken):
    out = await decide(flat, SET_TIMES, at)
    assert out["action"] == action, out
    if spoken:
        assert out["message"] == (
            "We can only accept calls on Tuesdays and Thursdays between 10am "
            f"and 12 noon. The next time you can call is {spoken}."
        )


def test_a_channel_registered_twice_stops_start_up():
    from aiohttp import web

    from gateway.channels import HTTP_CHANNELS as CHANNELS
    from gateway.channels import DuplicateChannel, register

    with pytest.raises(DuplicateChannel, match=CHANNELS[1].name):
        register(web.Application(), (*CHANNELS, CHANNELS[1]))
    assert len({c.name for c in CHANNELS}) == len(CHANNELS)
