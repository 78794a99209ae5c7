"""The mail filter behind a real, private Postfix (tests/postfix.py): mail is submitted with smtplib,
goes through the gateway as Postfix's after-queue content filter, and is caught where Postfix
delivers it. Skipped, saying why, only where Postfix cannot run (not installed, or not root)."""

from __future__ import annotations

import asyncio
import itertools
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from gateway.demo import load_demo
from gateway.settings import Settings
from tests.factory import bearer, insert_staff_key
from tests.helpers import (
    GatewayProcess,
    eventually,
    listen_port,
    logged_contacts,
    running,
    staff_numbers,
    via_proxy,
)
from tests.postfix import Delivered, MailSink, PrivatePostfix, filter_main_cf, filter_services, unavailable
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=f"no private Postfix: {unavailable()}")

HOUSING = "housing@demo-homes.org.uk"
CASE_MAILBOX = "casefile+{case}@demo-homes.org.uk"
_n = itertools.count(1)


@pytest.fixture(scope="module")
async def sink():
    s = MailSink()
    await s.start()
    yield s
    await s.close()


@pytest.fixture(scope="module")
async def postfix(sink):
    pf = PrivatePostfix(listen_port(), sink.port)
    await pf.start()
    yield pf
    await pf.stop()


def filter_settings(settings: Settings, postfix: PrivatePostfix, *, reinject_port: int | None = None) -> Settings:
    return settings.with_(
        mail_filter_listen=(("127.0.0.1", postfix.filter_port),),
        mail_reinject=("127.0.0.1", reinject_port or postfix.reinject_port),
        mail_filter_timeout_ms=10_000,
        case_mailbox=CASE_MAILBOX,
    )


def filter_env(postfix: PrivatePostfix, reinject_port: int) -> dict[str, str]:
    return {
        "GATEWAY_MAIL_FILTER_LISTEN": f"127.0.0.1:{postfix.filter_port}",
        "GATEWAY_MAIL_REINJECT": f"127.0.0.1:{reinject_port}",
        "GATEWAY_CASE_MAILBOX": CASE_MAILBOX,
    }


@pytest.fixture
async def gateway(postfix, sink, settings, conn):
    """The gateway in this process, as Postfix's content filter; Postfix's queue emptied after."""
    sink.delivered.clear()
    async with running(filter_settings(settings, postfix), conn) as (client, _):
        yield client
    await postfix.flush_queue()


async def arrives(postfix: PrivatePostfix, sink: MailSink, message_id: str, timeout: float = 20) -> Delivered:
    """The message as delivered; if it never is, the failure shows what Postfix logged."""
    try:
        return await sink.wait_for(message_id, timeout)
    except AssertionError:
        raise AssertionError(
            f"{message_id} not delivered within {timeout}s; mail log:\n{postfix.maillog()[-6000:]}"
        ) from None


