"""Twilio voice webhooks, signed with the twilio package's own RequestValidator. Each call is made
through aiohttp and through a served worker, whose lean edge answers the plain ones (gateway/edge.py)."""

from __future__ import annotations

import contextlib
import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from gateway.channels import twilio
from gateway.channels.twilio import twiml, voice_reply
from gateway.contact import Decision, Target
from gateway.demo import load_demo
from gateway.edge import Edge
from gateway.rules.context import StaffView
from tests.factory import insert_customer, insert_restriction
from tests.helpers import logged_contacts, running, staff_numbers
from tests.helpers import serving as served_worker

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://gateway.example.org"
VOICE = "/v1/channels/twilio/voice"
FALLBACK = "/v1/channels/twilio/fallback"
_sids = itertools.count(1)


def call_params(sender: str, sid: str | None = None) -> dict[str, str]:
    return {
        "CallSid": sid or f"CA{next(_sids):032x}",
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+441632960000",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def sign(path: str, params: dict[str, str]) -> str:
    return RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)


VIA = ["aiohttp", "edge"]


@pytest.fixture(params=VIA)
async def phone(request, settings, conn):
    async with client_via(request.param, settings.with_(twilio_auth_token=TOKEN, public_url=PUBLIC), conn) as c:
        yield c


@contextlib.asynccontextmanager
async def client_via(via: str, settings, conn, *, demo: bool = True):
    """A client to an aiohttp-only app, or to a served worker with the lean edge in front."""
    if via == "aiohttp":
        async with running(settings, conn, demo=demo) as (c, _):
            yield c
        return
    async with serving(settings, conn, demo=demo) as served:
        yield served


def answered_by_edge(client, calls: int = 1) -> contextlib.AbstractContextManager[None]:
    """Asserts that the `calls` made inside were each answered by the edge itself (a served worker's)."""
    if not isinstance(client, Served):
        return contextlib.nullcontext()
    return _counted(client.edge, calls)


@contextlib.contextmanager
def _counted(edge: Edge, calls: int):
    before = edge.answered
    yield
    assert edge.answered == before + calls


@dataclass
class Served:
    """A client to a served worker, and its lean edge."""

    session: aiohttp.ClientSession
    edge: Edge

    def post(self, path: str, **kwargs):
        return self.session.post(path, **kwargs)


@contextlib.asynccontextmanager
async def serving(settings, conn, *, demo: bool = True):
    """A served worker (the lean edge in front), on the demo data unless told, and a client to it."""
    if demo:
        await load_demo(conn)
    async with served_worker(settings) as (port, edge), aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        yield Served(session, edge)


async def post(client, params, path=VOICE, signature=None):
    headers = {"X-Twilio-Signature": signature if signature is not None else sign(path, params)}
    return await client.post(path, data=params, headers=headers)


async def verbs(client, sender, sid=None):
    """The TwiML verbs a call is answered with; a served worker's edge answers it itself."""
    with answered_by_edge(client):
        r = await post(client, call_params(sender, sid))
    assert r.status == 200, await r.text()
    assert r.content_type == "application/xml"
    root = ET.fromstring(await r.text())
    assert root.tag == "Response"
    return [(el.tag, el.text, [(c.tag, c.text) for c in el]) for el in root]


def says_and_hangs_up(found):
    assert [v[0] for v in found] == ["Say", "Hangup"]
    assert found[0][1]
    return found[0][1]


async def test_unrestricted_caller_is_enqueued_to_general(phone):
    assert await verbs(phone, "07700 900010") == [("Enqueue", "general", [])]


async def test_written_only_is_told_and_hung_up(phone):
    message = says_and_hangs_up(await verbs(phone, "07700 900003"))
    assert "writing" in message.lower()


async def test_named_contact_dials_the_persons_line_or_voicemail(phone, conn):
    sid = "CA" + "2" * 32
    found = await verbs(phone, "07700 900002", sid)
    (row,) = await logged_contacts(conn, "provider_id = $1", sid)
    sam = await staff_numbers(conn, "Sam Patel")
    target = row["target"]
    assert target["id"] == sam["id"] and target["type"] in ("staff", "voicemail")
    assert found == [("Dial", None, [("Number", sam[target["type"]])])]


