"""The acknowledgement an email contact gets, composed when it is decided and written to the outbox
in the same statement as its contact row. RFC 3834's header rules were applied when the email was
read (channels/email/rfc3834.py); its rate limits are applied when it is sent (sender.py)."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

from ..contact import MAIL_MESSAGE_ID, MAIL_NO_ACK, MAIL_REFERENCES, Decision, InboundContact
from ..settings import Settings
from .message import HeaderInjection, OutgoingMail, checked, one_address

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "acknowledgement.txt"
SUBJECT_CHARS = 200


def ack_address(settings: Settings) -> str:
    return settings.ack_from or settings.provider_email


def acknowledgement(
    contact: InboundContact, decision: Decision, settings: Settings, template: str
) -> tuple[OutgoingMail | None, str | None]:
    """(the mail to queue, the note the contact log keeps); (None, None) when no acknowledgement is due."""
    if decision.action != "auto_acknowledge" or MAIL_NO_ACK not in contact.headers:
        return None, None  # only email read by an email channel is answered by the gateway
    why = contact.headers[MAIL_NO_ACK]
    if why:
        return None, f"suppressed: {why}"
    sender = ack_address(settings)
    if not settings.smtp_url or not sender:
        return None, "not sent: no SMTP relay or From address configured (GATEWAY_SMTP_URL, GATEWAY_ACK_FROM)"
    subject = (contact.subject or "your email")[:SUBJECT_CHARS]
    provider = settings.provider()
    text = Template(template).safe_substitute(
        message=decision.customer_message or "Thank you for your email. It has been received.",
        how_to_write=provider.how_to_write(),
        provider_name=provider.name,
        subject=subject,
    )
    message_id = contact.headers.get(MAIL_MESSAGE_ID) or None
    try:
        mail = OutgoingMail(
            to=one_address(contact.sender),
            subject=checked("subject", f"Auto: {subject}"),
            text=text,
            message_id=_message_id(decision.contact_id, sender),
            in_reply_to=checked("in-reply-to", message_id) if message_id else None,
            references=checked("references", contact.headers.get(MAIL_REFERENCES, "")) or None,
            auto_reply=True,
        )
    except HeaderInjection as exc:
        return None, f"refused: {exc}"
    return mail, "queued"


def _message_id(contact_id: str, sender: str) -> str:
    return f"<ack.{contact_id}@{sender.rsplit('@', 1)[-1]}>"


def as_record(mail: OutgoingMail) -> dict[str, Any]:
    """The acknowledgement as the contact log's record carries it (and the spool keeps it)."""
    return {
        "to": mail.to,
        "subject": mail.subject,
        "text": mail.text,
        "message_id": mail.message_id,
        "in_reply_to": mail.in_reply_to,
        "references": mail.references,
    }


def load_template() -> str:
    return TEMPLATE.read_text(encoding="utf-8")
