"""Request and response shapes for cases: complaints and issues, open, closed or exhausted."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from ..rules.params import Id
from .base import Day, In, given

CaseStatus = Literal["open", "closed", "exhausted"]
# A closed or exhausted case carries the date it was closed (the store checks; the schema says so).
_CLOSED_ON: JsonDict = {"anyOf": [{"properties": {"status": {"const": "open"}}}, given("closed_on")]}


class CaseIn(In):
    model_config = ConfigDict(json_schema_extra=_CLOSED_ON)

    customer_id: Id
    reference: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9_/-]*$")
    subject: str = Field(min_length=1, max_length=500)
    status: CaseStatus = "open"
    closed_on: Day | None = None
    outcome_letter: str | None = Field(default=None, max_length=20_000)
    owner_id: Id | None = None  # the staff member new information about the case goes to


class CasePatch(In):
    """Only the fields given change. A case always has a subject and a status: neither may be null."""

    model_config = ConfigDict(json_schema_extra=_CLOSED_ON)

    subject: str = Field(default=None, min_length=1, max_length=500)  # type: ignore[assignment]
    status: CaseStatus = None  # type: ignore[assignment]
    closed_on: Day | None = None
    outcome_letter: str | None = Field(default=None, max_length=20_000)
    owner_id: Id | None = None  # the staff member new information about the case goes to


class Case(BaseModel):
    id: int
    customer_id: int
    reference: str
    subject: str
    status: CaseStatus
    closed_on: date | None = None
    outcome_letter: str | None = None
    owner_id: int | None = None
