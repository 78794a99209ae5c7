"""What the phone adapters share when rendering a decision: the number to dial, the flat map."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..contact import Decision, Target
from ..rules.context import StaffView

log = logging.getLogger(__name__)


def dial_number(target: Target | None, staff: Mapping[int, StaffView]) -> str | None:
    """The number behind a staff or voicemail target; None for a queue (or unknown staff)."""
    if target is None or target.type == "queue":
        return None
    person = staff.get(int(target.id)) if target.id.isdigit() else None
    if person is None:
        log.warning("target staff #%s is not in the index: no number to dial", target.id)
        return None
    if target.type == "voicemail":
        return person.voicemail or person.line
    return person.line


def flat_fields(decision: Decision, staff: Mapping[int, StaffView]) -> dict[str, str]:
    """The decision as a flat map of strings, for platforms that cannot read nested JSON."""
    target = decision.target
    return {
        "contact_id": decision.contact_id,
        "action": decision.action,
        "target_type": target.type if target else "",
        "target_id": target.id if target else "",
        "target_number": dial_number(target, staff) or "",
        "message": decision.customer_message or "",
        "banner": decision.banner.text if decision.banner else "",
        "flagged": _bool(decision.flagged),
        "degraded": _bool(decision.degraded),
    }


def _bool(value: bool) -> str:
    return "true" if value else "false"
