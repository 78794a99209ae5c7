"""Request and response shapes of the admin API: staff, customers, representatives, cases."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.config import JsonDict

from .identity import IdentifierError, normalise, normalise_email, normalise_phone
from .restriction_models import given
from .rules.params import CHANNELS, Channel, Id, Window

StaffRole = Literal["agent", "caution_lead", "service_caution_lead", "manager", "senior_manager"]
CaseStatus = Literal["open", "closed", "exhausted"]
IdentifierKind = Literal["phone", "email", "web"]
# Flags a caution lead records so that a restriction cannot silently remove a channel someone needs.
ADJUSTMENT_FLAGS = (
    "needs_phone",
    "needs_visit",
    "cannot_write",
    "needs_email",
    "needs_letter",
    "needs_interpreter",
    "needs_large_print",
    "needs_third_party",
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _phone(v: str | None) -> str | None:
    if v in (None, ""):
        return None
    try:
        return normalise_phone(v)
    except IdentifierError as exc:
        raise ValueError(str(exc)) from None


def _email(v: str | None) -> str | None:
    if v in (None, ""):
        return None
    try:
        return normalise_email(v)
    except IdentifierError as exc:
        raise ValueError(str(exc)) from None


class StaffIn(_In):
    name: str = Field(min_length=1, max_length=200)
    role: StaffRole
    line: str | None = Field(default=None, max_length=40)
    voicemail: str | None = Field(default=None, max_length=40)
    mailbox: str | None = Field(default=None, max_length=320)
    queue: str | None = Field(default=None, max_length=100)
    working_hours: list[Window] = Field(default_factory=list, max_length=21)

    _norm_line = field_validator("line", "voicemail")(_phone)
    _norm_mail = field_validator("mailbox")(_email)


class Staff(StaffIn):
    model_config = ConfigDict(extra="ignore")
    id: int
    active: bool = True


class IdentifierIn(_In):
    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=320)

    @field_validator("value")
    @classmethod
    def _normalise(cls, v: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind is None:
            return v
        try:
            return normalise(kind, v)
        except IdentifierError as exc:
            raise ValueError(f"{kind}: {exc}") from None


class RepresentativeIn(_In):
    name: str = Field(min_length=1, max_length=200)
    relationship: str = Field(min_length=1, max_length=100)
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=20)


class Representative(RepresentativeIn):
    model_config = ConfigDict(extra="ignore")
    id: int


class Adjustments(_In):
    text: str = Field(default="", max_length=4000)
    flags: list[str] = Field(
        default_factory=list,
        max_length=len(ADJUSTMENT_FLAGS),
        json_schema_extra={"items": {"enum": list(ADJUSTMENT_FLAGS)}},
    )

    @field_validator("flags")
    @classmethod
    def _known(cls, flags: list[str]) -> list[str]:
        unknown = sorted(set(flags) - set(ADJUSTMENT_FLAGS))
        if unknown:
            raise ValueError(f"unknown flag(s) {', '.join(unknown)}; known: {', '.join(ADJUSTMENT_FLAGS)}")
        return sorted(set(flags))


class CustomerIn(_In):
    external_ref: str | None = Field(default=None, min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=50)
    representatives: list[RepresentativeIn] = Field(default_factory=list, max_length=20)
    adjustments: Adjustments = Field(default_factory=Adjustments)
    open_channels: list[Channel] = Field(default_factory=list, max_length=len(CHANNELS))


class Customer(CustomerIn):
    model_config = ConfigDict(extra="ignore")
    id: int
    representatives: list[Representative] = Field(default_factory=list)  # type: ignore[assignment]


# A closed or exhausted case carries the date it was closed (the store checks; the schema says so).
_CLOSED_ON: JsonDict = {"anyOf": [{"properties": {"status": {"const": "open"}}}, given("closed_on")]}


class CaseIn(_In):
    model_config = ConfigDict(json_schema_extra=_CLOSED_ON)

    customer_id: Id
    reference: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9_/-]*$")
    subject: str = Field(min_length=1, max_length=500)
    status: CaseStatus = "open"
    closed_on: date | None = None
    outcome_letter: str | None = Field(default=None, max_length=20_000)


class CasePatch(_In):
    """Only the fields given change. A case always has a subject and a status: neither may be null."""

    model_config = ConfigDict(json_schema_extra=_CLOSED_ON)

    subject: str = Field(default=None, min_length=1, max_length=500)  # type: ignore[assignment]
    status: CaseStatus = None  # type: ignore[assignment]
    closed_on: date | None = None
    outcome_letter: str | None = Field(default=None, max_length=20_000)


class Case(BaseModel):
    id: int
    customer_id: int
    reference: str
    subject: str
    status: CaseStatus
    closed_on: date | None = None
    outcome_letter: str | None = None


class KeyIn(_In):
    """A person's key (`staff_id`; its role follows theirs, its name defaults to theirs) or a system
    key (`role` channel or admin, and a `name`)."""

    staff_id: Id | None = None
    role: Literal["channel", "agent", "manager", "caution_lead", "admin"] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _whose(self) -> KeyIn:
        if self.staff_id is not None and self.role is not None:
            raise ValueError("a staff member's key takes their role: give staff_id or role, not both")
        if self.staff_id is None and (self.role is None or self.name is None):
            raise ValueError("give staff_id for a person's key, or role and name for a system key")
        return self
