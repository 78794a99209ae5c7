"""POST /v1/channels/email (raw MIME and JSON) and Mailgun routes: threading, idempotency, limits.

The demo's Peter Novak (p.novak@example.com) has an exhausted complaint CMP-2041 under a
closed_issue restriction, and an open case CMP-2107.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time

import pytest
from aiohttp import FormData

from gateway.channels.email import mailgun
from tests.factory import bearer
from tests.helpers import logged_contacts, running

EMAIL = "/v1/channels/email"
MAILGUN = "/v1/channels/email/mailgun/mime"
NOVAK = "p.novak@example.com"
_n = itertools.count(1)


def mime(
    subject: str,
    sender: str = NOVAK,
    *,
    message_id: str | None = None,
    extra: str = "",
    body: str = "I still do not agree with the outcome.",
) -> bytes:
    mid = message_id or f"<m{next(_n)}@mail.example.com>"
    return (
        f"From: Peter Novak <{sender}>\r\nTo: housing@demo-homes.org.uk\r\nSubject: {subject}\r\n"
        f"Message-ID: {mid}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


@pytest.fixture
async def email(settings, conn, keys):
    async with running(settings.with_(mailgun_signing_key="mg-key"), conn) as (client, app):

        async def post(raw: bytes, content_type: str = "message/rfc822", key: str = "channel"):
            headers = {**bearer(keys[key]), "Content-Type": content_type}
            return await client.post(EMAIL, data=raw, headers=headers)

        post.client = client  # type: ignore[attr-defined]
        post.app = app  # type: ignore[attr-defined]
        yield post


async def decided(post, raw: bytes, status: int = 201) -> dict:
    r = await post(raw)
    assert r.status == status, await r.text()
    return await r.json()


@pytest.mark.parametrize(
    "subject",
    ["RE: CMP-2041 I still disagree", "Re: [CMP-2041] my complaint", "Fwd: about cmp-2041, again", "CMP-2041"],
)
async def test_closed_issue_by_subject_bracketed_or_not(email, conn, subject):
    out = await decided(email, mime(subject))
    assert out["action"] == "auto_acknowledge"
    assert out["target"] == {"type": "queue", "id": "new-information"}
    assert out["matched"]["case_id"] is not None and out["flagged"]
    row = (await logged_contacts(conn, "id = $1", out["contact_id"]))[0]
    assert row["channel"] == "email" and row["case_id"] == out["matched"]["case_id"]
    assert row["case_ref"].upper() == "CMP-2041"


async def test_unrelated_report_from_same_customer_is_routed_with_the_banner(email):
    out = await decided(email, mime("A new leak under the kitchen sink"))
    assert out["action"] == "route" and out["matched"]["case_id"] is None
    assert out["banner"] and "CMP-2041" in out["banner"]["text"]


async def test_a_reference_not_on_record_is_not_a_case(email):
    out = await decided(email, mime("RE: COVID-19 and CMP-2041 again"))
    assert out["matched"]["case_id"] is not None  # the one on record wins, wherever it stands
    out = await decided(email, mime("RE: COVID-19 rules"))
    assert out["matched"]["case_id"] is None and out["action"] == "route"


async def test_same_message_id_is_one_contact(email, conn):
    raw = mime("RE: CMP-2041 again", message_id="<same-1@mail.example.com>")
    first = await decided(email, raw)
    again = await decided(email, raw, status=200)
    assert again["contact_id"] == first["contact_id"]
    rows = await logged_contacts(conn, "provider_id = $1", "<same-1@mail.example.com>")
    assert len(rows) == 1


async def test_generic_json_shape(email):
    body = {
        "from": f"Peter Novak <{NOVAK}>",
        "to": ["housing@demo-homes.org.uk"],
        "subject": "Re: CMP-2041",
        "message_id": "<json-1@mail.example.com>",
        "in_reply_to": "",
        "references": [],
        "text": "",
        "html": "<p>Still <b>unhappy</b></p><script>x()</script>",
        "headers": {"X-Mailer": "test"},
    }
    r = await email(json.dumps(body).encode(), "application/json")
    assert r.status == 201, await r.text()
    assert (await r.json())["action"] == "auto_acknowledge"


async def test_json_that_is_not_the_shape_is_422_and_logged(email, conn):
    r = await email(json.dumps({"from": NOVAK, "colour": "blue"}).encode(), "application/json")
    assert r.status == 422
    rows = await logged_contacts(conn, "channel = 'email' AND status = 'malformed'")
    assert rows and rows[0]["sender_raw"] == NOVAK


async def test_other_media_types_are_refused_and_logged(email, conn):
    r = await email(b"<x/>", "application/xml")
    assert r.status == 400 and (await r.json())["error"]["code"] == "unsupported_media_type"
    assert await logged_contacts(conn, "channel = 'email' AND status = 'malformed'")


async def test_over_the_size_limit_is_413_and_logged(settings, conn, keys):
    async with running(settings.with_(email_max_bytes=4096), conn) as (client, _):
        raw = mime("big", body="x" * 5000)
        r = await client.post(EMAIL, data=raw, headers={**bearer(keys["channel"]), "Content-Type": "message/rfc822"})
        assert r.status == 413
        rows = await logged_contacts(conn, "channel = 'email' AND status = 'malformed'")
        assert rows and "larger" in rows[0]["error"]


async def test_larger_than_the_app_limit_but_within_the_email_limit(settings, conn, keys):
    """The email endpoint's own limit (25 MiB by default) is above the app's JSON limit."""
    async with running(settings.with_(max_body_bytes=2048), conn) as (client, _):
        raw = mime("RE: CMP-2041 with a long letter", body="word " * 2000)
        r = await client.post(EMAIL, data=raw, headers={**bearer(keys["channel"]), "Content-Type": "message/rfc822"})
        assert r.status == 201, await r.text()


async def test_needs_a_channel_key(email):
    r = await email(mime("hello"), key="admin")
    assert r.status == 201
    r = await email.client.post(EMAIL, data=mime("hello"), headers={"Content-Type": "message/rfc822"})
    assert r.status == 401


async def test_attachments_are_listed_not_stored(email, conn):
    raw = (
        f"From: {NOVAK}\r\nSubject: photos\r\nMessage-ID: <att-1@x>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n'
        '--b\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename="damp.jpg"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQSkZJRg==\r\n--b--\r\n"
    ).encode()
    out = await decided(email, raw)
    row = (await logged_contacts(conn, "id = $1", out["contact_id"]))[0]
    assert "See attached." in row["body_excerpt"]
    assert "[attachment: damp.jpg (image/jpeg, 10 bytes)]" in row["body_excerpt"]


# -- Mailgun ------------------------------------------------------------------------------------


def mailgun_signed(key: str = "mg-key", timestamp: str | None = None, token: str | None = None) -> dict[str, str]:
    """As Mailgun signs a post: now, with a token of its own, unless told otherwise."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    token = secrets.token_hex(25) if token is None else token
    sig = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": sig}