def message(sender: str, subject: str, *, to: str = HOUSING, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(f"t{next(_n)}", domain="customer.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("I am writing about my home.\n")
    return msg


async def one_row(conn, message_id: str, timeout: float = 5):
    async def logged() -> bool:
        return bool(await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = $1", message_id))

    await eventually(logged, timeout=timeout)
    rows = await logged_contacts(conn, "provider_id = $1", message_id)
    assert len(rows) == 1, f"expected one log row for {message_id}, found {len(rows)}"
    return rows[0]


async def test_routed_message_arrives_marked_and_forged_control_headers_are_gone(gateway, postfix, sink, conn):
    msg = message("lbell@example.com", "Repairs to the fence")
    msg["X-Contact-Action"] = "route"
    msg["x-contact-banner"] = "all clear, nothing to see"
    raw = msg.as_bytes().replace(b"\n\n", b"\nX-CONTACT-Case: CMP-0001\n  continued forged line\n\n", 1)
    await postfix.send(raw, "lbell@example.com", [HOUSING, "repairs@demo-homes.org.uk"])
    got = await arrives(postfix, sink, msg["Message-ID"])
    assert sorted(got.rcpt_tos) == [HOUSING, "repairs@demo-homes.org.uk"]
    assert got.mail_from == "lbell@example.com"
    headers = got.message
    assert headers.get_all("X-Contact-Action") == ["route"]
    assert headers.get_all("X-Contact-Case") is None
    (banner,) = headers.get_all("X-Contact-Banner")
    assert banner.startswith("danger: ") and "Do not visit alone" in banner and "all clear" not in banner
    assert b"continued forged line" not in got.raw and b"CMP-0001" not in got.raw
    row = await one_row(conn, msg["Message-ID"])
    assert headers["X-Contact-Id"] == str(row["id"]) and row["channel"] == "email"
    assert headers["X-Contact-Degraded"] == "no" and got.message.get_content().strip() == "I am writing about my home."


async def test_named_contact_customer_reaches_their_staff_members_mailbox(gateway, postfix, sink, conn):
    msg = message("kdoyle@example.net", "About my rent account")
    await postfix.send(msg, "kdoyle@example.net", [HOUSING])
    got = await arrives(postfix, sink, msg["Message-ID"])
    sam = await staff_numbers(conn, "Sam Patel")
    assert got.rcpt_tos == ["sam.patel@demo-homes.org.uk"]
    assert got.message["X-Contact-Target"] == f"staff:{sam['id']}"
    assert "Named contact: Sam Patel" in got.message["X-Contact-Banner"]
    assert got.message["To"] == HOUSING  # the letter itself is not rewritten, only where it goes


async def test_unknown_sender_keeps_every_recipient(gateway, postfix, sink, conn):
    msg = message("someone.new@example.org", "A question about parking")
    await postfix.send(msg, "bounce-123@example.org", [HOUSING, "parking@demo-homes.org.uk"])
    got = await arrives(postfix, sink, msg["Message-ID"])
    assert sorted(got.rcpt_tos) == [HOUSING, "parking@demo-homes.org.uk"]
    assert got.mail_from == "bounce-123@example.org"
    assert got.message["X-Contact-Action"] == "route" and got.message["X-Contact-Target"] == "queue:email"
    assert got.message["X-Contact-Banner"] is None


HOSTILE = (
    b"From: =?bogus-charset?q?L=E9?= <lbell@example.com>\r\n"
    b"To: housing@demo-homes.org.uk\r\n"
    b"Subject: caf\xe9 \xff\xfe broken =?utf-8?b?not base64?=\r\n"
    b"Message-ID: <hostile-1@customer.example>\r\n"
    b"X-Contact-Action: route\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="never-closed"\r\n'
    b"\r\n"
    b"--never-closed\r\n"
    b"Content-Type: text/plain; charset=no-such-charset\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"\xff\xfe not base64 at all\r\n"
)


async def test_broken_mime_and_8bit_headers_are_still_decided_and_delivered(gateway, postfix, sink, conn):
    await postfix.send(HOSTILE, "lbell@example.com", [HOUSING])
    got = await arrives(postfix, sink, "<hostile-1@customer.example>")
    assert got.rcpt_tos == [HOUSING] and got.message.get_all("X-Contact-Action") == ["route"]
    assert "Do not visit alone" in got.message["X-Contact-Banner"]
    assert got.raw.split(b"\r\n\r\n", 1)[1] == HOSTILE.split(b"\r\n\r\n", 1)[1]  # passed on byte for byte
    assert b"\r\nSubject: caf\xe9 \xff\xfe broken =?utf-8?b?not base64?=\r\n" in got.raw
    row = await one_row(conn, "<hostile-1@customer.example>")
    assert row["sender"] == "lbell@example.com" and got.message["X-Contact-Id"] == str(row["id"])


async def closed_issue_lands_in_the_case_mailbox(gateway, postfix, sink, conn, msg: EmailMessage) -> None:
    await postfix.send(msg, "p.novak@example.com", [HOUSING])
    got = await arrives(postfix, sink, msg["Message-ID"])
    assert got.rcpt_tos == ["casefile+cmp-2041@demo-homes.org.uk"]
    assert got.message["X-Contact-Action"] == "auto_acknowledge"
    assert got.message["X-Contact-Case"] == "CMP-2041"
    assert "Do not reopen case CMP-2041" in got.message["X-Contact-Banner"]
    row = await one_row(conn, msg["Message-ID"])
    assert row["case_id"] is not None and row["action"] == "auto_acknowledge"
    lane = await gateway.get("/v1/readthrough", headers=bearer(await insert_staff_key(conn, "Sam Patel")))
    assert got.message["X-Contact-Id"] in [i["contact_id"] for i in (await lane.json())["items"]]


async def test_closed_issue_with_bracketed_reference_is_filed_in_the_case_mailbox(gateway, postfix, sink, conn):
    await closed_issue_lands_in_the_case_mailbox(
        gateway, postfix, sink, conn, message("p.novak@example.com", "Re: [CMP-2041] still not fixed")
    )


async def test_closed_issue_with_unbracketed_reference_is_filed_in_the_case_mailbox(gateway, postfix, sink, conn):
    await closed_issue_lands_in_the_case_mailbox(
        gateway, postfix, sink, conn, message("p.novak@example.com", "RE: CMP-2041 I still disagree")
    )


async def test_closed_issue_by_in_reply_to_only_is_filed_in_the_case_mailbox(gateway, postfix, sink, conn):
    first = message("p.novak@example.com", "[CMP-2041] the damp again")
    await postfix.send(first, "p.novak@example.com", [HOUSING])
    await arrives(postfix, sink, first["Message-ID"])
    reply = message("p.novak@example.com", "Re: the damp again", In_Reply_To=first["Message-ID"])
    await closed_issue_lands_in_the_case_mailbox(gateway, postfix, sink, conn, reply)


async def test_an_unrelated_report_from_the_closed_issue_customer_is_routed_normally(gateway, postfix, sink):
    msg = message("p.novak@example.com", "New leak under the kitchen sink")
    await postfix.send(msg, "p.novak@example.com", [HOUSING])
    got = await arrives(postfix, sink, msg["Message-ID"])
    assert got.rcpt_tos == [HOUSING] and got.message["X-Contact-Action"] == "route"
    assert "Do not reopen case CMP-2041" in got.message["X-Contact-Banner"]


async def test_without_its_database_the_gateway_delivers_on_the_safe_answer(
    postfix, sink, settings, conn, proxy, tmp_path
):
    """Cold start with the database away: the mail still goes to its recipients, marked degraded,
    and its contact reaches the log once the database is back."""
    sink.delivered.clear()
    await load_demo(conn)
    await proxy.cut()
    cold = filter_settings(settings, postfix).with_(
        database_url=via_proxy(settings.database_url, proxy.port), spool_dir=str(tmp_path)
    )
    msg = message("kdoyle@example.net", "Sent while the records are away")
    try:
        async with running(cold, conn, demo=False):
            await postfix.send(msg, "kdoyle@example.net", [HOUSING])
            got = await arrives(postfix, sink, msg["Message-ID"])
            assert got.rcpt_tos == [HOUSING]  # not the named contact's: nothing could say so
            assert got.message["X-Contact-Degraded"] == "yes" and got.message["X-Contact-Flagged"] == "yes"
            assert got.message["X-Contact-Banner"].startswith("warning: Restriction check unavailable")
            await proxy.restore()
            assert (await one_row(conn, msg["Message-ID"], timeout=20))["degraded"] is True
    finally:
        await postfix.flush_queue()


async def test_reinjection_refused_means_451_and_delivery_once_it_is_back(postfix, sink, settings, conn):
    """Postfix's re-injection listener unreachable: the filter answers 451, Postfix keeps the message
    and retries; once re-injection works it is delivered once, with one log row."""
    sink.delivered.clear()
    proxy = TcpProxy("127.0.0.1", postfix.reinject_port)
    await proxy.start()
    await proxy.cut()
    try:
        async with running(filter_settings(settings, postfix, reinject_port=proxy.port), conn):
            msg = message("kdoyle@example.net", "Reinjection will be refused")
            mark = postfix.log_mark()
            await postfix.send(msg, "kdoyle@example.net", [HOUSING])

            async def deferred() -> bool:
                return "451 4.3.0 Contact gateway cannot take this message now" in postfix.maillog(mark)

            await eventually(deferred, timeout=20)
            assert not sink.with_message_id(msg["Message-ID"]) and postfix.queued()
            await proxy.restore()
            got = await arrives(postfix, sink, msg["Message-ID"], timeout=30)
            await asyncio.sleep(2)  # a second attempt would have arrived by now
            assert len(sink.with_message_id(msg["Message-ID"])) == 1
            assert got.message["X-Contact-Id"] == str((await one_row(conn, msg["Message-ID"]))["id"])
    finally:
        await proxy.close()
        await postfix.flush_queue()


@pytest.mark.timeout(150)
async def test_gateway_stopped_mid_flow_postfix_defers_and_delivers_later(postfix, sink, settings, conn):
    """`python -m gateway serve` as a real process, stopped while a message is inside it (decided,
    waiting on re-injection) and while another is submitted: Postfix keeps both and delivers each
    exactly once when the gateway is back, each with one log row."""
    sink.delivered.clear()
    await load_demo(conn)
    proxy = TcpProxy("127.0.0.1", postfix.reinject_port)
    await proxy.start()
    env = filter_env(postfix, proxy.port)
    before, inside, while_down = (message("lbell@example.com", s) for s in ("before", "inside", "while down"))
    try:
        mark = postfix.log_mark()
        async with GatewayProcess(settings, **env):
            await postfix.send(before, "lbell@example.com", [HOUSING])
            await arrives(postfix, sink, before["Message-ID"])
            proxy.freeze()  # re-injection hangs: the next message stays inside the gateway
            await postfix.send(inside, "lbell@example.com", [HOUSING])
            await one_row(conn, inside["Message-ID"])  # decided and logged, not yet re-injected
        await postfix.send(while_down, "lbell@example.com", [HOUSING])

        async def refused() -> bool:
            return "Connection refused" in postfix.maillog(mark)

        await eventually(refused, timeout=20)
        assert not sink.with_message_id(inside["Message-ID"]) and not sink.with_message_id(while_down["Message-ID"])
        assert len(postfix.queued()) == 2
        proxy.thaw()
        async with GatewayProcess(settings, **env):
            for msg in (inside, while_down):
                await arrives(postfix, sink, msg["Message-ID"], timeout=60)
            await asyncio.sleep(2)
        for msg in (before, inside, while_down):
            (got,) = sink.with_message_id(msg["Message-ID"])
            assert got.message["X-Contact-Id"] == str((await one_row(conn, msg["Message-ID"]))["id"])
        assert not postfix.queued()
        assert "lost connection with 127.0.0.1[127.0.0.1] while sending end of data" in postfix.maillog(mark)
    finally:
        await proxy.close()
        await postfix.flush_queue()


async def test_closed_issue_sender_gets_exactly_one_acknowledgement_through_postfix(postfix, sink, settings, conn):
    """The acknowledgement goes out through Postfix's re-injection listener (README: not back
    through the filter): one to the sender for two messages about the closed case within 7 days."""
    sink.delivered.clear()
    cfg = filter_settings(settings, postfix).with_(
        smtp_url=f"smtp://127.0.0.1:{postfix.reinject_port}", ack_from=HOUSING, provider_name="Demo Homes"
    )
    first = message("p.novak@example.com", "Re: [CMP-2041] still not fixed")
    second = message("p.novak@example.com", "RE: CMP-2041 and another thing")
    try:
        async with running(cfg, conn):
            await postfix.send(first, "p.novak@example.com", [HOUSING])
            await arrives(postfix, sink, first["Message-ID"])

            async def acknowledged() -> bool:
                return any(d.rcpt_tos == ["p.novak@example.com"] for d in sink.delivered)

            await eventually(acknowledged, timeout=20)
            await postfix.send(second, "p.novak@example.com", [HOUSING])
            await arrives(postfix, sink, second["Message-ID"])
            await asyncio.sleep(3)  # the outbox sender polls every second: a second one would be here
        (ack,) = [d for d in sink.delivered if d.rcpt_tos == ["p.novak@example.com"]]
        assert ack.message["Auto-Submitted"] == "auto-replied" and ack.message["Subject"].startswith("Auto: ")
        assert ack.message["In-Reply-To"] == first["Message-ID"] and ack.mail_from == HOUSING
        assert ack.message["X-Contact-Action"] is None  # not taken back through the filter
        assert await conn.fetchval("SELECT count(*) FROM contacts WHERE channel = 'email'") == 2
    finally:
        await postfix.flush_queue()


def test_readme_gives_the_postfix_lines_the_tests_run():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert filter_services(10025, 10026) in readme
    assert filter_main_cf(10025) in readme
