"""Postfix after-queue content filter: Postfix hands each message over SMTP, the gateway decides,
marks it with `X-Contact-*` headers, redirects it where the decision says, and re-injects it.

It answers 250 only once Postfix's re-injection listener has taken the message; on any fault it
answers 451, so Postfix keeps the message and tries again: a fault delays mail, never loses it. A
retry of the same Message-ID gets the same decision and no second log row (the decide claim).
Delivery is at least once: a 250 lost on the wire means Postfix sends, and we re-inject, again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiosmtplib
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from .. import metrics
from ..contact import Decision, InboundContact
from ..decide import Rejected
from ..rules.context import CaseView
from ..runtime import RUNTIME, Runtime
from ..settings import NO_REINJECT, SettingsError
from .base import drive
from .email import contact_from_message
from .email.webhook import mail_limits, read_raw
from .fastagi import allowed
from .mailheaders import rewrite

log = logging.getLogger(__name__)
_PASSED_ON = re.compile(r"^(BODY=\S+|SMTPUTF8)$", re.IGNORECASE)  # SIZE changes once headers are added
_REF_IN_ADDRESS = re.compile(r"[^a-z0-9._-]+")
_DRAIN_SECONDS = 5.0


class ReinjectionRefused(Exception):
    """Postfix's re-injection listener took the message for some recipients only."""


@dataclass(frozen=True)
class FilteredMail:
    """One message as Postfix hands it over: the envelope and the raw bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """What becomes of the message: the control headers to add, and where it goes instead of its
    envelope recipients (None: to them, unchanged)."""

    fields: tuple[tuple[str, str], ...]
    redirect_to: str | None


async def contact_from_mail(mail: FilteredMail, rt: Runtime) -> InboundContact | Rejected:
    """The message read as every email entry reads it (channels/email), with Postfix's envelope
    sender (a null sender is never acknowledged). Mail over the email size limit is not read: it is
    logged and passed on undecided, as Postfix has already accepted it."""
    limits = mail_limits(rt)
    if len(mail.content) > limits.max_bytes:
        why = f"a message of {len(mail.content)} bytes is over GATEWAY_EMAIL_MAX_BYTES ({limits.max_bytes})"
        return Rejected("malformed", why + "; passed on undecided", "email", mail.mail_from)
    msg = replace(await read_raw(mail.content, limits), envelope_sender=mail.mail_from)  # large: in a thread
    contact = await contact_from_message(msg, rt)
    if isinstance(contact, InboundContact) and contact.provider_id is None:
        # No Message-ID: Postfix's retry sends the same bytes, so they make the idempotency key.
        return contact.model_copy(update={"provider_id": "sha256:" + hashlib.sha256(mail.content).hexdigest()})
    return contact


def case_of(decision: Decision, rt: Runtime) -> CaseView | None:
    case_id = decision.matched.case_id
    if case_id is None:
        return None
    return rt.index.cases_by_id.get(case_id)


def case_mailbox(template: str, reference: str) -> str:
    """The case file's address: `{case}` in the setting becomes the reference, made address-safe."""
    return template.replace("{case}", _REF_IN_ADDRESS.sub("-", reference.lower()))


def control_fields(decision: Decision, case: CaseView | None) -> tuple[tuple[str, str], ...]:
    target = decision.target
    fields = [
        ("X-Contact-Id", decision.contact_id or "none"),
        ("X-Contact-Action", decision.action),
        ("X-Contact-Target", f"{target.type}:{target.id}" if target else "none"),
        ("X-Contact-Flagged", "yes" if decision.flagged else "no"),
        ("X-Contact-Degraded", "yes" if decision.degraded else "no"),
    ]
    if case is not None:
        fields.append(("X-Contact-Case", case.reference))
    if decision.banner is not None:
        fields.append(("X-Contact-Banner", f"{decision.banner.severity}: {decision.banner.text}"))
    return tuple(fields)


class MailFilterChannel:
    """The channel half: a message in, its control headers and destination out."""

    name = "mailfilter"
    description = "Postfix after-queue content filter (SMTP in, re-injection out)"

    async def parse(self, raw: FilteredMail, rt: Runtime) -> InboundContact | Rejected:
        contact = await contact_from_mail(raw, rt)
        if isinstance(contact, Rejected):  # logged, then delivered on the safe answer: a refusal
            return replace(contact, refusal=None)  # would be a 451 every retry until Postfix bounces
        return contact

    def render(self, decision: Decision, created: bool, rt: Runtime) -> Delivery:
        case = case_of(decision, rt)
        return Delivery(control_fields(decision, case), self._mailbox(decision, case, rt))

    def _mailbox(self, decision: Decision, case: CaseView | None, rt: Runtime) -> str | None:
        target = decision.target
        if target is not None and target.type == "staff":
            person = rt.index.staff.get(int(target.id)) if target.id.isdigit() else None
            if person is not None and person.mailbox:
                return person.mailbox
            log.warning("mail filter: staff #%s has no mailbox; the message keeps its recipients", target.id)
        if decision.action == "auto_acknowledge" and case is not None:
            if rt.settings.case_mailbox:
                return case_mailbox(rt.settings.case_mailbox, case.reference)
            log.warning("mail filter: no GATEWAY_CASE_MAILBOX; case %s mail keeps its recipients", case.reference)
        return None