async def test_mailgun_raw_mime_route(email, conn):
    form = FormData()
    for k, v in mailgun_signed().items():
        form.add_field(k, v)
    form.add_field("recipient", "housing@demo-homes.org.uk")
    form.add_field("sender", NOVAK)
    form.add_field("body-mime", mime("RE: CMP-2041 once more").decode(), content_type="message/rfc822")
    r = await email.client.post(MAILGUN, data=form)
    assert r.status == 201, await r.text()
    assert (await r.json())["action"] == "auto_acknowledge"


async def test_mailgun_parsed_fields_route(email):
    fields = {
        **mailgun_signed(),
        "recipient": "housing@demo-homes.org.uk",
        "sender": NOVAK,
        "from": f"Peter Novak <{NOVAK}>",
        "subject": "Re: [CMP-2041]",
        "body-plain": "Still here.",
        "Message-Id": "<mg-parsed-1@mail.example.com>",
        "message-headers": json.dumps([["Message-Id", "<mg-parsed-1@mail.example.com>"], ["Precedence", "bulk"]]),
    }
    r = await email.client.post(MAILGUN, data=fields)
    assert r.status == 201, await r.text()
    out = await r.json()
    assert out["action"] == "auto_acknowledge"


@pytest.mark.parametrize("key", ["wrong-key", None])
async def test_mailgun_bad_signature_is_403_and_logged(email, conn, key):
    fields = {**mailgun_signed(key or "mg-key"), "sender": NOVAK, "subject": "hi", "body-plain": "x"}
    if key is None:
        fields.pop("signature")
    r = await email.client.post(MAILGUN, data=fields)
    assert r.status == 403
    rows = await logged_contacts(conn, "channel = 'email' AND status = 'rejected'")
    assert rows and rows[0]["error"] == "bad Mailgun signature"


