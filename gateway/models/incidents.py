"""An incident referral: an agent tells the caution leads what happened on a contact (policy 000
§4.2-4.3: incidents are recorded and reported before a restriction is considered)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from ..rules.params import Id
from .base import In


class IncidentIn(In):
    contact_id: uuid.UUID | None = None
    customer_id: Id | None = None
    happened_at: AwareDatetime
    what: str = Field(min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _about_someone(self) -> IncidentIn:
        if self.contact_id is None and self.customer_id is None:
            raise ValueError("give the contact_id of the contact it happened on, or the customer_id")
        return self


class IncidentReferral(BaseModel):
    """A referral as the caution leads read it."""

    id: int
    customer_id: int | None
    contact_id: str | None
    happened_at: datetime
    what: str
    referred_by: int
    referred_by_name: str
    referred_at: datetime
