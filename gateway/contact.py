"""The decide contract (DESIGN.md §4): what every channel adapter sends in and gets back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from .rules.params import Channel

Action = Literal["route", "deflect", "auto_acknowledge", "hold"]
TargetType = Literal["queue", "staff", "voicemail"]
Severity = Literal["info", "warning", "danger"]
GENERAL_QUEUE = "general"
RECEIVED_AT_PAST = timedelta(days=400)
RECEIVED_AT_FUTURE = timedelta(days=1)


class InboundContact(BaseModel):
    """One inbound contact as any adapter normalises it. `from` is the raw sender."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    channel: Channel
    sender: str = Field(default="", alias="from", max_length=320)
    to: str | None = Field(default=None, max_length=320)
    received_at: AwareDatetime | None = None
    provider_id: str | None = Field(default=None, min_length=1, max_length=200)
    subject: str | None = Field(default=None, max_length=1000)
    body: str | None = Field(default=None, max_length=200_000)
    case_ref: str | None = Field(default=None, max_length=50)
    on_behalf_of: str | None = Field(default=None, max_length=320)
    appointment: bool = False
    # Set by adapters, not callers of POST /v1/contacts: email threading headers and the like.
    headers: dict[str, str] = Field(default_factory=dict, exclude=True)

    @field_validator("received_at", mode="before")
    @classmethod
    def _blank_is_now(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("received_at")
    @classmethod
    def _plausible(cls, v: datetime | None) -> datetime | None:
        """A platform's clock may be off, and a letter may be logged late, but not by years."""
        if v is None:
            return v
        now = datetime.now(UTC)
        if not now - RECEIVED_AT_PAST <= v <= now + RECEIVED_AT_FUTURE:
            raise ValueError(
                f"must be within {RECEIVED_AT_PAST.days} days before and {RECEIVED_AT_FUTURE.days} day after now"
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """PostgreSQL text cannot hold NUL; replace it so the contact is logged, not lost."""
        if isinstance(data, dict) and any(isinstance(v, str) and "\x00" in v for v in data.values()):
            return {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in data.items()}
        return data


class Target(BaseModel):
    type: TargetType
    id: str


class Banner(BaseModel):
    severity: Severity
    text: str
    restriction_ids: list[int] = Field(default_factory=list)
    review_due: date | None = None


class Matched(BaseModel):
    customer_ids: list[int] = Field(default_factory=list)
    case_id: int | None = None
    representative_of: list[int] = Field(default_factory=list)
    ambiguous: bool = False
    withheld: bool = False


class Reason(BaseModel):
    source: str  # restriction | rule | identity | system
    id: str | None = None
    because: str


class Decision(BaseModel):
    """The answer every caller system gets: what to do with the contact, and why."""

    contact_id: str
    action: Action
    target: Target | None
    flagged: bool = False
    banner: Banner | None = None
    customer_message: str | None = None
    matched: Matched = Field(default_factory=Matched)
    reasons: list[Reason] = Field(default_factory=list)
    ruleset_version: int | None = None
    degraded: bool = False
    received_at: datetime | None = None


def degraded_decision(contact_id: str, why: str) -> Decision:
    """The safe answer when the restriction check cannot be made in time: route to the general queue."""
    return Decision(
        contact_id=contact_id,
        action="route",
        target=Target(type="queue", id=GENERAL_QUEUE),
        flagged=True,
        banner=Banner(
            severity="warning",
            text="Restriction check unavailable: check the customer "
            "record for contact restrictions before you continue.",
        ),
        reasons=[Reason(source="system", because=why)],
        degraded=True,
    )
