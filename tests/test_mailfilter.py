"""The mail filter without Postfix: its header surgery, its settings, and its SMTP side spoken to
directly with smtplib (a retry after a lost 250, a peer not on the allow-list), re-injecting into an
aiosmtpd sink. The same filter behind a real Postfix is in test_postfix_filter.py."""

from __future__ import annotations

import asyncio
import smtplib
import time
from email import message_from_bytes, policy
from ipaddress import ip_network

import pytest

from gateway.channels.mailfilter import MAILFILTER, case_mailbox
from gateway.channels.mailheaders import header_lines, header_safe, rewrite, split_head, strip_control_headers
from tests.helpers import free_port, logged_contacts, running
from tests.postfix import MailSink
from tests.tcpproxy import TcpProxy

RAW = (
    b"From: Lorraine Bell <lbell@example.com>\r\n"
    b"X-Contact-Action: route\r\n"
    b"To: housing@demo-homes.org.uk\r\n"
    b"x-contact-BANNER: forged\r\n"
    b"\tfolded forged text\r\n"
    b"Subject: Fence\r\n"
    b" panel\r\n"
    b"Message-ID: <fence-1@customer.example>\r\n"
    b"\r\n"
    b"X-Contact-Action: in the body, left alone\r\n"
)


def test_inbound_control_headers_are_removed_with_their_continuation_lines():
    head, body = split_head(RAW)
    kept = strip_control_headers(head)
    assert b"forged" not in kept and b"X-Contact-Action: route" not in kept
    assert b"Subject: Fence\r\n panel\r\n" in kept and body == b"\r\nX-Contact-Action: in the body, left alone\r\n"


def test_rewrite_adds_ours_on_top_and_leaves_the_rest_byte_for_byte():
    out = rewrite(RAW, [("X-Contact-Action", "deflect")])
    assert out.startswith(b"X-Contact-Action: deflect\r\nFrom: Lorraine Bell")
    assert out.endswith(b"Message-ID: <fence-1@customer.example>\r\n\r\nX-Contact-Action: in the body, left alone\r\n")


@pytest.mark.parametrize(
    "value",
    [
        "Do not visit alone\r\nBcc: everyone@example.org",
        "line\nbreak\rand\x00nul\x1b[31m",
        "Caution: café, naïve, 😀 " + "long " * 60,
    ],
)
def test_inserted_values_cannot_start_a_header_of_their_own(value):
    folded = header_lines([("X-Contact-Banner", value)])
    msg = message_from_bytes(folded + b"\r\nbody", policy=policy.default)
    assert list(msg.keys()) == ["X-Contact-Banner"]
    assert all(len(line) <= 78 for line in folded.split(b"\r\n"))
    assert folded.isascii()
    assert msg["X-Contact-Banner"] == header_safe(value)


def test_messages_without_a_body_or_without_headers():
    assert rewrite(b"Subject: only\r\n", [("X-Contact-Id", "1")]) == b"X-Contact-Id: 1\r\nSubject: only\r\n"
    assert rewrite(b"\r\nbody", [("X-Contact-Id", "1")]) == b"X-Contact-Id: 1\r\n\r\nbody"
    assert rewrite(b"Subject: x\n\nunix", [("X-Contact-Id", "1")]) == b"X-Contact-Id: 1\nSubject: x\n\nunix"


def test_case_mailbox_template():
    assert case_mailbox("casefile+{case}@h.example", "CMP-2041") == "casefile+cmp-2041@h.example"
    assert case_mailbox("casefile+{case}@h.example", "A B/<x>") == "casefile+a-b-x-@h.example"
    assert case_mailbox("cases@h.example", "CMP-1") == "cases@h.example"


@pytest.fixture
async def sink():
    s = MailSink()
    await s.start()
    yield s
    await s.close()


async def smtp_send(
    port: int, raw: bytes, rcpts: tuple[str, ...] = ("housing@demo-homes.org.uk",)
) -> tuple[int, bytes]:
    """One message straight to the filter, as Postfix's smtp client would hand it over."""

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:
            s.ehlo("postfix.test")
            s.mail("lbell@example.com")
            for rcpt in rcpts:
                s.rcpt(rcpt)
            return s.data(raw)

    return await asyncio.to_thread(send)


