"""What the contact log keeps of a contact: a decided one, or an attempt that could not be decided."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..contact import MAIL_DEFECTS, Decision, InboundContact
from ..contactlog import AnswerJson, ContactRecord
from ..identifiers import SenderHandle
from ..randomid import new_contact_id


@dataclass(frozen=True)
class Rejected:
    """An attempt that was not decided (malformed, or refused by authentication), as far as it was read.

    `refusal` is what the caller is told; None means the channel gives its safe answer (a caller
    is waiting on the phone), after the attempt is logged.
    """

    status: Literal["malformed", "rejected"]
    error: str
    channel: str = "unknown"
    sender: str = ""
    provider_id: str | None = None
    refusal: Exception | None = None
    # Who sent an attempt refused before anyone is known (a bad key or signature): past a limit a
    # minute, such attempts from one address are counted, not logged one by one (refusals.py).
    address: str = ""


def decided_record(
    contact: InboundContact,
    decision: Decision,
    handle: SenderHandle,
    received: datetime,
    started: float,
    *,
    error: str | None = None,
    ack: dict[str, Any] | None = None,
    ack_note: str | None = None,
) -> ContactRecord:
    m = decision.matched
    answered = decision.answered()  # the row's JSON columns are parts of it; the reply is made of it too
    plain = decision.answered_json_if_plain()  # its JSON, carried as it is when PostgreSQL can store it
    return ContactRecord(
        id=uuid.UUID(decision.contact_id),
        received_at=received,
        channel=contact.channel,
        action=decision.action,
        status="decided",
        sender_raw=contact.sender[:320] or None,
        sender_kind=handle.log_kind,
        sender=handle.value,
        recipient=contact.to,
        provider_id=contact.provider_id,
        subject=(contact.subject or None) and contact.subject[:500],
        body_excerpt=(contact.body or None) and contact.body[:2000],
        customer_ids=list(m.customer_ids),
        case_id=m.case_id,
        case_ref=contact.case_ref,
        on_behalf_of=contact.on_behalf_of,
        representative_of=list(m.representative_of),
        ambiguous=m.ambiguous,
        target=answered["target"],
        flagged=decision.flagged,
        banner=answered["banner"],
        customer_message=decision.customer_message,
        reasons=answered["reasons"],
        ruleset_version=decision.ruleset_version,
        degraded=decision.degraded,
        latency_us=int((time.perf_counter() - started) * 1e6),
        ack_note=ack_note,
        error=error or _defects(contact),
        decision=answered if plain is None else AnswerJson(plain, decision.stamp()),
        ack=ack,
    )


def _defects(contact: InboundContact) -> str | None:
    """What was wrong with an email's MIME (it was still decided on what could be read)."""
    found = contact.headers.get(MAIL_DEFECTS)
    return f"mail defects: {found}"[:2000] if found else None


def rejected_record(rejected: Rejected) -> ContactRecord:
    """A refused or malformed attempt keeps its provider id (findable by CallSid) without claiming
    it, so a good retry is still decided and logged. The log makes caller text storable."""
    provider_id = rejected.provider_id[:200] if rejected.provider_id else None
    return ContactRecord(
        id=uuid.UUID(new_contact_id()),  # time-ordered, as a decided contact's (randomid.py)
        received_at=datetime.now(UTC),
        channel=rejected.channel[:32] or "unknown",
        action="hold",
        status=rejected.status,
        sender_raw=rejected.sender[:320] or None,
        provider_id=provider_id,
        error=rejected.error[:2000],
    )