class _Handler:
    """aiosmtpd's handler: every message is decided and re-injected, or refused for now (451)."""

    def __init__(self, server: MailFilterServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        mail = FilteredMail(
            envelope.mail_from or "",
            tuple(envelope.rcpt_tos),
            envelope.original_content or b"",
            tuple(o for o in envelope.mail_options if _PASSED_ON.match(o)),
        )
        self.server.busy += 1
        try:
            async with asyncio.timeout(self.server.timeout):
                delivery = await drive(self.server.channel, mail, self.server.rt)
                await self.server.reinject(mail, delivery)
        except Exception as exc:  # Postfix keeps the message and tries again later
            log.warning("mail filter: message deferred (%s: %s)", type(exc).__name__, exc)
            metrics.MAIL_FILTER.labels("deferred").inc()
            return "451 4.3.0 Contact gateway cannot take this message now; try again later"
        finally:
            self.server.busy -= 1
        metrics.MAIL_FILTER.labels("passed").inc()
        return "250 2.0.0 Decided and passed on"

    async def handle_exception(self, error: Exception) -> str:
        log.warning("mail filter: SMTP session fault (%r)", error)
        return "451 4.3.0 Contact gateway fault; try again later"


class _GatedSMTP(SMTP):
    """aiosmtpd's SMTP session, refusing at once any peer outside GATEWAY_MAIL_FILTER_ALLOW."""

    line_length_limit = 64 * 1024  # never a 5xx (a bounce) for a long line Postfix passed on

    def __init__(self, server: MailFilterServer) -> None:
        super().__init__(
            _Handler(server),
            data_size_limit=server.settings.mail_filter_max_bytes,
            enable_SMTPUTF8=True,
            hostname="contact-gateway",
            ident="contact gateway mail filter",
            timeout=server.timeout + 60,
            loop=asyncio.get_running_loop(),
        )
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.sessions.add(transport)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if peer else ""
        if not allowed(host, self.server.settings.mail_filter_allow):
            assert self._handler_coroutine is not None
            self._handler_coroutine.cancel()
            if isinstance(transport, asyncio.WriteTransport):
                # 421, not 554: a misconfigured allow-list must make Postfix wait, never bounce mail.
                transport.write(b"421 4.7.1 Not on the mail filter's allow-list\r\n")
            transport.close()
            self.server.refused(host)

    def connection_lost(self, error: Exception | None) -> None:
        self.server.sessions.discard(self.transport)
        super().connection_lost(error)


class MailFilterServer:
    """The transport half: SMTP listeners on the configured addresses, and the re-injection client."""

    def __init__(self, rt: Runtime, channel: MailFilterChannel) -> None:
        self.rt, self.settings, self.channel = rt, rt.settings, channel
        if self.settings.mail_reinject is None:
            raise SettingsError(NO_REINJECT)
        self.reinject_to = self.settings.mail_reinject
        self.timeout = self.settings.mail_filter_timeout_ms / 1000
        self._servers: list[asyncio.Server] = []
        self.sessions: set[asyncio.BaseTransport] = set()
        self.busy = 0  # messages between DATA and their answer
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for host, port in self.settings.mail_filter_listen:
            server = await loop.create_server(
                lambda: _GatedSMTP(self), host, port, reuse_port=self.settings.workers > 1
            )
            self._servers.append(server)
            log.info("mail filter listening on %s port %s", host, port)

    async def close(self) -> None:
        """Stop taking connections; let messages in flight finish briefly, then drop the rest
        (Postfix sees the connection go and keeps those messages)."""
        for server in self._servers:
            server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DRAIN_SECONDS):
                while self.busy:
                    await asyncio.sleep(0.05)
        for transport in list(self.sessions):
            transport.close()
        await asyncio.gather(*self._background, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def reinject(self, mail: FilteredMail, delivery: Delivery) -> None:
        """Hand the marked message back to Postfix; raises unless every recipient was taken."""
        host, port = self.reinject_to
        recipients = [delivery.redirect_to] if delivery.redirect_to else list(mail.rcpt_tos)
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=self.timeout, start_tls=False)
        async with client:
            refused, _ = await client.sendmail(
                mail.mail_from, recipients, rewrite(mail.content, delivery.fields), mail_options=list(mail.mail_options)
            )
        if refused:
            raise ReinjectionRefused(
                ", ".join(f"{rcpt}: {reply.code} {reply.message}" for rcpt, reply in refused.items())
            )

    def refused(self, host: str) -> None:
        log.warning("mail filter: refused a connection from %s (not in GATEWAY_MAIL_FILTER_ALLOW)", host)
        metrics.MAIL_FILTER.labels("refused_peer").inc()
        why = f"mail filter connection from {host} refused: not in GATEWAY_MAIL_FILTER_ALLOW"
        task = asyncio.ensure_future(self.rt.decide.log_rejected(Rejected("rejected", why, "email", address=host)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def serve_mailfilter(app: web.Application) -> AsyncIterator[None]:
    """Started with the app when GATEWAY_MAIL_FILTER_LISTEN is set."""
    rt = app[RUNTIME]
    if not rt.settings.mail_filter_listen:
        yield
        return
    server = MailFilterServer(rt, MailFilterChannel())
    await server.start()
    app[MAILFILTER] = server
    yield
    await server.close()


MAILFILTER: web.AppKey[MailFilterServer] = web.AppKey("mailfilter", MailFilterServer)
