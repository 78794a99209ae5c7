"""Pure policy checks for the restriction lifecycle: who acts, who activates, ways in, adjustments, dates.

No I/O and no clock: the store passes the rows it loaded and `today`.
"""

from __future__ import annotations

import calendar as _cal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from .errors import FieldInvalid, NotAllowed, RuleConflict
from .rules.calendar import Calendar
from .rules.params import CHANNELS, WRITTEN
from .rules.registry import REGISTRY

ENFORCED = frozenset({"active", "under_appeal"})
# A staff member of a key role may fill a slot of any role listed for it (a service caution
# lead is also a caution lead; a caution lead is not a service caution lead).
FILLS: dict[str, tuple[str, ...]] = {
    "service_caution_lead": ("service_caution_lead", "caution_lead"),
    "caution_lead": ("caution_lead",),
}
# Policy 000 §7.1: a review period longer than the standard is agreed by the Customer
# Experience Manager or the Service Caution Lead; managers above them may agree it too.
LONG_REVIEW_APPROVERS = frozenset({"service_caution_lead", "manager", "senior_manager"})
APPEAL_DECIDERS = frozenset({"manager", "senior_manager"})
APPEAL_WORKING_DAYS = 10
# How long the customer has to appeal, counted from the letter (stated in the letter).
APPEAL_WINDOW_WORKING_DAYS = 20
# Which channels a reasonable-adjustment flag relies on: the flag is broken when all are closed.
FLAG_NEEDS: dict[str, frozenset[str]] = {
    "needs_phone": frozenset({"phone"}),
    "needs_visit": frozenset({"visit"}),
    "needs_email": frozenset({"email"}),
    "needs_letter": frozenset({"letter"}),
    "cannot_write": frozenset({"phone", "visit"}),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who an audit event names: a label, and the staff member behind the credential when a person
    signed in (none for system keys, keys that belong to no one, and the gateway's own tasks)."""

    label: str
    staff_id: int | None = None


def staff_actor(staff_id: int, name: str) -> Actor:
    return Actor(f"staff:{staff_id}:{name}", staff_id)


def acting(actor: Actor, named: int | None = None, field: str = "staff_id") -> int:
    """The staff member taking a lifecycle step: whoever is signed in. A body that names someone
    else is refused, so one person's credential can never record another person's step."""
    if actor.staff_id is None:
        raise NotAllowed(
            "a lifecycle step is taken by a person: use a key of your own (one that belongs to a staff member)",
            code="not_a_person",
        )
    if named is not None and named != actor.staff_id:
        raise NotAllowed(
            f"{field} names staff member {named}, but you are signed in as staff member {actor.staff_id}: "
            "each person records their own step with their own key",
            {"field": field},
            code="not_you",
        )
    return actor.staff_id


def own_deciders(actor: Actor, named: Sequence[int]) -> list[int]:
    """Whoever records a restriction is its first decider; each other decider adds themselves later
    (POST /v1/restrictions/{id}/decide) with their own key, so `deciders` may name only the recorder."""
    me = acting(actor, None, "deciders")
    others = [i for i in named if i != me]
    if others:
        raise NotAllowed(
            f"deciders names staff member(s) {', '.join(map(str, others))}, but you are signed in as staff "
            f"member {me}: you are recorded as the first decider, and each other decider adds themselves "
            "with their own key (POST /v1/restrictions/{id}/decide)",
            {"field": "deciders"},
            code="not_you",
        )
    return [me]


def parse_rule(rule: str) -> dict[str, int]:
    """'service_caution_lead:1,caution_lead:2' → {'service_caution_lead': 1, 'caution_lead': 2}."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in rule.split(","))):
        role, _, count = part.partition(":")
        if role not in FILLS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"activation rule part {part!r}: expected role:count with role one of {', '.join(FILLS)}")
        out[role] = out.get(role, 0) + int(count)
    if not out:
        raise ValueError("the activation rule names no deciders")
    return out


def missing_deciders(rule: Mapping[str, int], decider_roles: Mapping[int, str]) -> dict[str, int]:
    """Slots of the rule not yet filled by distinct deciders; empty means the rule is met."""
    need = dict(rule)
    # Most restrictive slots first, each taken by the least versatile person who can fill it:
    # with nested roles this greedy choice is optimal.
    people = sorted(decider_roles.values(), key=lambda r: len(FILLS.get(r, ())))
    for role in sorted(need, key=lambda r: sum(r in fills for fills in FILLS.values())):
        while need[role] > 0:
            taker = next((p for p in people if role in FILLS.get(p, ())), None)
            if taker is None:
                break
            people.remove(taker)
            need[role] -= 1
    return {role: n for role, n in need.items() if n > 0}


@dataclass(frozen=True, slots=True)
class Closing:
    """What one restriction does to the customer's channels (for the checks below)."""

    restriction_id: int | None
    kind: str
    channels: frozenset[str]

    @property
    def closes(self) -> frozenset[str]:
        return REGISTRY[self.kind].closes(self.channels)


def open_channels(
    closings: Iterable[Closing], flags: Iterable[str] = (), has_representatives: bool = False
) -> frozenset[str]:
    """Channels the customer can still use; writing counts only if they or a representative can."""
    closed = frozenset().union(*(c.closes for c in closings))
    usable = set(CHANNELS)
    if "cannot_write" in set(flags) and not has_representatives:
        usable -= WRITTEN
    return frozenset(usable - closed)


def check_way_in(closings: Sequence[Closing], flags: Iterable[str] = (), has_representatives: bool = False) -> None:
    """Refuse a set of restrictions that together leave the customer no way to contact us."""
    if open_channels(closings, flags, has_representatives):
        return
    ids = [c.restriction_id for c in closings if c.closes]
    who = ", ".join(f"#{i}" if i else "this restriction" for i in ids)
    raise RuleConflict(
        "no way in: together with the customer's active restrictions this closes every channel "
        f"they can use (closing: {who}); policy requires at least one form of contact",
        {"conflict": "no_open_channel", "restriction_ids": [i for i in ids if i]},
        code="no_open_channel",
    )


def adjustment_conflicts(closings: Iterable[Closing], flags: Iterable[str], always_open: Iterable[str]) -> list[str]:
    """Recorded adjustments (flags, channels always open) that these restrictions would break."""
    closed = frozenset().union(*(c.closes for c in closings))
    broken = [
        f"{flag} (needs {' or '.join(sorted(FLAG_NEEDS[flag]))})"
        for flag in sorted(set(flags))
        if flag in FLAG_NEEDS and FLAG_NEEDS[flag] <= closed
    ]
    broken += [f"{ch} is recorded as always open to this customer" for ch in sorted(set(always_open) & closed)]
    return broken


def check_adjustments(
    others: Sequence[Closing],
    candidate: Closing,
    flags: Iterable[str],
    always_open: Iterable[str],
    equality_note_signed: bool,
) -> None:
    """Refuse a restriction newly breaking a recorded adjustment, unless a manager signed a note."""
    flags, always_open = list(flags), list(always_open)
    already = set(adjustment_conflicts(others, flags, always_open))
    broken = [c for c in adjustment_conflicts([*others, candidate], flags, always_open) if c not in already]
    if broken and not equality_note_signed:
        raise RuleConflict(
            "reasonable adjustments conflict: "
            + "; ".join(broken)
            + ". Attach an equality note signed by a manager to proceed",
            {"conflict": "adjustments", "broken": broken},
            code="adjustments_conflict",
        )


@dataclass(frozen=True, slots=True)
class NoWayIn:
    """Why a customer's enforced restrictions now fail them, which restrictions do it, and the
    channels on which their contacts must reach a person instead of being deflected."""

    restriction_ids: tuple[int, ...]
    why: str
    channels: frozenset[str]


def no_way_in(
    closings: Sequence[Closing],
    flags: Iterable[str],
    has_representatives: bool = False,
    noted: Iterable[int] = (),
) -> NoWayIn | None:
    """Always a way in, re-proved after a change to the person (never refused: a fact is a fact).
    None while the customer can reach us and no recorded need is shut; restrictions saved with a
    signed equality note (`noted`) were judged against the needs already, so only no-way-in counts."""
    flags = sorted(set(flags))
    closed = frozenset().union(*(c.closes for c in closings))
    needed = frozenset().union(*(FLAG_NEEDS.get(f, frozenset()) for f in flags)) & closed
    if not open_channels(closings, flags, has_representatives):
        channels = needed or closed
        why = "no way in: every channel the customer can use is closed"
    else:
        unnoted = frozenset().union(*(c.closes for c in closings if c.restriction_id not in set(noted)))
        broken = [f for f in flags if f in FLAG_NEEDS and FLAG_NEEDS[f] <= closed and FLAG_NEEDS[f] & unnoted]
        if not broken:
            return None
        channels = frozenset().union(*(FLAG_NEEDS[f] for f in broken))
        why = "reasonable adjustment shut"
    shut = ", ".join(f"{f} (needs {' or '.join(sorted(FLAG_NEEDS[f]))})" for f in flags if f in FLAG_NEEDS)
    ids = tuple(sorted(c.restriction_id for c in closings if c.restriction_id and c.closes & channels))
    detail = f"{why} ({'; '.join(filter(None, [shut, 'closed: ' + ', '.join(sorted(closed))]))})"
    return NoWayIn(ids, detail, channels)


def add_months(day: date, months: int) -> date:
    """Months later, clamped at month end (31 Jan + 1 → 28/29 Feb; 29 Feb + 12 → 28 Feb)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, _cal.monthrange(year, month)[1]))


def check_review_due(valid_from: date, review_due: date, default_months: int, approver_role: str | None) -> None:
    if review_due <= valid_from:
        raise FieldInvalid("review_due", "must be after valid_from")
    if review_due > add_months(valid_from, default_months) and approver_role is None:
        raise FieldInvalid(
            "review_due",
            f"is more than {default_months} months after valid_from; "
            "a longer period needs review_approver (a staff id)",
        )
    if (
        approver_role is not None
        and review_due > add_months(valid_from, default_months)
        and approver_role not in LONG_REVIEW_APPROVERS
    ):
        raise FieldInvalid(
            "review_approver",
            "a longer review period must be agreed by a service caution lead or a manager",
        )


@dataclass(frozen=True, slots=True)
class ReviewPeriod:
    """The review date in force, who agreed a longer one (None: none was needed, or not yet), and
    the longer period asked of someone else, awaiting their approval (JSON, as stored)."""

    review_due: date
    approver: int | None
    asked: dict[str, object] | None


def review_period(
    start: date, review_due: date, default_months: int, approver: int | None, me: int, today: date
) -> ReviewPeriod:
    """A review period no longer than the default needs nobody's approval. A longer one is in force
    at once only when the person taking the step is its approver; asked of someone else, it waits for
    them (POST .../review-period/approve) and the default date is in force meanwhile, so nothing is
    kept longer than policy allows on the word of someone who did not agree it."""
    default_due = add_months(start, default_months)
    if review_due <= default_due or approver is None:
        return ReviewPeriod(review_due, None, None)
    if approver == me:
        return ReviewPeriod(review_due, approver, None)
    asked = {
        "approver": approver,
        "review_due": review_due.isoformat(),
        "asked_by": me,
        "asked_on": today.isoformat(),
        "replaces": default_due.isoformat(),
    }
    return ReviewPeriod(default_due, None, asked)


def equality_note(
    note: Mapping[str, object] | None, me: int, today: date
) -> tuple[dict[str, object] | None, dict[str, object] | None]:
    """(the note as signed, the note as asked). A note is signed by its manager: one naming the
    person taking the step is signed now; one naming someone else waits for them to sign it
    (POST .../equality-note/sign), and the restriction is not activated until they have."""
    if note is None:
        return None, None
    if note["staff_id"] == me:
        return {**note, "on": note.get("on") or today.isoformat()}, None
    return None, {"staff_id": note["staff_id"], "note": note["note"], "asked_by": me, "asked_on": today.isoformat()}


def check_appeal_decider(staff_id: int, role: str, involved: Iterable[int]) -> None:
    """Policy 000 §6.3: someone more senior, not involved before, decides the appeal."""
    if role not in APPEAL_DECIDERS:
        raise NotAllowed(
            f"staff member {staff_id} is a {role.replace('_', ' ')}; an appeal is decided by a manager "
            "or senior manager",
            {"field": "staff_id"},
            code="not_senior",
        )
    if staff_id in set(involved):
        raise RuleConflict(
            f"staff member {staff_id} took part in this restriction and cannot decide the appeal; "
            "policy asks for a manager who was not involved",
            {"field": "staff_id"},
            code="involved",
        )


def appeal_due(lodged_on: date, cal: Calendar, working_days: int = APPEAL_WORKING_DAYS) -> date:
    return cal.working_days_after(lodged_on, working_days)


@dataclass(frozen=True, slots=True)
class Policy:
    """The provider's lifecycle settings, resolved once per request from Settings and closures."""

    rule: Mapping[str, int]
    review_months: int = 12
    calendar: Calendar = field(default_factory=Calendar)


def check_not_future(field: str, day: date | None, today: date) -> None:
    if day is not None and day > today:
        raise FieldInvalid(field, f"{day.isoformat()} is in the future")
