"""Acknowledgements: written to the outbox with their contact, delivered to a real SMTP server
(aiosmtpd), never to automatic mail (RFC 3834), at most one per sender per case per 7 days and a
daily cap per sender, with every suppression logged with its reason; In-Reply-To threading."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.contactlog import ContactRecord, Spool, replay_file
from gateway.demo import load_demo
from gateway.outbox import HeaderInjection, OutgoingMail, build_email
from gateway.runtime import RUNTIME
from gateway.store.outbox import enqueue
from tests.factory import bearer, insert_restriction, today
from tests.helpers import eventually, logged_contacts, running
from tests.smtpsink import SmtpSink
from tests.test_channel_email import EMAIL, NOVAK, mime

ACK_FROM = "housing@demo-homes.org.uk"


@pytest.fixture
async def sink():
    s = await SmtpSink().start()
    yield s
    await s.close()


@pytest.fixture
async def gateway(settings, conn, keys, sink):
    s = settings.with_(smtp_url=sink.url, ack_from=ACK_FROM, provider_name="Demo Homes")
    async with running(s, conn) as (client, app):
        yield Gateway(client, app, keys, sink)


class Gateway:
    def __init__(self, client, app, keys, sink):
        self.client, self.app, self.keys, self.sink = client, app, keys, sink

    async def email(self, raw: bytes) -> dict:
        headers = {**bearer(self.keys["channel"]), "Content-Type": "message/rfc822"}
        r = await self.client.post(EMAIL, data=raw, headers=headers)
        assert r.status in (200, 201), await r.text()
        return await r.json()

    async def outbox_settled(self, conn, contact_id: str) -> dict:
        async def settled() -> bool:
            row = await conn.fetchrow("SELECT status FROM outbox WHERE contact_id = $1", contact_id)
            return row is not None and row["status"] != "queued"

        await eventually(settled, timeout=5)
        return dict(await conn.fetchrow("SELECT * FROM outbox WHERE contact_id = $1", contact_id))


async def test_closed_issue_email_gets_exactly_one_acknowledgement(gateway, conn):
    out = await gateway.email(mime("RE: CMP-2041 I still disagree", message_id="<orig-1@mail.example.com>"))
    assert out["action"] == "auto_acknowledge"
    row = await gateway.outbox_settled(conn, out["contact_id"])
    assert row["status"] == "sent", row
    [got] = gateway.sink.to(NOVAK)
    assert got.rcpt_tos == [NOVAK] and got.mail_from == ACK_FROM
    m = got.message
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["Subject"] == "Auto: RE: CMP-2041 I still disagree"
    assert m["In-Reply-To"] == "<orig-1@mail.example.com>"
    assert "<orig-1@mail.example.com>" in m["References"]
    assert m["X-Contact-Loop"] == ACK_FROM
    text = m.get_content()
    assert "filed with case CMP-2041" in text and "Demo Homes" in text
    logged = (await logged_contacts(conn, "id = $1", out["contact_id"]))[0]
    assert logged["ack_note"].startswith("sent") and logged["ack_sent"]


async def test_a_second_within_seven_days_gets_none(gateway, conn):
    first = await gateway.email(mime("RE: CMP-2041 once"))
    assert (await gateway.outbox_settled(conn, first["contact_id"]))["status"] == "sent"
    second = await gateway.email(mime("[CMP-2041] twice"))
    row = await gateway.outbox_settled(conn, second["contact_id"])
    assert row["status"] == "suppressed" and "within 7 days" in row["note"]
    assert len(gateway.sink.to(NOVAK)) == 1
    logged = (await logged_contacts(conn, "id = $1", second["contact_id"]))[0]
    assert logged["ack_note"].startswith("suppressed") and not logged["ack_sent"]


@pytest.mark.parametrize(
    ("extra", "sender", "reason"),
    [
        ("Auto-Submitted: auto-replied\r\n", NOVAK, "Auto-Submitted"),
        ("Auto-Submitted: auto-generated; owner-email=x@y\r\n", NOVAK, "Auto-Submitted"),
        ("Precedence: bulk\r\n", NOVAK, "Precedence: bulk"),
        ("Precedence: list\r\n", NOVAK, "Precedence: list"),
        ("Precedence: junk\r\n", NOVAK, "Precedence: junk"),
        ("List-Id: <tenants.example.com>\r\n", NOVAK, "list mail"),
        ("List-Unsubscribe: <mailto:u@example.com>\r\n", NOVAK, "list mail"),
        ("X-Auto-Response-Suppress: All\r\n", NOVAK, "X-Auto-Response-Suppress"),
        ("Return-Path: <>\r\n", NOVAK, "empty Return-Path"),
        ("X-Contact-Loop: housing@demo-homes.org.uk\r\n", NOVAK, "X-Contact-Loop"),
        ("X-Autoreply: yes\r\n", NOVAK, "auto-reply header"),
        ("", "MAILER-DAEMON@example.com", "automatic sender"),
        ("", "postmaster@example.com", "automatic sender"),
        ("", "noreply@example.com", "automatic sender"),
        ("", "no-reply@example.com", "automatic sender"),
    ],
)
async def test_automatic_mail_is_never_acknowledged(settings, conn, keys, sink, extra, sender, reason):
    """Against a customer whose every email is acknowledged (a closed_issue on the case named)."""
    await load_demo(conn)
    await _novak_also_writes_as(conn, sender)
    s = settings.with_(smtp_url=sink.url, ack_from=ACK_FROM)
    async with running(s, conn, demo=False) as (client, app):
        gw = Gateway(client, app, keys, sink)
        out = await gw.email(mime("RE: CMP-2041 still", sender=sender, extra=extra))
        assert out["action"] == "auto_acknowledge"
        logged = (await logged_contacts(conn, "id = $1", out["contact_id"]))[0]
        assert logged["ack_note"].startswith("suppressed") and reason in logged["ack_note"], logged["ack_note"]
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        await app[RUNTIME].outbox.run_once()
        assert sink.received == []


async def _novak_also_writes_as(conn, address: str) -> None:
    if address == NOVAK:
        return
    cid = await conn.fetchval("SELECT id FROM customers WHERE name = 'Peter Novak'")
    await conn.execute(
        "INSERT INTO identifiers (kind, value, customer_id) VALUES ('email', $1, $2)", address.lower(), cid
    )


async def test_daily_cap_per_sender(settings, conn, keys, sink):
    await load_demo(conn)
    cid = await conn.fetchval("SELECT id FROM customers WHERE name = 'Peter Novak'")
    for ref in ("CMP-3001", "CMP-3002"):
        case_id = await conn.fetchval(
            "INSERT INTO cases (customer_id, reference, subject, status, closed_on) "
            "VALUES ($1, $2, 'Old complaint', 'exhausted', $3) RETURNING id",
            cid,
            ref,
            today() - timedelta(days=30),
        )
        await insert_restriction(conn, cid, {"kind": "closed_issue", "case_id": case_id})
    s = settings.with_(smtp_url=sink.url, ack_from=ACK_FROM, ack_daily_cap=2)
    async with running(s, conn, demo=False) as (client, app):
        gw = Gateway(client, app, keys, sink)
        notes = []
        for ref in ("CMP-2041", "CMP-3001", "CMP-3002"):
            out = await gw.email(mime(f"RE: {ref}"))
            notes.append((await gw.outbox_settled(conn, out["contact_id"]))["note"])
        assert len(sink.to(NOVAK)) == 2
        assert "daily cap of 2" in notes[2]


async def test_limits_hold_without_redis(gateway, conn):
    """Redis away: the outbox itself says what was sent."""
    rt = gateway.app[RUNTIME]
    first = await gateway.email(mime("RE: CMP-2041 one"))
    assert (await gateway.outbox_settled(conn, first["contact_id"]))["status"] == "sent"
    await rt.redis.flushdb()
    broken = rt.outbox.limits.redis
    rt.outbox.limits.redis = _DeadRedis()  # the limits' only Redis: unreachable from here on
    try:
        second = await gateway.email(mime("RE: CMP-2041 two"))
        row = await gateway.outbox_settled(conn, second["contact_id"])
        assert row["status"] == "suppressed" and "within 7 days" in row["note"]
    finally:
        rt.outbox.limits.redis = broken


class _DeadRedis:
    """A Redis client for a server that does not answer (a closed port)."""

    def __getattr__(self, name):
        async def refused(*args, **kwargs):
            raise ConnectionRefusedError("redis is down")

        return refused


async def test_reply_to_our_acknowledgement_threads_by_in_reply_to(gateway, conn):
    first = await gateway.email(mime("RE: CMP-2041", message_id="<first-9@mail.example.com>"))
    await gateway.outbox_settled(conn, first["contact_id"])
    ack_id = gateway.sink.to(NOVAK)[0].message["Message-ID"]
    reply = mime("Re: your automatic reply", extra=f"In-Reply-To: {ack_id}\r\nReferences: {ack_id}\r\n")
    out = await gateway.email(reply)
    assert out["action"] == "auto_acknowledge" and out["matched"]["case_id"] == first["matched"]["case_id"]
    # and a reply naming only the customer's own earlier email on the case
    reply = mime("Re: a different subject", extra="In-Reply-To: <first-9@mail.example.com>\r\n")
    out = await gateway.email(reply)
    assert out["matched"]["case_id"] == first["matched"]["case_id"]


async def test_unrelated_mail_with_unknown_in_reply_to_is_routed(gateway):
    out = await gateway.email(mime("New repair", extra="In-Reply-To: <never-seen@x>\r\n"))
    assert out["action"] == "route" and out["matched"]["case_id"] is None


async def test_relay_down_then_up_delivers_on_retry(settings, conn, keys):
    sink = SmtpSink()
    port = (await sink.start()).port
    await sink.close()  # nothing listens there now
    s = settings.with_(smtp_url=f"smtp://127.0.0.1:{port}", ack_from=ACK_FROM)
    async with running(s, conn) as (client, app):
        gw = Gateway(client, app, keys, sink)
        out = await gw.email(mime("RE: CMP-2041 while the relay is away"))

        async def attempted() -> bool:
            row = await conn.fetchrow("SELECT attempts, note FROM outbox WHERE contact_id = $1", out["contact_id"])
            return row is not None and row["attempts"] >= 1 and row["note"] is not None

        await eventually(attempted, timeout=5)
        row = await conn.fetchrow("SELECT status, note FROM outbox WHERE contact_id = $1", out["contact_id"])
        assert row["status"] == "queued" and "attempt 1 failed" in row["note"]
        await sink.start(port)
        await conn.execute("UPDATE outbox SET next_attempt_at = now()")  # the back-off, elapsed
        await app[RUNTIME].outbox.run_once()  # or the app's own sender, whichever leases it first

        async def delivered() -> bool:
            return len(sink.to(NOVAK)) == 1

        await eventually(delivered, timeout=5)
        await sink.close()


async def test_header_injection_is_refused():
    for bad in ("Auto: hi\r\nBcc: victim@example.com", "x\ny"):
        with pytest.raises(HeaderInjection):
            build_email(OutgoingMail(to=NOVAK, subject=bad, text="t"), ACK_FROM, "Demo Homes")
    for to in (f"{NOVAK}, victim@example.com", f"Peter <{NOVAK}>", "a@b\r\nBcc: c@d"):
        with pytest.raises(HeaderInjection):
            build_email(OutgoingMail(to=to, subject="s", text="t"), ACK_FROM, "Demo Homes")


async def test_crlf_smuggled_in_an_encoded_subject_cannot_add_a_recipient(gateway, conn):
    subject = "=?utf-8?q?RE=3A_CMP-2041=0D=0ABcc=3A_victim=40example=2Ecom?="
    out = await gateway.email(mime(subject))
    await gateway.outbox_settled(conn, out["contact_id"])
    [got] = gateway.sink.received
    assert got.rcpt_tos == [NOVAK] and got.message["Bcc"] is None
    assert "\n" not in got.message["Subject"]


async def test_no_relay_configured_is_noted(settings, conn, keys):
    async with running(settings, conn) as (client, app):
        gw = Gateway(client, app, keys, None)
        out = await gw.email(mime("RE: CMP-2041"))
        logged = (await logged_contacts(conn, "id = $1", out["contact_id"]))[0]
        assert logged["ack_note"].startswith("not sent: no SMTP relay")
        await asyncio.sleep(0)


async def test_the_outbox_sends_a_letter_with_its_attachment(gateway, conn):
    """The outbox is generic: a letter (to, subject, text, a PDF) goes out the same way, with no
    automatic-reply headers and no rate limits."""
    pdf = b"%PDF-1.4\n% a letter\n"
    await enqueue(
        conn,
        kind="letter",
        to=NOVAK,
        subject="Your contact arrangements",
        body="Please find your letter attached.",
        message_id="<letter-1@demo-homes.org.uk>",
        attachments=[("letter.pdf", "application/pdf", pdf)],
    )
    await gateway.app[RUNTIME].outbox.run_once()  # or the app's own sender, whichever leases it first

    async def delivered() -> bool:
        return bool(gateway.sink.to(NOVAK))

    await eventually(delivered, timeout=5)
    [got] = gateway.sink.to(NOVAK)
    m = got.message
    assert m["Auto-Submitted"] is None and m["Subject"] == "Your contact arrangements"
    [part] = list(m.iter_attachments())
    assert part.get_filename() == "letter.pdf" and part.get_content() == pdf
    assert await conn.fetchval("SELECT status FROM outbox WHERE message_id = '<letter-1@demo-homes.org.uk>'") == "sent"


async def test_a_spooled_contact_gets_its_acknowledgement_when_the_spool_is_replayed(settings, conn, tmp_path):
    """The acknowledgement travels with its record: written to the outbox by the replay, once."""
    record = ContactRecord(
        id=uuid.uuid4(),
        received_at=datetime.now(UTC),
        channel="email",
        action="auto_acknowledge",
        provider_id="<spooled-1@mail.example.com>",
        ack={"to": NOVAK, "subject": "Auto: x", "text": "t", "message_id": "<ack.spooled-1@x>"},
    )
    spool = Spool(tmp_path)
    spool.write([record])
    assert await replay_file(conn, spool.path) == 1
    row = await conn.fetchrow("SELECT to_addr, status, contact_id FROM outbox")
    assert (row["to_addr"], row["status"], row["contact_id"]) == (NOVAK, "queued", record.id)
    spool.write([record])  # a second replay of the same record adds nothing
    for path in spool.files():
        await replay_file(conn, path)
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 1


async def test_an_address_the_relay_refuses_for_good_is_not_retried(gateway, conn):
    """A 5xx from the relay (here 553, a malformed address) is permanent: failed at once with the
    relay's words, not retried with back-off for hours."""
    await enqueue(
        conn,
        kind="letter",
        to="claudia.shu@example.com.",  # the trailing dot: the relay refuses it with 553
        subject="Your contact arrangements",
        body="Please find your letter attached.",
        message_id="<letter-2@demo-homes.org.uk>",
    )

    async def settled() -> bool:
        await gateway.app[RUNTIME].outbox.run_once()
        row = await conn.fetchrow(
            "SELECT status, attempts FROM outbox WHERE message_id = '<letter-2@demo-homes.org.uk>'"
        )
        return row["status"] != "queued"

    await eventually(settled, timeout=5)
    row = await conn.fetchrow("SELECT * FROM outbox WHERE message_id = '<letter-2@demo-homes.org.uk>'")
    assert row["status"] == "failed" and row["attempts"] == 1


async def test_the_sender_stops_when_woken_as_it_is_closed(gateway):
    # A wake (an acknowledgement just queued) in the same turn as the shutdown's cancel: Python 3.11's
    # wait_for lost the cancel, and the gateway's stop waited on the sender for ever.
    outbox = gateway.app[RUNTIME].outbox
    await asyncio.sleep(0.3)  # nothing due: it waits to be woken
    outbox.wake()
    closing = asyncio.create_task(outbox.close())
    done, _ = await asyncio.wait([closing], timeout=5)
    assert closing in done, "the outbox sender did not stop"
