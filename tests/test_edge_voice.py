"""The lean edge on Twilio's voice webhook (gateway/edge.py): a signed, plain call is answered by it
exactly as aiohttp answers it; anything else on that route goes to aiohttp and is answered, logged
and refused as before. The webhooks are signed with the twilio package's own RequestValidator."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from tests.helpers import logged_contacts, running
from tests.helpers import serving as served_worker
from tests.test_channel_twilio import PUBLIC, TOKEN, VOICE, call_params
from tests.test_edge import Reply, Served, _read_reply

_sids = itertools.count(1)


def params(sender: str = "07700 900010", sid: str | None = None) -> dict[str, str]:
    return call_params(sender, sid or f"CA{next(_sids):032x}")


def webhook(
    fields: dict[str, str],
    *extra: str,
    target: str = VOICE,
    signed_for: str | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    body: bytes | None = None,
    version: str = "1.1",
) -> bytes:
    """A voice webhook as Twilio sends it, signed for PUBLIC + target (or `signed_for`)."""
    signature = RequestValidator(TOKEN).compute_signature(signed_for or PUBLIC + target, fields)
    raw = body if body is not None else urlencode(fields).encode()
    lines = [f"POST {target} HTTP/{version}", "Host: gateway.example.org", f"Content-Type: {content_type}"]
    lines += [f"X-Twilio-Signature: {signature}", *extra, f"Content-Length: {len(raw)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


@contextlib.asynccontextmanager
async def serving(settings) -> AsyncIterator[Served]:
    async with served_worker(settings) as (port, edge):
        yield Served(port, edge)


@pytest.fixture
def configured(settings):
    return settings.with_(twilio_auth_token=TOKEN, public_url=PUBLIC)


@pytest.fixture
async def served(configured) -> AsyncIterator[Served]:
    async with serving(configured) as served:
        yield served


async def through_aiohttp(settings, conn, raw: bytes) -> Reply:
    """The same bytes sent to an aiohttp-only server on the same settings."""
    async with running(settings, conn, demo=False) as (client, _):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(raw)
        try:
            return await asyncio.wait_for(_read_reply(reader), 10)
        finally:
            writer.close()


async def test_a_signed_call_is_answered_by_the_edge_as_aiohttp_answers_it(served, configured, conn):
    before = served.edge.answered
    (ours,) = await served.exchange(webhook(params(sid="CA" + "1" * 32), "X-Request-Id: voice-1"))
    assert served.edge.answered == before + 1
    theirs = await through_aiohttp(configured, conn, webhook(params(sid="CA" + "2" * 32), "X-Request-Id: voice-2"))
    assert (ours.status, theirs.status) == (200, 200)
    skip = ("date", "content-length", "x-request-id")
    assert {k: v for k, v in ours.headers.items() if k not in skip} == {
        k: v for k, v in theirs.headers.items() if k not in skip
    }
    assert ours.headers["content-type"] == "application/xml; charset=utf-8"
    assert ours.headers["x-request-id"] == "voice-1"
    assert (
        ours.body
        == theirs.body
        == (b'<?xml version="1.0" encoding="UTF-8"?><Response><Enqueue>general</Enqueue></Response>')
    )
    (row,) = await logged_contacts(conn, "provider_id = $1", "CA" + "1" * 32)
    assert (row["channel"], row["status"], row["action"]) == ("phone", "decided", "route")


async def test_a_restricted_caller_hears_the_same_twiml_from_the_edge(configured, conn):
    from gateway.demo import load_demo

    await load_demo(conn)
    async with serving(configured) as fresh:  # the index loads the demo's restrictions at start-up
        before = fresh.edge.answered
        (ours,) = await fresh.exchange(webhook(params("07700 900003")))  # written only
        assert fresh.edge.answered == before + 1
    theirs = await through_aiohttp(configured, conn, webhook(params("07700 900003")))
    assert ours.status == theirs.status == 200
    assert ours.body == theirs.body and b"<Hangup" in ours.body


async def test_a_retry_on_the_same_connection_hears_the_same_answer_and_is_logged_once(served, conn):
    sid = "CA" + "3" * 32
    before = served.edge.answered
    first, again = await served.exchange(webhook(params(sid=sid)) + webhook(params(sid=sid)), replies=2)
    assert served.edge.answered == before + 2
    assert first.body == again.body
    assert len(await logged_contacts(conn, "provider_id = $1", sid)) == 1


@pytest.mark.parametrize("query", ["?tenant=north&line=2", "?To=%2B441632960000&x=a%20b", "?"])
async def test_a_call_signed_with_its_query_is_answered_here(served, query):
    before = served.edge.answered
    (reply,) = await served.exchange(webhook(params(), target=VOICE + query))
    assert (reply.status, served.edge.answered) == (200, before + 1)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded",
        "application/x-www-form-urlencoded;charset=utf8",
    ],
)
async def test_a_form_type_written_another_way_is_answered_here(served, content_type):
    before = served.edge.answered
    (reply,) = await served.exchange(webhook(params(), content_type=content_type))
    assert (reply.status, served.edge.answered) == (200, before + 1)


async def test_calls_and_contacts_pipelined_on_one_connection_are_answered_in_order(served, keys):
    from tests.test_edge import call, known, post

    await known(served, keys["channel"])
    before = served.edge.answered
    first, second, third = await served.exchange(
        webhook(params(sid="CA" + "4" * 32)) + post(call("pipelined-2"), keys["channel"]) + webhook(params()), replies=3
    )
    assert [first.status, second.status, third.status] == [200, 201, 200]
    assert first.body.startswith(b"<?xml") and second.json()["contact_id"] and third.body.startswith(b"<?xml")
    assert served.edge.answered == before + 3


def _cases() -> dict[str, bytes]:
    tampered = webhook(params()).replace(b"From=07700", b"From=07711")
    return {
        "unsigned": webhook(params()).replace(b"X-Twilio-Signature: ", b"X-Note: "),
        "tampered": tampered,
        "signed for another URL": webhook(params(), signed_for="http://localhost" + VOICE),
        "a query the signature does not cover": webhook(
            params(), target=VOICE + "?tenant=north", signed_for=PUBLIC + VOICE
        ),
        "not a form": webhook(params(), content_type="text/plain"),
        "a form in Latin-1": webhook(params(), content_type="application/x-www-form-urlencoded; charset=latin-1"),
        "a form that is not UTF-8 (no signature can match it)": webhook({"From": "x"}, body=b"From=%FF%FE&CallSid=CA1"),
        "a field added after signing": webhook(params(), body=urlencode(params()).encode() + b"&From=07700+900003"),
        "more fields than a form may have": webhook({}, body=b"&".join(b"f%d=x" % i for i in range(1001))),
        "a body over the limit": webhook({**params(), "Note": "x" * (1024 * 1024)}),
        "not a call (a call id too long)": webhook(params(sid="CA" + "9" * 300)),
        "a trailing slash": webhook(params(), target=VOICE + "/"),
        "HTTP/1.0": webhook(params(), version="1.0"),
        "Connection: close": webhook(params(), "Connection: close"),
        "two signatures": webhook(params(), "X-Twilio-Signature: again"),
    }


@pytest.mark.parametrize("case", list(_cases()))
async def test_what_is_not_plain_on_the_voice_route_is_answered_by_aiohttp_as_before(served, configured, conn, case):
    """Each is answered as the aiohttp-only server answers it, and what it logs (a refused or a
    malformed attempt) it logs as before."""
    raw = _cases()[case]
    logged = await conn.fetchval("SELECT count(*) FROM contacts")
    before = served.edge.answered
    (ours,) = await served.exchange(raw)
    assert served.edge.answered == before
    ours_logged = await conn.fetchval("SELECT count(*) FROM contacts") - logged
    theirs = await through_aiohttp(configured, conn, _cases()[case])  # the same, with a call id of its own
    theirs_logged = await conn.fetchval("SELECT count(*) FROM contacts") - logged - ours_logged
    assert (ours.status, ours_logged) == (theirs.status, theirs_logged)
    assert ours.body == theirs.body


async def test_a_channel_not_configured_is_refused_by_aiohttp_as_before(settings, conn):
    raw = webhook(params())
    async with serving(settings.with_(twilio_auth_token=None, public_url=PUBLIC)) as served:
        before = served.edge.answered
        (reply,) = await served.exchange(raw)
        assert (reply.status, served.edge.answered) == (503, before)
    (row,) = await logged_contacts(conn, "status = 'rejected'")
    assert "TWILIO_AUTH_TOKEN" in row["error"]
