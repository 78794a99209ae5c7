"""What one restriction kind says about one contact, and the order that makes one outcome win."""

from __future__ import annotations

from dataclasses import dataclass

from .vocabulary import Action, Severity, Target, TargetType

# Least to most restrictive: when outcomes disagree the most restrictive wins.
ACTION_ORDER: tuple[Action, ...] = ("route", "hold", "auto_acknowledge", "deflect")
SEVERITY_ORDER: tuple[Severity, ...] = ("info", "warning", "danger")
# Enforced statuses: a proposed, lifted or lapsed restriction never touches a contact.
ENFORCED_STATUSES = frozenset({"active", "under_appeal"})
# Contacts that get no reply are filed here for a human read-through (DESIGN.md §3 lifecycle 9).
NEW_INFORMATION_QUEUE = "new-information"
CAUTION_QUEUE = "caution"


def action_rank(action: Action) -> int:
    return ACTION_ORDER.index(action)


def severity_rank(severity: Severity) -> int:
    return SEVERITY_ORDER.index(severity)


@dataclass(frozen=True, slots=True)
class Dest:
    """Where a contact goes: a queue name, or a staff id for a line, voicemail or mailbox."""

    type: TargetType
    id: str

    def as_target(self) -> Target:
        return Target(type=self.type, id=self.id)


@dataclass(frozen=True, slots=True)
class BannerPart:
    severity: Severity
    text: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """A kind's verdict on one contact. `action` None: the restriction does not act on it.

    `pins_target`: a routed contact must go to `target` whatever a manager rule proposes.
    """

    because: str
    action: Action | None = None
    target: Dest | None = None
    pins_target: bool = False
    flagged: bool = False
    banner: BannerPart | None = None
    customer_message: str | None = None
