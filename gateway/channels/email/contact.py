"""One read email → the InboundContact every channel hands the decide service.

Shared by every email entry (the webhooks here, the Postfix content filter): threading (a case
reference in the subject that names a case on record, else In-Reply-To / References against the
message ids logged or sent for a case), the RFC 3834 verdict and the MIME defects travel with it.
"""

from __future__ import annotations

import logging

import asyncpg
import pydantic

from ...caseref import resolve
from ...contact import MAIL_DEFECTS, MAIL_MESSAGE_ID, MAIL_NO_ACK, MAIL_REFERENCES, InboundContact
from ...decide import Rejected
from ...runtime import Runtime
from ...store.threads import thread_case
from .mime import MailMessage, message_key
from .rfc3834 import why_not_acknowledged

log = logging.getLogger(__name__)
THREAD_LOOKUP_SECONDS = 0.3
BODY_CHARS = 100_000
REFERENCES_KEPT = 20


async def contact_from_message(msg: MailMessage, rt: Runtime, channel: str = "email") -> InboundContact | Rejected:
    """The contact for one email, or Rejected (logged by the driver) if even that cannot be made."""
    case_ref = await thread_reference(msg, rt)
    ids = [*msg.references[-REFERENCES_KEPT:], *([msg.message_id] if msg.message_id else [])]
    headers = {
        MAIL_MESSAGE_ID: msg.message_id or "",
        MAIL_REFERENCES: " ".join(dict.fromkeys(ids)),
        MAIL_NO_ACK: why_not_acknowledged(msg) or "",
        MAIL_DEFECTS: "; ".join(msg.defects),
    }
    try:
        return InboundContact.model_validate(
            {
                "channel": channel,
                "from": msg.sender[:320],
                "to": (msg.to or "")[:320] or None,
                "subject": msg.subject[:1000] or None,
                "body": body_with_attachments(msg) or None,
                "case_ref": case_ref,
                "provider_id": msg.provider_id,
                "headers": headers,
            }
        )
    except pydantic.ValidationError as exc:  # every value is capped above: this is a bug, still logged
        return Rejected("malformed", str(exc)[:2000], channel, msg.sender, msg.provider_id, refusal=exc)


async def thread_reference(msg: MailMessage, rt: Runtime) -> str | None:
    """The case this email belongs to: a reference in its subject naming a case on record, else the
    case of the nearest message it answers. None leaves the subject to the decide service."""
    found = resolve(rt.decide.case_refs, None, msg.subject, rt.index.case)
    if found is not None and rt.index.case(found) is not None:
        return found
    ids = [message_key(i) for i in msg.thread_ids]
    if not ids:
        return None
    try:
        return await thread_case(rt.pool, ids, THREAD_LOOKUP_SECONDS) or None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Threading is a refinement: without the database the subject still decides.
        log.warning("email threading lookup failed (%r); deciding on the subject alone", exc)
        return None


def body_with_attachments(msg: MailMessage) -> str:
    """The text, and the attachments listed (name, type, size): they are not stored."""
    listing = "".join(f"\n[attachment: {a.name or 'unnamed'} ({a.type}, {a.size} bytes)]" for a in msg.attachments)
    return (msg.text[:BODY_CHARS] + ("\n" + listing if listing else "")).strip()
