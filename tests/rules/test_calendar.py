"""Local time across DST, bank holidays, working days and the plain-English wording."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from gateway.rules.calendar import Calendar, describe_windows, format_time
from gateway.rules.context import Match
from gateway.rules.engine import decide
from gateway.rules.kinds.set_times import SetTimes
from gateway.rules.params import Window

from .factories import bundle, context, restriction
from .factories import contact as make_contact

CAL = Calendar()
SUNDAY_10_12 = Window(days=["sun"], start="10:00", end="12:00")
WEEKDAYS_10_12 = Window(days=["mon", "tue", "wed", "thu", "fri"], start="10:00", end="12:00")


def _call(windows: list[Window], at: datetime, closed: bool = True) -> tuple[str, str | None]:
    r = restriction("set_times", SetTimes(windows=windows, closed_on_bank_holidays=closed))
    v = decide(make_contact("phone"), context(Match((bundle(r),))), at)
    return v.action, v.customer_message


@pytest.mark.parametrize(
    ("at", "action"),
    [
        (datetime(2026, 3, 22, 9, 30, tzinfo=UTC), "deflect"),  # GMT: 09:30 local
        (datetime(2026, 3, 29, 9, 30, tzinfo=UTC), "route"),  # spring forward: 10:30 BST
        (datetime(2026, 3, 29, 11, 0, tzinfo=UTC), "deflect"),  # 12:00 BST: window just closed
        (datetime(2026, 10, 25, 9, 30, tzinfo=UTC), "deflect"),  # fall back: 09:30 GMT
        (datetime(2026, 10, 25, 10, 30, tzinfo=UTC), "route"),  # 10:30 GMT
        (datetime(2026, 10, 18, 9, 30, tzinfo=UTC), "route"),  # still BST: 10:30 local
    ],
)
def test_set_times_across_dst(at: datetime, action: str) -> None:
    assert _call([SUNDAY_10_12], at)[0] == action


@pytest.mark.parametrize(
    ("at", "closed", "action", "next_text"),
    [
        (datetime(2026, 12, 25, 11, 0, tzinfo=UTC), True, "deflect", "Tuesday at 10am"),
        (datetime(2026, 12, 28, 11, 0, tzinfo=UTC), True, "deflect", "tomorrow at 10am"),
        (datetime(2026, 5, 4, 10, 0, tzinfo=UTC), True, "deflect", "tomorrow at 10am"),
        (datetime(2026, 5, 4, 10, 0, tzinfo=UTC), False, "route", None),
        (datetime(2026, 12, 29, 11, 0, tzinfo=UTC), True, "route", None),
    ],
)
def test_set_times_on_bank_holidays(at: datetime, closed: bool, action: str, next_text: str | None) -> None:
    got, message = _call([WEEKDAYS_10_12], at, closed)
    assert got == action
    if next_text:
        assert message == (
            "We can only accept calls Monday to Friday between 10am and 12 noon. "
            f"The next time you can call is {next_text}."
        )


@pytest.mark.parametrize(
    ("now", "when", "text"),
    [
        (datetime(2026, 3, 3, 9, 0, tzinfo=UTC), datetime(2026, 3, 3, 14, 0, tzinfo=UTC), "today at 2pm"),
        (datetime(2026, 3, 3, 23, 30, tzinfo=UTC), datetime(2026, 3, 4, 10, 0, tzinfo=UTC), "tomorrow at 10am"),
        (datetime(2026, 3, 3, 9, 0, tzinfo=UTC), datetime(2026, 3, 9, 10, 30, tzinfo=UTC), "Monday at 10:30am"),
        (
            datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
            datetime(2026, 1, 12, 12, 0, tzinfo=UTC),
            "Monday 12 January at 12 noon",
        ),
        (
            datetime(2026, 12, 30, 9, 0, tzinfo=UTC),
            datetime(2027, 1, 11, 10, 0, tzinfo=UTC),
            "Monday 11 January 2027 at 10am",
        ),
        # 23:30 UTC on 29 March is already 30 March in London (BST): "today", not "tomorrow".
        (datetime(2026, 3, 29, 23, 30, tzinfo=UTC), datetime(2026, 3, 30, 9, 0, tzinfo=UTC), "today at 10am"),
    ],
)
def test_describe_next(now: datetime, when: datetime, text: str) -> None:
    assert CAL.describe_next(when, now) == text


@pytest.mark.parametrize(
    ("t", "text"),
    [
        (time(10, 0), "10am"),
        (time(10, 30), "10:30am"),
        (time(12, 0), "12 noon"),
        (time(14, 0), "2pm"),
        (time(0, 0), "midnight"),
        (time(12, 15), "12:15pm"),
    ],
)
def test_format_time(t: time, text: str) -> None:
    assert format_time(t) == text


def test_describe_windows() -> None:
    assert describe_windows([Window(days=["thu", "tue"], start="10:00", end="12:00")]) == (
        "on Tuesdays and Thursdays between 10am and 12 noon"
    )
    assert describe_windows(
        [Window(days=["sat", "sun"], start="09:00", end="24:00"), Window(days=["mon"], start="08:30", end="09:00")]
    ) == ("at weekends between 9am and midnight and on Mondays between 8:30am and 9am")


def test_bank_holidays_and_closures() -> None:
    for day in (date(2026, 12, 25), date(2026, 12, 28), date(2026, 5, 4), date(2026, 4, 3)):
        assert CAL.is_holiday(day)
    assert not CAL.is_holiday(date(2026, 12, 29))
    shut = Calendar(closures=frozenset({date(2026, 12, 24)}))
    assert shut.is_holiday(date(2026, 12, 24)) and not CAL.is_holiday(date(2026, 12, 24))


def test_working_days_after_skips_weekends_and_bank_holidays() -> None:
    assert CAL.working_days_after(date(2026, 12, 21), 10) == date(2027, 1, 7)
    assert CAL.working_days_after(date(2026, 3, 2), 10) == date(2026, 3, 16)


def test_next_allowed_is_now_inside_a_window_and_none_when_never() -> None:
    inside = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)
    assert CAL.next_allowed([WEEKDAYS_10_12], inside) == inside
    always_shut = Calendar(
        closures=frozenset(date(2026, 3, d) for d in range(1, 32))
        | frozenset(date(2026, 4, d) for d in range(1, 31))
        | frozenset(date(2026, 5, d) for d in range(1, 32))
    )
    assert always_shut.next_allowed([WEEKDAYS_10_12], inside) is None


def test_next_allowed_across_the_spring_forward_gap() -> None:
    # 01:30 on 29 March 2026 does not exist in London: the next start is a real instant.
    nxt = CAL.next_allowed([Window(days=["sun"], start="01:30", end="03:00")], datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert nxt is not None and nxt.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        CAL.local(datetime(2026, 3, 3, 10, 0))
