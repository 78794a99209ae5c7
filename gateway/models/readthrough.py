"""The read-through lane: writing about a closed case, waiting for a person to check it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from .base import In

Outcome = Literal["read_nothing_new", "new_information"]


class MarkIn(In):
    """What the person who read it found: nothing new (filed), or new information (to the case owner)."""

    outcome: Outcome
    note: str | None = Field(default=None, max_length=2000)


class Waiting(BaseModel):
    contact_id: str
    received_at: datetime
    channel: str
    sender: str | None
    subject: str | None
    excerpt: str | None
    customer_ids: list[int]
    case_id: int | None
    case_ref: str | None


class Marked(BaseModel):
    contact_id: str
    case_id: int | None
    outcome: Outcome
    staff_id: int
    at: datetime
    note: str | None
    target: dict[str, Any] | None
