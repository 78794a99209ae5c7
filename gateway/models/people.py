"""Request and response shapes for staff, customers, their identifiers, representatives and adjustments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .. import postal
from ..identifiers import IdentifierError, normalise, normalise_email, normalise_phone
from ..rules.params import CHANNELS, Channel, Id, Window
from ..rules.vocabulary import ADJUSTMENT_FLAGS
from .base import In
from .incidents import IncidentReferral

StaffRole = Literal["agent", "caution_lead", "service_caution_lead", "manager", "senior_manager"]
IdentifierKind = Literal["phone", "email", "web"]


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


class PasswordIn(In):
    """A staff member's password for signing in to the pages, set by an admin (checked for length
    where it is hashed)."""

    password: str = Field(min_length=12, max_length=200)


class StaffIn(In):
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


class IdentifierIn(In):
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


class RepresentativeIn(In):
    name: str = Field(min_length=1, max_length=200)
    relationship: str = Field(min_length=1, max_length=100)
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=20)


class Representative(RepresentativeIn):
    model_config = ConfigDict(extra="ignore")
    id: int


class Adjustments(In):
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


class PostalAddress(In):
    """Where letters go: up to six lines and a UK postcode (given alone as text, it is read the same
    way: lines separated by new lines, the last one the postcode or ending with it)."""

    lines: list[str] = Field(min_length=1, max_length=postal.MAX_LINES)
    postcode: str = Field(max_length=10)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            try:
                read = postal.from_text(data[:1000])
            except postal.AddressError as exc:
                raise ValueError(str(exc)) from None
            return {"lines": list(read.lines), "postcode": read.postcode}
        return data

    @model_validator(mode="after")
    def _checked(self) -> PostalAddress:
        try:
            read = postal.from_parts(self.lines, self.postcode)
        except postal.AddressError as exc:
            raise ValueError(str(exc)) from None
        self.lines, self.postcode = list(read.lines), read.postcode
        return self

    def address(self) -> postal.Address:
        return postal.Address(tuple(self.lines), self.postcode)


def _no_address(v: Any) -> Any:
    """ "" or blank text clears the address, as null does."""
    return None if isinstance(v, str) and not v.strip() else v


class CustomerIn(In):
    external_ref: str | None = Field(default=None, min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    postal_address: PostalAddress | None = None
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=50)
    representatives: list[RepresentativeIn] = Field(default_factory=list, max_length=20)
    adjustments: Adjustments = Field(default_factory=Adjustments)
    open_channels: list[Channel] = Field(default_factory=list, max_length=len(CHANNELS))

    _blank_address = field_validator("postal_address", mode="before")(_no_address)


class UrgentReview(In):
    """A restriction that leaves the customer no way in, flagged until the record or it changes."""

    model_config = ConfigDict(extra="ignore")
    restriction_id: int
    since: datetime
    why: str
    channels: list[str]


class Customer(CustomerIn):
    model_config = ConfigDict(extra="ignore")
    id: int
    representatives: list[Representative] = Field(default_factory=list)  # type: ignore[assignment]
    urgent_reviews: list[UrgentReview] = Field(default_factory=list)
    # Incidents agents referred to the caution leads, newest first.
    incident_referrals: list[IncidentReferral] = Field(default_factory=list)


class IdentifierChanges(In):
    add: list[IdentifierIn] = Field(default_factory=list, max_length=50)
    remove: list[IdentifierIn] = Field(default_factory=list, max_length=50)


class RepresentativeChange(In):
    """One representative changed: fields given replace theirs; `identifiers` replaces the whole list."""

    id: Id
    name: str | None = Field(default=None, min_length=1, max_length=200)
    relationship: str | None = Field(default=None, min_length=1, max_length=100)
    identifiers: list[IdentifierIn] | None = Field(default=None, max_length=20)


class RepresentativeChanges(In):
    add: list[RepresentativeIn] = Field(default_factory=list, max_length=20)
    change: list[RepresentativeChange] = Field(default_factory=list, max_length=20)
    remove: list[Id] = Field(default_factory=list, max_length=20)


class CustomerPatch(In):
    """PATCH /v1/customers/{id}: only the parts given change; `adjustments` replaces text and flags."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    # Text or parts replace the address; "" clears it (null, as for the other fields, leaves it).
    postal_address: PostalAddress | Literal[""] | None = None
    identifiers: IdentifierChanges | None = None
    representatives: RepresentativeChanges | None = None
    adjustments: Adjustments | None = None
    open_channels: list[Channel] | None = Field(default=None, max_length=len(CHANNELS))

    @field_validator("postal_address", mode="before")
    @classmethod
    def _blank_clears(cls, v: Any) -> Any:
        return "" if isinstance(v, str) and not v.strip() else v
