"""Pure lifecycle rules: activation, always a way in (property test), adjustments, dates, report."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import lifecycle as lc
from gateway.errors import FieldInvalid, NotAllowed, RuleConflict
from gateway.reviews import ReviewRow, due_report, local_today, to_csv, window_end
from gateway.rules.calendar import Calendar
from gateway.rules.params import CHANNELS
from gateway.rules.registry import KINDS

RULE = lc.parse_rule("service_caution_lead:1,caution_lead:2")
LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("roles", "missing"),
    [
        ({}, {"service_caution_lead": 1, "caution_lead": 2}),
        ({1: "service_caution_lead", 2: "caution_lead"}, {"caution_lead": 1}),
        ({1: "service_caution_lead", 2: "caution_lead", 3: "caution_lead"}, {}),
        # A service caution lead is also a caution lead; the reverse is not true.
        ({1: "service_caution_lead", 2: "service_caution_lead", 3: "caution_lead"}, {}),
        ({1: "caution_lead", 2: "caution_lead", 3: "caution_lead"}, {"service_caution_lead": 1}),
        ({1: "caution_lead", 2: "service_caution_lead"}, {"caution_lead": 1}),
        ({1: "manager", 2: "caution_lead", 3: "caution_lead"}, {"service_caution_lead": 1}),
    ],
)
def test_activation_rule(roles: dict[int, str], missing: dict[str, int]) -> None:
    assert lc.missing_deciders(RULE, roles) == missing


@pytest.mark.parametrize("bad", ["", "manager:1", "caution_lead:0", "caution_lead", "caution_lead:x"])
def test_activation_rule_setting_is_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        lc.parse_rule(bad)


# An oracle from DESIGN.md §3: only these kinds turn the customer away outright on a channel.
TURNS_AWAY = {"written_only": {"phone", "visit"}, "no_personal_contact": {"phone", "visit"}}
WRITTEN = {"email", "web_form", "letter"}

closing = st.builds(
    lambda i, k, ch: lc.Closing(i, k, frozenset(ch)),
    st.integers(1, 10**6),
    st.sampled_from(KINDS),
    st.sets(st.sampled_from(CHANNELS), min_size=1),
)


def oracle_open(closings: list[lc.Closing], cannot_write: bool, reps: bool) -> set[str]:
    usable = set(CHANNELS) - (WRITTEN if cannot_write and not reps else set())
    return {c for c in usable if not any(c in r.channels and c in TURNS_AWAY.get(r.kind, ()) for r in closings)}


@given(st.lists(closing, max_size=8), st.booleans(), st.booleans())
def test_always_a_way_in(closings: list[lc.Closing], cannot_write: bool, reps: bool) -> None:
    flags = ["cannot_write"] if cannot_write else []
    expected = oracle_open(closings, cannot_write, reps)
    assert lc.open_channels(closings, flags, reps) == expected
    if expected:
        lc.check_way_in(closings, flags, reps)
    else:
        with pytest.raises(RuleConflict) as exc:
            lc.check_way_in(closings, flags, reps)
        assert exc.value.code == "no_open_channel"
    # Order does not matter, and adding a restriction never opens a channel.
    assert lc.open_channels(list(reversed(closings)), flags, reps) == expected
    for extra in closings[:1]:
        assert lc.open_channels([*closings, extra], flags, reps) <= expected


@pytest.mark.parametrize(
    ("flags", "always", "kinds", "broken"),
    [
        (["needs_phone"], [], ["written_only"], ["needs_phone (needs phone)"]),
        (["needs_phone"], [], ["set_times", "caution", "appointment_only"], []),
        (["needs_visit"], [], ["no_personal_contact"], ["needs_visit (needs visit)"]),
        (["needs_email", "needs_letter"], [], ["written_only"], []),
        (["cannot_write"], [], ["written_only"], ["cannot_write (needs phone or visit)"]),
        (
            [],
            ["phone"],
            ["no_personal_contact"],
            ["phone is recorded as always open to this customer"],
        ),
    ],
)
def test_adjustment_conflicts(flags: list[str], always: list[str], kinds: list[str], broken: list[str]) -> None:
    closings = [lc.Closing(i, k, frozenset(CHANNELS)) for i, k in enumerate(kinds, 1)]
    assert lc.adjustment_conflicts(closings, flags, always) == broken


def test_equality_note_lets_an_adjustment_conflict_through() -> None:
    written = lc.Closing(None, "written_only", frozenset({"phone"}))
    with pytest.raises(RuleConflict):
        lc.check_adjustments([], written, ["needs_phone"], [], equality_note_signed=False)
    lc.check_adjustments([], written, ["needs_phone"], [], equality_note_signed=True)
    # A conflict already accepted on an earlier restriction does not block an unrelated one.
    lc.check_adjustments(
        [written],
        lc.Closing(None, "written_only", frozenset({"phone"})),
        ["needs_phone"],
        [],
        equality_note_signed=False,
    )


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2025, 3, 31), 12, date(2026, 3, 31)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2025, 8, 31), 6, date(2026, 2, 28)),
    ],
)
def test_add_months_clamps_at_month_end(start: date, months: int, expected: date) -> None:
    assert lc.add_months(start, months) == expected


def test_review_period() -> None:
    start = date(2024, 2, 29)
    lc.check_review_due(start, date(2025, 2, 28), 12, None)
    with pytest.raises(FieldInvalid, match="review_approver"):
        lc.check_review_due(start, date(2025, 3, 1), 12, None)
    with pytest.raises(FieldInvalid, match="review_approver"):
        lc.check_review_due(start, date(2025, 3, 1), 12, "caution_lead")
    for role in ("service_caution_lead", "manager", "senior_manager"):
        lc.check_review_due(start, date(2026, 2, 28), 12, role)
    with pytest.raises(FieldInvalid, match="after valid_from"):
        lc.check_review_due(start, start, 12, None)


@pytest.mark.parametrize(
    ("lodged", "due"),
    [
        (date(2025, 12, 19), date(2026, 1, 7)),  # Christmas, Boxing Day, New Year's Day
        (date(2025, 4, 17), date(2025, 5, 6)),  # Good Friday, Easter Monday, early May
        (date(2025, 8, 22), date(2025, 9, 8)),  # August bank holiday (25 Aug)
        (date(2026, 12, 24), date(2027, 1, 12)),  # 2026: Boxing Day on Saturday → substitute 28 Dec
        (date(2025, 3, 24), date(2025, 4, 7)),  # no holiday: two weeks
    ],
)
def test_appeal_due_in_working_days(lodged: date, due: date) -> None:
    assert lc.appeal_due(lodged, Calendar()) == due


def test_appeal_due_skips_provider_closures() -> None:
    cal = Calendar(closures=frozenset({date(2025, 3, 25)}))
    assert lc.appeal_due(date(2025, 3, 24), cal) == date(2025, 4, 8)


def test_appeal_decider() -> None:
    with pytest.raises(NotAllowed):
        lc.check_appeal_decider(5, "caution_lead", [])
    with pytest.raises(RuleConflict):
        lc.check_appeal_decider(5, "manager", [1, 5])
    lc.check_appeal_decider(6, "senior_manager", [1, 5])


# --- the review-due report around month ends, DST changes and bank holidays ---------------------


def row(rid: int, review_due: date, **kw: object) -> ReviewRow:
    fields: dict[str, object] = {
        "restriction_id": rid,
        "customer_id": 1,
        "customer_name": "Margaret Hughes",
        "kind": "written_only",
        "status": "active",
        "review_due": review_due,
        "letter_sent_on": date(2024, 1, 1),
        **kw,
    }
    return ReviewRow(**fields)  # type: ignore[arg-type]


def issues(rows: list[ReviewRow], today: date, within: str) -> dict[int, tuple[str, ...]]:
    return {i.row.restriction_id: i.issues for i in due_report(rows, today, window_end(today, within))}


@pytest.mark.parametrize(
    ("today", "within", "end"),
    [
        (date(2025, 1, 31), "1m", date(2025, 2, 28)),
        (date(2024, 1, 31), "1m", date(2024, 2, 29)),
        (date(2025, 1, 31), "30d", date(2025, 3, 2)),
        (date(2025, 12, 31), "2w", date(2026, 1, 14)),
        (date(2025, 11, 30), "3m", date(2026, 2, 28)),
    ],
)
def test_window_end(today: date, within: str, end: date) -> None:
    assert window_end(today, within) == end


def test_report_at_month_end() -> None:
    rows = [
        row(1, date(2025, 1, 30)),
        row(2, date(2025, 1, 31)),
        row(3, date(2025, 2, 28)),
        row(4, date(2025, 3, 1)),
        row(5, date(2025, 6, 1), letter_sent_on=None),
    ]
    assert issues(rows, date(2025, 1, 31), "1m") == {
        1: ("review_overdue",),
        2: ("review_due",),
        3: ("review_due",),
        5: ("letter_not_sent",),
    }


@pytest.mark.parametrize(
    ("instant", "local"),
    [
        (
            datetime(2025, 3, 30, 0, 30, tzinfo=UTC),
            date(2025, 3, 30),
        ),  # spring forward at 01:00 UTC
        (datetime(2025, 3, 29, 23, 59, tzinfo=UTC), date(2025, 3, 29)),  # still GMT
        (datetime(2025, 10, 25, 23, 30, tzinfo=UTC), date(2025, 10, 26)),  # BST: already the 26th
        (datetime(2025, 10, 26, 23, 30, tzinfo=UTC), date(2025, 10, 26)),  # GMT again
        (datetime(2025, 6, 30, 23, 30, tzinfo=UTC), date(2025, 7, 1)),  # month end in summer
    ],
)
def test_today_is_the_providers_date(instant: datetime, local: date) -> None:
    assert local_today(instant, LONDON) == local


def test_report_across_the_autumn_dst_change() -> None:
    rows = [row(1, date(2025, 10, 25)), row(2, date(2025, 10, 26)), row(3, date(2025, 6, 30))]
    today = local_today(datetime(2025, 10, 25, 23, 30, tzinfo=UTC), LONDON)
    report = due_report(rows, today, window_end(today, "30d"))
    assert {i.row.restriction_id: (i.issues, i.days_to_review) for i in report} == {
        1: (("review_overdue",), -1),
        2: (("review_due",), 0),
        3: (("review_overdue",), -118),
    }
    summer = local_today(datetime(2025, 6, 30, 23, 30, tzinfo=UTC), LONDON)
    assert issues([row(3, date(2025, 6, 30))], summer, "30d") == {3: ("review_overdue",)}


def test_report_appeals_around_bank_holidays() -> None:
    due = lc.appeal_due(date(2025, 12, 19), Calendar())
    rows = [row(1, date(2026, 12, 1), status="under_appeal", appeal_due=due)]
    assert issues(rows, date(2026, 1, 7), "30d") == {1: ("appeal_open",)}
    assert issues(rows, date(2026, 1, 8), "30d") == {1: ("appeal_overdue",)}


def test_report_other_issues_and_csv() -> None:
    rows = [
        row(1, date(2026, 6, 1), status="proposed", letter_sent_on=None),
        row(2, date(2026, 6, 1), valid_to=date(2025, 2, 10), customer_name="=HYPERLINK(1)"),
        row(3, date(2026, 6, 1)),
    ]
    items = due_report(rows, date(2025, 2, 1), window_end(date(2025, 2, 1), "30d"))
    assert {i.row.restriction_id: i.issues for i in items} == {
        1: ("awaiting_deciders",),
        2: ("lapsing",),
    }
    csv_text = to_csv(items)
    assert csv_text.splitlines()[0].startswith("restriction_id,customer_id,customer_name")
    assert "'=HYPERLINK(1)" in csv_text and ",awaiting_deciders" in csv_text


@pytest.mark.parametrize("bad", ["", "30", "d", "-1d", "30y", "99999d", "200m"])
def test_window_refuses_nonsense(bad: str) -> None:
    with pytest.raises(FieldInvalid):
        window_end(date(2025, 1, 1), bad)
