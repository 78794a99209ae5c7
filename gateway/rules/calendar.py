"""The provider's calendar: local time across DST, bank holidays and closures, windows in words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from .params import WEEKDAYS, Window

LONDON = ZoneInfo("Europe/London")
SEARCH_DAYS = 60
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


# The UK's bank holidays differ by nation: England and Wales (ENG and WLS: the same days),
# Scotland (SCT: 2 January, St Andrew's Day, an August holiday at the start of the month) and
# Northern Ireland (NIR: St Patrick's Day, the Battle of the Boyne).
NATIONS = ("ENG", "WLS", "SCT", "NIR")


@lru_cache(maxsize=128)
def bank_holidays(year: int, nation: str = "ENG") -> frozenset[date]:
    """The nation's bank holidays, substitute days included (computed, no I/O)."""
    return frozenset(holidays.country_holidays("GB", subdiv=nation, years=year).keys())


@dataclass(frozen=True, slots=True)
class Calendar:
    tz: ZoneInfo = LONDON
    closures: frozenset[date] = field(default_factory=frozenset)
    nation: str = "ENG"  # whose bank holidays (NATIONS)

    def local(self, instant: datetime) -> datetime:
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError("an aware datetime is required")
        return instant.astimezone(self.tz)

    def is_holiday(self, day: date) -> bool:
        return day in self.closures or day in bank_holidays(day.year, self.nation)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and not self.is_holiday(day)

    def working_days_after(self, day: date, n: int) -> date:
        """The n-th working day after `day` (weekends, bank holidays and closures skipped)."""
        current, left = day, n
        while left > 0:
            current += timedelta(days=1)
            if self.is_working_day(current):
                left -= 1
        return current

    def in_windows(self, windows: Sequence[Window], now: datetime, closed_on_holidays: bool = True) -> bool:
        local = self.local(now)
        if closed_on_holidays and self.is_holiday(local.date()):
            return False
        return any(_open_at(w, local) for w in windows)

    def next_allowed(
        self, windows: Sequence[Window], now: datetime, closed_on_holidays: bool = True
    ) -> datetime | None:
        """`now` (local) if a window is open, else the next window start within SEARCH_DAYS."""
        local = self.local(now)
        if self.in_windows(windows, now, closed_on_holidays):
            return local
        for offset in range(SEARCH_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            if closed_on_holidays and self.is_holiday(day):
                continue
            for start in sorted(w.start_time for w in windows if _on_day(w, day)):
                # Through UTC so a start inside the spring-forward gap lands on a real instant.
                candidate = datetime.combine(day, start, tzinfo=self.tz).astimezone(UTC)
                if candidate > now:
                    return candidate.astimezone(self.tz)
        return None

    def describe_next(self, when: datetime, now: datetime) -> str:
        """'today at 2pm', 'tomorrow at 10am', 'Thursday at 10am', 'Monday 5 January at 10am'."""
        target, today = self.local(when), self.local(now).date()
        days = (target.date() - today).days
        at = f"at {format_time(target.time())}"
        if days == 0:
            return f"today {at}"
        if days == 1:
            return f"tomorrow {at}"
        if 1 < days <= 6:
            return f"{DAY_NAMES[target.weekday()]} {at}"
        return f"{DAY_NAMES[target.weekday()]} {format_date(target.date(), today.year)} {at}"


def _on_day(window: Window, day: date) -> bool:
    return WEEKDAYS[day.weekday()] in window.days


def _open_at(window: Window, local: datetime) -> bool:
    now = local.time().replace(tzinfo=None)
    return (
        _on_day(window, local.date()) and window.start_time <= now and (window.end == "24:00" or now < window.end_time)
    )


def format_time(t: time) -> str:
    """'10am', '10:30am', '12 noon', 'midnight'."""
    if (t.hour, t.minute) == (0, 0):
        return "midnight"
    if (t.hour, t.minute) == (12, 0):
        return "12 noon"
    suffix = "am" if t.hour < 12 else "pm"
    hour = t.hour % 12 or 12
    return f"{hour}{suffix}" if t.minute == 0 else f"{hour}:{t.minute:02d}{suffix}"


def format_date(day: date, this_year: int | None = None) -> str:
    """'5 January', or '5 January 2027' when not in `this_year` (None: always with the year)."""
    text = f"{day.day} {MONTH_NAMES[day.month - 1]}"
    return text if day.year == this_year else f"{text} {day.year}"


def describe_days(days: Iterable[str]) -> str:
    chosen = [d for d in WEEKDAYS if d in set(days)]
    if len(chosen) == 7:
        return "every day"
    if chosen == ["mon", "tue", "wed", "thu", "fri"]:
        return "Monday to Friday"
    if chosen == ["sat", "sun"]:
        return "at weekends"
    names = [DAY_NAMES[WEEKDAYS.index(d)] + "s" for d in chosen]
    return "on " + join_words(names)


def describe_windows(windows: Sequence[Window]) -> str:
    """'on Tuesdays and Thursdays between 10am and 12 noon' (several windows joined by 'and')."""
    parts = []
    for w in windows:
        end = "midnight" if w.end == "24:00" else format_time(w.end_time)
        parts.append(f"{describe_days(w.days)} between {format_time(w.start_time)} and {end}")
    return join_words(parts)


def join_words(words: Sequence[str], conjunction: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" {conjunction} " + words[-1]