def mailgun_fields(signed: dict[str, str], subject: str, message_id: str) -> dict[str, str]:
    return {
        **signed,
        "recipient": "housing@demo-homes.org.uk",
        "sender": NOVAK,
        "from": f"Peter Novak <{NOVAK}>",
        "subject": subject,
        "body-plain": "Please call me back.",
        "Message-Id": message_id,
    }


@pytest.mark.parametrize("age", [mailgun.MAX_AGE + 60, -(mailgun.MAX_AHEAD + 60)])
async def test_mailgun_signature_out_of_date_is_403_and_logged(email, conn, age):
    signed = mailgun_signed(timestamp=str(int(time.time()) - age))
    r = await email.client.post(MAILGUN, data=mailgun_fields(signed, "A leak", "<mg-old@mail.example.com>"))
    assert r.status == 403, await r.text()
    rows = await logged_contacts(conn, "channel = 'email' AND status = 'rejected'")
    assert [row["error"] for row in rows] == ["Mailgun signature out of date"]


async def test_mailgun_signature_replayed_with_another_message_is_refused(email, conn):
    """Mailgun's signature covers its timestamp and token, not the message: a signed triple seen once
    must not carry a message of someone else's choosing."""
    signed = mailgun_signed()
    first = await email.client.post(MAILGUN, data=mailgun_fields(signed, "A leak", "<mg-1@mail.example.com>"))
    assert first.status == 201, await first.text()
    forged = await email.client.post(MAILGUN, data=mailgun_fields(signed, "Close my case", "<mg-2@mail.example.com>"))
    assert forged.status == 403, await forged.text()
    rows = await logged_contacts(conn, "channel = 'email' AND status = 'rejected'")
    assert [row["error"] for row in rows] == ["Mailgun signature replayed with another message"]
    # The same message under the same token is a retry: heard as the first attempt was, logged once.
    again = await email.client.post(MAILGUN, data=mailgun_fields(signed, "A leak", "<mg-1@mail.example.com>"))
    assert again.status == 200, await again.text()
    assert (await again.json())["contact_id"] == (await first.json())["contact_id"]
    decided = await logged_contacts(conn, "channel = 'email' AND status = 'decided'")
    assert [row["subject"] for row in decided] == ["A leak"]


async def test_mailgun_headers_nested_past_reading_are_left_out_not_a_server_error(email, conn):
    fields = mailgun_fields(mailgun_signed(), "A leak", "<mg-deep@mail.example.com>")
    fields["message-headers"] = "[" * 5000 + "]" * 5000
    r = await email.client.post(MAILGUN, data=fields)
    assert r.status == 201, await r.text()
    assert [row["subject"] for row in await logged_contacts(conn, "channel = 'email'")] == ["A leak"]


async def test_an_unsigned_form_of_more_parts_than_mailgun_sends_is_refused_before_it_is_parsed(email, conn):
    """The signature is in the form, so the form is read first: one of thousands of tiny parts is
    refused by counting its boundaries, not by building a message object for each part."""
    boundary = "b0undary"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n'
        for n in range(mailgun.MAX_FIELDS + 5)
    )
    body = (parts + f"--{boundary}--\r\n").encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = await email.client.post(MAILGUN, data=body, headers=headers)
    assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"
    rows = await logged_contacts(conn, "channel = 'email' AND status = 'malformed'")
    assert len(rows) == 1 and "more than" in rows[0]["error"]
    fields = mailgun_fields(mailgun_signed(), "A leak", "<mg-after-flood@mail.example.com>")
    assert (await email.client.post(MAILGUN, data=fields)).status == 201  # a real one still comes in


async def test_mailgun_unconfigured_is_503(settings, conn):
    async with running(settings, conn) as (client, _):
        r = await client.post(MAILGUN, data=mailgun_signed())
        assert r.status == 503