async def test_no_personal_contact_customer_deflected_representative_routed(phone):
    says_and_hangs_up(await verbs(phone, "07700 900004"))
    (verb,) = await verbs(phone, "07700 900444")  # Ruth Adeyemi, his advocate
    assert verb[0] == "Enqueue" and verb[1]


@pytest.mark.parametrize("number", ["07700 900006", "07700 900007"])  # closed_issue, caution
async def test_banner_only_kinds_route_the_call(phone, conn, number):
    sid = f"CA{next(_sids):032x}"
    (verb,) = await verbs(phone, number, sid)
    assert verb[0] == "Enqueue" and verb[1]
    (row,) = await logged_contacts(conn, "provider_id = $1", sid)
    assert row["action"] == "route" and row["banner"] is not None


async def test_contact_limit_deflects_once_over_the_limit(phone):
    for _ in range(3):  # limit 3 a day (the demo number is shared by a household of two)
        assert (await verbs(phone, "07700 900008"))[0][0] in ("Enqueue", "Dial")
    says_and_hangs_up(await verbs(phone, "07700 900008"))


@pytest.mark.parametrize("via", VIA)
async def test_set_times_inside_and_outside(settings, conn, via):
    tz = ZoneInfo(settings.tz)
    later = (datetime.now(tz) + timedelta(days=2)).strftime("%a").lower()
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    inside = await insert_customer(conn, "Test T-IN", ("phone", "07700 900501"), external_ref="T-IN")
    await insert_restriction(
        conn,
        inside,
        {
            "kind": "set_times",
            "windows": [{"days": every_day, "start": "00:00", "end": "24:00"}],
            "closed_on_bank_holidays": False,
        },
    )
    outside = await insert_customer(conn, "Test T-OUT", ("phone", "07700 900502"), external_ref="T-OUT")
    await insert_restriction(
        conn, outside, {"kind": "set_times", "windows": [{"days": [later], "start": "09:00", "end": "10:00"}]}
    )
    cfg = settings.with_(twilio_auth_token=TOKEN, public_url=PUBLIC)
    async with client_via(via, cfg, conn, demo=False) as client:
        assert (await verbs(client, "07700 900501"))[0][0] == "Enqueue"
        message = says_and_hangs_up(await verbs(client, "07700 900502"))
    assert "The next time you can call is" in message and "at 9am" in message


@pytest.mark.parametrize("withheld", ["anonymous", "+266696687", ""])
async def test_withheld_numbers_routed_and_logged_as_withheld(phone, conn, withheld):
    sid = f"CA{next(_sids):032x}"
    assert await verbs(phone, withheld, sid) == [("Enqueue", "general", [])]
    (row,) = await logged_contacts(conn, "provider_id = $1", sid)
    assert row["sender_kind"] == "withheld" and row["customer_ids"] == []


async def test_retry_with_the_same_callsid_same_twiml_one_row(phone, conn):
    sid = "CA" + "7" * 32
    with answered_by_edge(phone, calls=2):
        first = await post(phone, call_params("07700 900003", sid))
        again = await post(phone, call_params("07700 900003", sid))
    assert first.status == again.status == 200
    assert await first.text() == await again.text()
    assert len(await logged_contacts(conn, "provider_id = $1", sid)) == 1


@pytest.mark.parametrize("how", ["unsigned", "tampered", "wrong url", "garbage"])
async def test_bad_signatures_are_refused_and_logged(phone, conn, how):
    params = call_params("07700 900001")
    elsewhere = RequestValidator(TOKEN).compute_signature("http://localhost" + VOICE, params)
    signature = {"unsigned": "", "tampered": sign(VOICE, params), "wrong url": elsewhere, "garbage": "é not base64 ☃"}[
        how
    ]
    if how == "tampered":
        params["From"] = "07700 900010"
    r = await post(phone, params, signature=signature)
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "forbidden"
    (row,) = await logged_contacts(conn, "provider_id = $1", params["CallSid"])
    assert row["status"] == "rejected" and "X-Twilio-Signature" in row["error"]
    # The refused attempt does not claim the call id: the properly signed retry is decided and logged.
    good = await post(phone, call_params("07700 900001") | {"CallSid": params["CallSid"]})
    assert good.status == 200
    assert sorted(r["status"] for r in await logged_contacts(conn, "provider_id = $1", params["CallSid"])) == [
        "decided",
        "rejected",
    ]


