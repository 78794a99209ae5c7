"""The request for a new API key: a person's, or a calling system's."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..rules.params import Id
from .base import In


class KeyIn(In):
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
