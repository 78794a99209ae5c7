"""The email channel: reading mail (mime), threading and the RFC 3834 verdict (contact, rfc3834),
and its HTTP entries: the generic webhook (raw MIME or JSON) and Mailgun's signed routes.

The stable interface for other email entries (the Postfix content filter):
`read_message(raw, limits) -> MailMessage` and `contact_from_message(msg, rt) -> InboundContact | Rejected`,
then `channels.base.drive`-style deciding through `rt.decide`.
"""

from __future__ import annotations

from .contact import contact_from_message
from .mailgun import MailgunChannel
from .mime import Attachment, MailLimits, MailMessage, message_from_fields, read_message
from .rfc3834 import is_automatic, why_not_acknowledged
from .webhook import EmailChannel

__all__ = [
    "Attachment",
    "EmailChannel",
    "MailLimits",
    "MailMessage",
    "MailgunChannel",
    "contact_from_message",
    "is_automatic",
    "message_from_fields",
    "read_message",
    "why_not_acknowledged",
]