async def test_signature_with_the_default_port_is_accepted(phone):
    params = call_params("07700 900010")
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + ":443" + VOICE, params)
    with answered_by_edge(phone):
        assert (await post(phone, params, signature=signature)).status == 200


@pytest.mark.parametrize("via", VIA)
async def test_not_configured_refuses_with_503(settings, conn, via):
    async with client_via(via, settings.with_(twilio_auth_token=None, public_url=PUBLIC), conn, demo=False) as client:
        params = call_params("07700 900010")
        r = await post(client, params)
        assert r.status == 503
        # What to set is for whoever runs the gateway (the log), not for an anonymous caller.
        assert "TWILIO_AUTH_TOKEN" not in await r.text()
        (row,) = await logged_contacts(conn, "status = 'rejected'")
        assert "TWILIO_AUTH_TOKEN" in row["error"]


async def test_fallback_always_enqueues_general_and_logs_the_error_code(phone, conn):
    params = {**call_params("07700 900003"), "ErrorCode": "11200", "ErrorUrl": PUBLIC + VOICE}
    r = await post(phone, params, path=FALLBACK)
    assert r.status == 200
    root = ET.fromstring(await r.text())
    assert [(el.tag, el.text) for el in root] == [("Enqueue", "general")]
    (row,) = await logged_contacts(conn, "subject = $1", f"Twilio fallback for call {params['CallSid']}")
    assert "ErrorCode 11200" in row["error"] and row["degraded"] and row["status"] == "decided"


async def test_fallback_is_signature_checked_too(phone):
    params = {**call_params("07700 900003"), "ErrorCode": "11200"}
    assert (await post(phone, params, path=FALLBACK, signature=sign(VOICE, params))).status == 403


def test_twiml_escapes_text():
    tricky = 'Call <us> & "we" will </Say><Dial>+1900</Dial>'
    decision = Decision(contact_id="c", action="deflect", target=None, customer_message=tricky)
    body = ET.tostring(twiml(decision, {}), encoding="unicode")
    root = ET.fromstring(body)
    assert [el.tag for el in root] == ["Say", "Hangup"] and root[0].text == tricky
    queue = Decision(contact_id="c", action="route", target=Target(type="queue", id="a<b>&c"))
    assert ET.fromstring(ET.tostring(twiml(queue, {}), encoding="unicode"))[0].text == "a<b>&c"


def test_each_answer_is_written_once_and_never_given_for_another(monkeypatch):
    monkeypatch.setattr(twilio, "_REPLIES", {})
    rt = SimpleNamespace(index=SimpleNamespace(staff={}))
    write = Decision(contact_id="a", action="deflect", target=None, customer_message="Please write to us.")
    later = Decision(contact_id="b", action="deflect", target=None, customer_message="Call again at 9am.")
    rents = Decision(contact_id="c", action="route", target=Target(type="queue", id="rents"))
    bodies = [voice_reply(d, rt) for d in (write, later, rents, write)]
    assert bodies[3] is bodies[0]
    assert [ET.fromstring(b)[0].text for b in bodies[:3]] == ["Please write to us.", "Call again at 9am.", "rents"]
    assert bodies[2] == b'<?xml version="1.0" encoding="UTF-8"?><Response><Enqueue>rents</Enqueue></Response>'
    monkeypatch.setattr(twilio, "_REPLIES_MAX", 3)  # three held: a fourth answer makes room by forgetting them all
    other = Decision(contact_id="e", action="deflect", target=None, customer_message="Call again at 10am.")
    assert b"10am" in voice_reply(other, rt) and len(twilio._REPLIES) == 1
    again = voice_reply(write, rt)
    assert again == bodies[0] and again is not bodies[0]


def test_a_staff_members_new_line_is_dialled_not_the_answer_kept_for_the_old_one(monkeypatch):
    monkeypatch.setattr(twilio, "_REPLIES", {})
    sam = Decision(contact_id="d", action="route", target=Target(type="staff", id="7"))
    before = SimpleNamespace(index=SimpleNamespace(staff={7: StaffView(7, "Sam", line="+441632960001")}))
    after = SimpleNamespace(index=SimpleNamespace(staff={7: StaffView(7, "Sam", line="+441632960002")}))
    assert b"+441632960001" in voice_reply(sam, before)
    assert b"+441632960002" in voice_reply(sam, after)
