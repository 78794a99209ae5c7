"""The decide contract's inbound side (DESIGN.md §4): the contact as a caller system sends it.

`InboundContact` is the rules' `Contact` plus what only the edge needs: when it arrived, the
provider's id for idempotency, and adapter-set headers. Whether `received_at` is plausible
depends on the clock, so the edge checks it (`implausible_received_at`), not the model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from .rules.vocabulary import (
    GENERAL_QUEUE,
    Action,
    Banner,
    Contact,
    Decision,
    Matched,
    Reason,
    Severity,
    Target,
    TargetType,
)

__all__ = [
    "GENERAL_QUEUE",
    "Action",
    "Banner",
    "Decision",
    "InboundContact",
    "Matched",
    "Reason",
    "Severity",
    "Target",
    "TargetType",
    "degraded_decision",
    "implausible_received_at",
]

RECEIVED_AT_PAST = timedelta(days=400)
# InboundContact.headers an email channel sets: its Message-ID and References (an acknowledgement
# answers them), why no acknowledgement may be sent (RFC 3834), and what was wrong with the MIME.
MAIL_MESSAGE_ID = "message-id"
MAIL_REFERENCES = "references"
MAIL_NO_ACK = "no-ack"
MAIL_DEFECTS = "defects"
# Set on every email the gateway sends, so that it never answers its own mail.
LOOP_HEADER = "X-Contact-Loop"
RECEIVED_AT_FUTURE = timedelta(days=1)


class InboundContact(Contact):
    """One inbound contact as any adapter normalises it."""

    received_at: AwareDatetime | None = None
    provider_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Set by adapters, not callers of POST /v1/contacts: email threading headers and the like.
    # Not in the API's schema, and refused from a caller (GenericChannel.contact_of).
    headers: SkipJsonSchema[dict[str, str]] = Field(default_factory=dict, exclude=True)

    @field_validator("received_at", mode="before")
    @classmethod
    def _blank_is_now(cls, v: Any) -> Any:
        return None if v == "" else v


def implausible_received_at(contact: InboundContact, now: datetime) -> str | None:
    """Why `received_at` cannot be right, or None. A platform's clock may be off, and a letter may
    be logged late, but not by years (nor would such a date fit the monthly log partitions)."""
    v = contact.received_at
    if v is None or now - RECEIVED_AT_PAST <= v <= now + RECEIVED_AT_FUTURE:
        return None
    return f"must be within {RECEIVED_AT_PAST.days} days before and {RECEIVED_AT_FUTURE.days} day after now"


def degraded_decision(contact_id: str, why: str) -> Decision:
    """The safe answer when the restriction check cannot be made in time: route to the general queue."""
    return Decision(
        contact_id=contact_id,
        action="route",
        target=Target(type="queue", id=GENERAL_QUEUE),
        flagged=True,
        banner=Banner(
            severity="warning",
            text="Restriction check unavailable: check the customer record for contact restrictions "
            "before you continue.",
        ),
        reasons=[Reason(source="system", because=why)],
        degraded=True,
    )
