"""One outgoing email, generic (to, subject, text, attachments), and the MIME the relay is given.

Every value that becomes a header is checked: a CR or LF in it refuses the message (HeaderInjection),
so no text a customer wrote can add a header or a recipient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from ..contact import LOOP_HEADER

_FORBIDDEN = ("\r", "\n", "\x00")


class HeaderInjection(ValueError):
    """A value meant for a header holds a line break: the message is refused, never sent."""


@dataclass(frozen=True)
class OutgoingAttachment:
    name: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class OutgoingMail:
    """What the outbox holds. `auto_reply` marks an RFC 3834 automatic response (rate limits apply)."""

    to: str
    subject: str
    text: str
    message_id: str = field(default_factory=lambda: make_msgid(domain="gateway.invalid"))
    in_reply_to: str | None = None
    references: str | None = None
    attachments: tuple[OutgoingAttachment, ...] = ()
    auto_reply: bool = False


def checked(name: str, value: str) -> str:
    if any(c in value for c in _FORBIDDEN):
        raise HeaderInjection(f"{name} holds a line break")
    return value


def one_address(value: str) -> str:
    """Exactly one plain address: no display name, list or group that could widen the recipients."""
    checked("to", value)
    if value.count("@") != 1 or "=?" in value or any(c in value for c in ' ,;:<>()"\\'):
        raise HeaderInjection(f"to must be one plain address, got {value[:80]!r}")
    return value


def build_email(mail: OutgoingMail, sender: str, sender_name: str) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr((checked("sender name", sender_name), one_address(sender)))
    msg["To"] = one_address(mail.to)
    msg["Subject"] = checked("subject", mail.subject)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = checked("message id", mail.message_id)
    if mail.in_reply_to:
        msg["In-Reply-To"] = checked("in-reply-to", mail.in_reply_to)
    if mail.references:
        msg["References"] = checked("references", mail.references)
    if mail.auto_reply:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = sender
    msg.set_content(mail.text)
    for a in mail.attachments:
        maintype, _, subtype = a.content_type.partition("/")
        msg.add_attachment(a.content, maintype=maintype, subtype=subtype or "octet-stream", filename=a.name)
    return msg
