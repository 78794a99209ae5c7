"""The words restriction parameters are written in: channels, weekly windows, the params base.

Each kind's own params model lives in its module under `kinds/` and extends `KindParams`; the
discriminated union of them all (`Params`, for parsing) is built by the registry. Nothing here
imports a kind, so the vocabulary can build on this module.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Channel = Literal["phone", "email", "web_form", "letter", "visit"]
CHANNELS: tuple[Channel, ...] = ("phone", "email", "web_form", "letter", "visit")
ALL_CHANNELS: frozenset[str] = frozenset(CHANNELS)
WRITTEN: frozenset[str] = frozenset({"email", "web_form", "letter"})
PERSONAL: frozenset[str] = frozenset({"phone", "visit"})
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Every id is a PostgreSQL bigint: a larger number cannot name a record, so it is refused as input
# (with the field named) rather than failing in the database driver.
BIGINT_MAX = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
_HHMM_SCHEMA = "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"  # the same, said in ASCII digits for the schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KindParams(_Strict):
    """The base of every kind's params model; `kind` is the union's discriminator."""

    kind: str


class Window(_Strict):
    """A weekly window in the provider's local time, e.g. Tuesdays and Thursdays 10:00-12:00."""

    days: list[Weekday] = Field(min_length=1, max_length=7)
    start: str = Field(json_schema_extra={"pattern": _HHMM_SCHEMA})
    end: str = Field(json_schema_extra={"pattern": _HHMM_SCHEMA})

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
