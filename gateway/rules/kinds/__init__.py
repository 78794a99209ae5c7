"""Every restriction kind, in one explicit tuple: the registry is built from it at start-up.

Adding a kind: its module here, one line in ALL, and a migration if the database constrains kinds.
"""

from __future__ import annotations

from typing import Any

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

ALL: tuple[RestrictionKind[Any], ...] = (
    set_times.KIND,
    named_contact.KIND,
    written_only.KIND,
    no_personal_contact.KIND,
    appointment_only.KIND,
    closed_issue.KIND,
    caution.KIND,
    contact_limit.KIND,
)
