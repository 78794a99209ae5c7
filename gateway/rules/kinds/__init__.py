"""Every restriction kind, in one explicit tuple: the registry is built from it at start-up."""

from __future__ import annotations

from ..kind import RestrictionKind
from . import (
    appointment_only,
    caution,
    closed_issue,
    contact_limit,
    named_contact,
    no_personal_contact,
    set_times,
    written_only,
)

ALL: tuple[RestrictionKind, ...] = (
    set_times.KIND,
    named_contact.KIND,
    written_only.KIND,
    no_personal_contact.KIND,
    appointment_only.KIND,
    closed_issue.KIND,
    caution.KIND,
    contact_limit.KIND,
)
