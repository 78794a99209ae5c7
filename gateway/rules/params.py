"""Per-kind restriction parameters (a discriminated union on `kind`) and the channels each closes.

Pure data definitions shared by the lifecycle (validation on save) and the engine (evaluation).
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Channel = Literal["phone", "email", "web_form", "letter", "visit"]
CHANNELS: tuple[Channel, ...] = ("phone", "email", "web_form", "letter", "visit")
WRITTEN: frozenset[str] = frozenset({"email", "web_form", "letter"})
PERSONAL: frozenset[str] = frozenset({"phone", "visit"})
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Kind = Literal[
    "set_times",
    "named_contact",
    "written_only",
    "no_personal_contact",
    "appointment_only",
    "closed_issue",
    "caution",
    "contact_limit",
]
KINDS: tuple[Kind, ...] = (
    "set_times",
    "named_contact",
    "written_only",
    "no_personal_contact",
    "appointment_only",
    "closed_issue",
    "caution",
    "contact_limit",
)
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """A weekly window in the provider's local time, e.g. Tuesdays and Thursdays 10:00-12:00."""

    days: list[Weekday] = Field(min_length=1, max_length=7)
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("a local time as HH:MM (24-hour)")
        return v

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.start_time >= self.end_time and self.end != "24:00":
            raise ValueError("end must be after start")
        return self

    @property
    def start_time(self) -> time:
        return time(int(self.start[:2]), int(self.start[3:]))

    @property
    def end_time(self) -> time:
        return time.max if self.end == "24:00" else time(int(self.end[:2]), int(self.end[3:]))


class SetTimes(_Strict):
    kind: Literal["set_times"] = "set_times"
    windows: list[Window] = Field(min_length=1, max_length=21)
    closed_on_bank_holidays: bool = True


class NamedContact(_Strict):
    kind: Literal["named_contact"] = "named_contact"
    staff_id: int = Field(gt=0)
    deputy_staff_id: int | None = Field(default=None, gt=0)


class WrittenOnly(_Strict):
    kind: Literal["written_only"] = "written_only"


class NoPersonalContact(_Strict):
    kind: Literal["no_personal_contact"] = "no_personal_contact"


class AppointmentOnly(_Strict):
    kind: Literal["appointment_only"] = "appointment_only"


class ClosedIssue(_Strict):
    kind: Literal["closed_issue"] = "closed_issue"
    case_id: int = Field(gt=0)


class Caution(_Strict):
    kind: Literal["caution"] = "caution"
    note: str = Field(min_length=1, max_length=500)


class ContactLimit(_Strict):
    kind: Literal["contact_limit"] = "contact_limit"
    limit: int = Field(ge=1, le=1000)
    period: Literal["day", "week", "month"]


Params = Annotated[
    SetTimes | NamedContact | WrittenOnly | NoPersonalContact | AppointmentOnly | ClosedIssue | Caution | ContactLimit,
    Field(discriminator="kind"),
]

# Channels a kind covers when the caution lead does not say (DESIGN.md §3 table).
DEFAULT_CHANNELS: dict[str, frozenset[str]] = {
    "set_times": frozenset({"phone"}),
    "named_contact": frozenset(CHANNELS),
    "written_only": PERSONAL,
    "no_personal_contact": PERSONAL,
    "appointment_only": frozenset({"visit"}),
    "closed_issue": frozenset(CHANNELS),
    "caution": frozenset(CHANNELS),
    "contact_limit": frozenset({"phone", "email", "web_form"}),
}

# Kinds that shut a covered channel outright (no time of day, person or appointment opens it).
_CLOSING_KINDS = frozenset({"written_only", "no_personal_contact"})


def closed_channels(kind: str, channels: frozenset[str] | set[str] | list[str]) -> frozenset[str]:
    """Channels a restriction leaves with no way in for the customer themself.

    set_times, named_contact, appointment_only, contact_limit, closed_issue and caution narrow a
    channel but leave it open (at set times, to one person, by appointment, up to a limit, for new
    matters); written_only and no_personal_contact close the personal channels they cover.
    """
    if kind in _CLOSING_KINDS:
        return frozenset(channels) & PERSONAL
    return frozenset()
