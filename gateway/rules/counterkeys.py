"""Counter keys the edge increments (Redis) before deciding, and their period buckets in local time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month"]
# The edge puts its own namespace in front (gateway.rediskeys.COUNTER); these follow it.
RESTRICTION_COUNTER = "restriction"
CUSTOMER_COUNTER = "customer"
# A bucket lives a little longer than its period so a late increment never resets a count.
TTL_SECONDS: dict[str, int] = {"day": 2 * 86400, "week": 8 * 86400, "month": 32 * 86400}


@dataclass(frozen=True, slots=True)
class CounterSpec:
    key: str
    ttl_seconds: int


def period_bucket(period: str, now: datetime, tz: ZoneInfo) -> str:
    """'2026-03-29' (day), '2026-W13' (ISO week), '2026-03' (month), in local time."""
    local = now.astimezone(tz)
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{local.year}-{local.month:02d}"
    raise ValueError(f"unknown period {period!r}")


def restriction_count_key(restriction_id: int, period: str, now: datetime, tz: ZoneInfo) -> str:
    """Contacts counted against one restriction this period."""
    return f"{RESTRICTION_COUNTER}:{restriction_id}:{period_bucket(period, now, tz)}"


def customer_count_key(customer_id: int, period: str, now: datetime, tz: ZoneInfo) -> str:
    return f"{CUSTOMER_COUNTER}:{customer_id}:{period}:{period_bucket(period, now, tz)}"
