"""Every cell of DESIGN.md §3: kind × channel → action, target, banner severity, flag."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest

from gateway.rules.calendar import LONDON
from gateway.rules.context import Bundle, Match
from gateway.rules.counters import contact_limit_key
from gateway.rules.engine import decide

from .factories import (
    CLOSED_CASE,
    CUSTOMER,
    OTHER_CASE,
    STAFF,
    TUE_1030,
    TUE_1500,
    TUE_2000,
    bundle,
    context,
    restriction,
)
from .factories import contact as make_contact

# The default rule set's normal route per channel.
NORMAL = {
    "phone": ("queue", "general"),
    "email": ("queue", "email"),
    "web_form": ("queue", "web"),
    "letter": ("queue", "general"),
    "visit": ("queue", "reception"),
}
NEW_INFO = ("queue", "new-information")
ALL = ("phone", "email", "web_form", "letter", "visit")
WRITTEN = ("email", "web_form", "letter")

# (kind, channel, situation, now) -> (action, target, severity, flagged)
Row = tuple[str, str, dict[str, Any], datetime, str, tuple[str, str] | None, str, bool]
ROWS: list[Row] = [
    # set_times: phone only by default; inside a window routes, outside deflects.
    ("set_times", "phone", {}, TUE_1030, "route", NORMAL["phone"], "warning", False),
    ("set_times", "phone", {}, TUE_1500, "deflect", None, "warning", False),
    *[("set_times", ch, {}, TUE_1500, "route", NORMAL[ch], "warning", False) for ch in (*WRITTEN, "visit")],
    # named_contact: that person's line inside their hours, else their voicemail; never a queue.
    ("named_contact", "phone", {}, TUE_1030, "route", ("staff", "7"), "info", False),
    ("named_contact", "phone", {}, TUE_2000, "route", ("voicemail", "7"), "info", False),
    *[("named_contact", ch, {}, TUE_2000, "route", ("staff", "7"), "info", False) for ch in (*WRITTEN, "visit")],
    ("named_contact", "phone", {"staff": {8: None}}, TUE_1030, "route", ("staff", "8"), "info", False),
    ("named_contact", "email", {"staff": {}}, TUE_1030, "route", ("queue", "caution"), "info", True),
    # written_only: calls and visits deflected, writing routed.
    ("written_only", "phone", {}, TUE_1030, "deflect", None, "warning", False),
    ("written_only", "visit", {}, TUE_1030, "deflect", None, "warning", False),
    *[("written_only", ch, {}, TUE_1030, "route", NORMAL[ch], "warning", False) for ch in WRITTEN],
    # no_personal_contact: the customer's own call/visit deflected; a representative's routed.
    ("no_personal_contact", "phone", {}, TUE_1030, "deflect", None, "warning", False),
    ("no_personal_contact", "visit", {}, TUE_1030, "deflect", None, "warning", False),
    ("no_personal_contact", "phone", {"rep": True}, TUE_1030, "route", NORMAL["phone"], "warning", False),
    ("no_personal_contact", "visit", {"rep": True}, TUE_1030, "route", NORMAL["visit"], "warning", False),
    *[("no_personal_contact", ch, {}, TUE_1030, "route", NORMAL[ch], "warning", False) for ch in WRITTEN],
    # appointment_only: only a visit without an appointment is deflected.
    *[("appointment_only", ch, {}, TUE_1030, "route", NORMAL[ch], "info", False) for ch in ("phone", *WRITTEN)],
    ("appointment_only", "visit", {}, TUE_1030, "deflect", None, "info", False),
    ("appointment_only", "visit", {"appointment": True}, TUE_1030, "route", NORMAL["visit"], "info", False),
    # closed_issue: writing about the case is acknowledged, filed, queued; the rest routes.
    *[
        ("closed_issue", ch, {"case": CLOSED_CASE}, TUE_1030, "auto_acknowledge", NEW_INFO, "warning", True)
        for ch in WRITTEN
    ],
    ("closed_issue", "phone", {"case": CLOSED_CASE}, TUE_1030, "route", NORMAL["phone"], "warning", False),
    ("closed_issue", "visit", {"case": CLOSED_CASE}, TUE_1030, "route", NORMAL["visit"], "warning", False),
    *[("closed_issue", ch, {"case": OTHER_CASE}, TUE_1030, "route", NORMAL[ch], "warning", False) for ch in ALL],
    *[("closed_issue", ch, {}, TUE_1030, "route", NORMAL[ch], "warning", False) for ch in ALL],
    # caution: always routed (the default rule set sends it to the caution queue, flagged).
    *[("caution", ch, {}, TUE_1030, "route", ("queue", "caution"), "danger", True) for ch in ALL],
    # contact_limit 3 per week: within the limit routes; over it deflects or acknowledges.
    *[("contact_limit", ch, {"count": 3}, TUE_1030, "route", NORMAL[ch], "warning", False) for ch in ALL],
    ("contact_limit", "phone", {"count": 4}, TUE_1030, "deflect", None, "warning", True),
    *[
        ("contact_limit", ch, {"count": 4}, TUE_1030, "auto_acknowledge", NEW_INFO, "warning", True)
        for ch in ("email", "web_form")
    ],
    *[
        ("contact_limit", ch, {"count": 4}, TUE_1030, "route", NORMAL[ch], "warning", False)
        for ch in ("letter", "visit")
    ],
]


def _ids(row: Row) -> str:
    kind, channel, situation, now = row[:4]
    extra = ",".join(f"{k}" for k in situation)
    return f"{kind}-{channel}-{now:%H%M}{'-' + extra if extra else ''}"


@pytest.mark.parametrize("row", ROWS, ids=[_ids(r) for r in ROWS])
def test_design_table(row: Row) -> None:
    kind, channel, situation, now, action, target, severity, flagged = row
    r = restriction(kind)
    match = Match((bundle(r),), representative_of=(1,) if situation.get("rep") else ())
    staff = situation.get("staff")
    counts = {contact_limit_key(r, now, LONDON): situation["count"]} if "count" in situation else {}
    ctx = context(
        match,
        staff=None if staff is None else {k: STAFF[k] for k in staff},
        counts=counts,
        case=situation.get("case"),
        appointment=situation.get("appointment", False),
    )
    verdict = decide(make_contact(channel), ctx, now)
    assert verdict.action == action, verdict.reasons
    got = (verdict.target.type, verdict.target.id) if verdict.target else None
    assert got == target, verdict.reasons
    assert verdict.banner is not None and verdict.banner.severity == severity
    assert verdict.banner.restriction_ids == [1]
    assert verdict.flagged is flagged
    assert (verdict.customer_message is not None) is (action in ("deflect", "auto_acknowledge"))
    assert any(reason.source == "restriction" for reason in verdict.reasons) or action == "route"


@pytest.mark.parametrize(
    ("channel", "target", "flagged"),
    [
        ("phone", ("queue", "caution"), True),  # nothing of theirs can take a call: a caution lead does
        ("email", ("staff", "9"), False),  # their mailbox still can
    ],
)
def test_named_contact_with_no_line_never_falls_to_the_general_queue(channel, target, flagged) -> None:
    from gateway.rules.context import RestrictionView
    from gateway.rules.kinds.named_contact import NamedContact

    r = RestrictionView(1, 1, "named_contact", NamedContact(staff_id=9), frozenset({"phone", "email"}))
    ctx = context(Match((bundle(r),)), staff={9: STAFF[9]})
    verdict = decide(make_contact(channel), ctx, TUE_1030)
    assert (verdict.target.type, verdict.target.id) == target
    assert verdict.flagged is flagged


@pytest.mark.parametrize("status", ["open", "closed"])
def test_a_complaint_no_longer_exhausted_is_answered_again_and_its_restriction_flagged_for_review(status) -> None:
    """Reopened (or its review found not over): writing about it is no longer filed unanswered, and
    the banner tells the agent the restriction wants reviewing."""
    reopened = dataclasses.replace(CLOSED_CASE, status=status, closed_on=None)
    r = restriction("closed_issue")
    match = Match((Bundle(CUSTOMER, (r,), (), (reopened,)),))
    verdict = decide(make_contact("email"), context(match, case=reopened), TUE_1030)
    assert verdict.action == "route" and verdict.customer_message is None
    assert verdict.banner is not None and f"is {status}, not exhausted" in verdict.banner.text
