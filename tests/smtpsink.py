"""A real SMTP server (aiosmtpd) on loopback in the test's own event loop, keeping what it is sent."""

from __future__ import annotations

import asyncio
import email
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        return "250 OK"

    async def start(self, port: int = 0) -> SmtpSink:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: SMTP(self, enable_SMTPUTF8=True), "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]
