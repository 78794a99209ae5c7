"""The review-due report for the monthly caution-lead meeting: pure, with `today` as an argument."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from .errors import FieldInvalid
from .lifecycle import add_months

_WITHIN = re.compile(r"^([0-9]{1,4})([dwm])$")
MAX_WITHIN_DAYS = 3660
CSV_COLUMNS = (
    "restriction_id",
    "customer_id",
    "customer_name",
    "kind",
    "status",
    "review_due",
    "days_to_review",
    "valid_to",
    "letter_sent_on",
    "appeal_due",
    "issues",
    "urgent_review_since",
    "urgent_review_why",
    "equality_note_asked_of",
    "review_period_asked_of",
)


def local_today(now: datetime, tz: ZoneInfo) -> date:
    """The provider's date at `now` (an aware instant): BST midnight is not UTC midnight."""
    if now.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return now.astimezone(tz).date()


def utc_now() -> datetime:
    return datetime.now(UTC)


def window_end(today: date, within: str) -> date:
    """'30d' → today + 30 days; '6w' → + 6 weeks; '1m' → same day next month (clamped)."""
    match = _WITHIN.match(within.strip().lower())
    if not match:
        raise FieldInvalid("within", "expected a number and a unit, e.g. 30d, 6w or 2m")
    n, unit = int(match.group(1)), match.group(2)
    if n * {"d": 1, "w": 7, "m": 31}[unit] > MAX_WITHIN_DAYS:
        raise FieldInvalid("within", "at most ten years ahead")
    return add_months(today, n) if unit == "m" else today + timedelta(days=n * (7 if unit == "w" else 1))


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One open restriction as the report sees it (loaded by the store)."""

    restriction_id: int
    customer_id: int
    customer_name: str
    kind: str
    status: str
    review_due: date
    valid_to: date | None = None
    letter_sent_on: date | None = None
    appeal_due: date | None = None  # due date of an undecided appeal
    urgent_since: datetime | None = None  # flagged: the customer is left with no way in
    urgent_why: str | None = None
    letter_undelivered: bool = False  # the latest letter was emailed and the outbox gave up on it
    note_asked_of: int | None = None  # the manager asked to sign its equality note, not signed yet
    period_asked_of: int | None = None  # the approver asked to agree a longer review period, not yet
    note_declined: bool = False  # proposed, and its manager declined the equality note it needs


@dataclass(frozen=True, slots=True)
class ReportItem:
    row: ReviewRow
    days_to_review: int
    issues: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        r = self.row
        return {
            "restriction_id": r.restriction_id,
            "customer_id": r.customer_id,
            "customer_name": r.customer_name,
            "kind": r.kind,
            "status": r.status,
            "review_due": r.review_due.isoformat(),
            "days_to_review": self.days_to_review,
            "valid_to": _iso(r.valid_to),
            "letter_sent_on": _iso(r.letter_sent_on),
            "appeal_due": _iso(r.appeal_due),
            "issues": list(self.issues),
            "urgent_review": {"since": r.urgent_since.isoformat(), "why": r.urgent_why}
            if r.urgent_since is not None
            else None,
            "equality_note_asked_of": r.note_asked_of,
            "review_period_asked_of": r.period_asked_of,
        }


def _letter_issues(row: ReviewRow) -> tuple[str, ...]:
    if row.letter_sent_on is None:
        return ("letter_not_sent",)
    return ("letter_email_failed",) if row.letter_undelivered else ()


def issues_of(row: ReviewRow, today: date, end: date) -> tuple[str, ...]:
    """What needs attention: each issue is a stable word a spreadsheet can filter on."""
    if row.status == "lifted":  # listed only while the letter telling the customer is not sent or delivered
        return _letter_issues(row)
    found: list[str] = ["urgent_review"] if row.urgent_since is not None else []
    if row.status == "proposed":
        found.append("awaiting_deciders")
    if row.note_asked_of is not None:
        found.append("equality_note_unsigned")
    if row.note_declined:
        found.append("equality_note_declined")
    if row.period_asked_of is not None:
        found.append("review_period_unapproved")
    if row.review_due < today:
        found.append("review_overdue")
    elif row.review_due <= end:
        found.append("review_due")
    if row.status in ("active", "under_appeal"):
        found += _letter_issues(row)
    if row.appeal_due is not None:
        found.append("appeal_overdue" if row.appeal_due < today else "appeal_open")
    if row.valid_to is not None and today <= row.valid_to <= end:
        found.append("lapsing")
    return tuple(found)


def due_report(rows: Iterable[ReviewRow], today: date, end: date) -> list[ReportItem]:
    """Rows with at least one issue: those flagged for urgent review at the top, then most urgent
    review first."""
    items = [ReportItem(r, (r.review_due - today).days, issues_of(r, today, end)) for r in rows]
    return sorted(
        (i for i in items if i.issues),
        key=lambda i: (i.row.urgent_since is None, i.row.review_due, i.row.restriction_id),
    )


def to_csv(items: Iterable[ReportItem]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        d = item.as_dict()
        d["issues"] = ";".join(item.issues)
        d["urgent_review_since"] = item.row.urgent_since.isoformat() if item.row.urgent_since else None
        d["urgent_review_why"] = item.row.urgent_why
        writer.writerow([_cell(d[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    # A name starting with = + - @ would run as a formula when opened in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return str(value)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