async def test_a_retry_after_a_lost_250_is_one_log_row(settings, conn, sink):
    port = free_port()
    cfg = settings.with_(mail_filter_listen=(("127.0.0.1", port),), mail_reinject=("127.0.0.1", sink.port))
    async with running(cfg, conn):
        assert (await smtp_send(port, RAW))[0] == 250
        assert (await smtp_send(port, RAW))[0] == 250  # Postfix never saw the first 250
        no_id = RAW.replace(b"Message-ID: <fence-1@customer.example>\r\n", b"")
        assert (await smtp_send(port, no_id))[0] == 250
        assert (await smtp_send(port, no_id))[0] == 250
    first, again, other, other_again = (d.message for d in sink.delivered)
    assert first["X-Contact-Id"] == again["X-Contact-Id"] != other["X-Contact-Id"] == other_again["X-Contact-Id"]
    assert len(await logged_contacts(conn, "provider_id = $1", "<fence-1@customer.example>")) == 1
    assert len(await logged_contacts(conn, "provider_id LIKE 'sha256:%'")) == 1


async def test_reinjection_unreachable_is_451(settings, conn):
    port = free_port()
    cfg = settings.with_(mail_filter_listen=(("127.0.0.1", port),), mail_reinject=("127.0.0.1", free_port()))
    async with running(cfg, conn) as (client, _):
        code, text = await smtp_send(port, RAW)
        exposed = await (await client.get("/metrics")).text()
    assert code == 451 and text.startswith(b"4.3.0")
    assert 'gateway_mail_filter_messages_total{outcome="deferred"}' in exposed


async def test_reinjection_that_hangs_is_451_by_the_filters_deadline(settings, conn, sink):
    port = free_port()
    hung = TcpProxy("127.0.0.1", sink.port)
    await hung.start()
    hung.freeze()
    cfg = settings.with_(
        mail_filter_listen=(("127.0.0.1", port),), mail_reinject=("127.0.0.1", hung.port), mail_filter_timeout_ms=1000
    )
    try:
        async with running(cfg, conn):
            started = time.monotonic()
            code, _ = await smtp_send(port, RAW)
            assert code == 451 and time.monotonic() - started < 5
    finally:
        await hung.close()
    assert not sink.delivered


async def test_reinjection_refusing_any_recipient_is_451(settings, conn, sink, caplog):
    """Postfix cannot be told 'some recipients': the message stays with Postfix for all of them
    (those taken may get it twice; none loses it)."""
    port = free_port()
    sink.refuse = {"gone@demo-homes.org.uk"}
    cfg = settings.with_(mail_filter_listen=(("127.0.0.1", port),), mail_reinject=("127.0.0.1", sink.port))
    async with running(cfg, conn):
        code, _ = await smtp_send(port, RAW, ("housing@demo-homes.org.uk", "gone@demo-homes.org.uk"))
    assert code == 451
    assert "ReinjectionRefused: gone@demo-homes.org.uk: 550 5.1.1 no such mailbox" in caplog.text


async def test_peer_outside_the_allow_list_is_told_421_and_logged(settings, conn):
    port = free_port()
    cfg = settings.with_(
        mail_filter_listen=(("127.0.0.1", port),),
        mail_reinject=("127.0.0.1", free_port()),
        mail_filter_allow=(ip_network("10.0.0.0/8"),),
    )
    async with running(cfg, conn) as (_, app):
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            await smtp_send(port, RAW)
        assert refused.value.smtp_code == 421
        assert app[MAILFILTER] is not None
    (row,) = await logged_contacts(conn, "status = 'rejected'")
    assert "not in GATEWAY_MAIL_FILTER_ALLOW" in row["error"] and row["channel"] == "email"


async def test_mail_over_the_email_size_limit_is_logged_and_passed_on_undecided(settings, conn, sink):
    port = free_port()
    cfg = settings.with_(
        mail_filter_listen=(("127.0.0.1", port),), mail_reinject=("127.0.0.1", sink.port), email_max_bytes=4096
    )
    big = RAW + (b"y" * 70 + b"\r\n") * 100  # over the email limit, under the filter's own
    async with running(cfg, conn):
        assert (await smtp_send(port, big))[0] == 250
    (got,) = sink.delivered
    assert got.message["X-Contact-Degraded"] == "yes" and got.message["X-Contact-Action"] == "route"
    assert got.rcpt_tos == ["housing@demo-homes.org.uk"] and got.raw.endswith((b"y" * 70 + b"\r\n") * 100)
    (row,) = await logged_contacts(conn, "status = 'malformed'")
    assert "over GATEWAY_EMAIL_MAX_BYTES (4096)" in row["error"] and row["sender_raw"] == "lbell@example.com"
