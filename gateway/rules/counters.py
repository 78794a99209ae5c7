"""Counter keys the edge increments (Redis) before deciding; period buckets in local time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from .context import Bundle, RestrictionView
from .outcome import ENFORCED_STATUSES
from .params import ContactLimit

if TYPE_CHECKING:
    from .compiled import CompiledRuleSet

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


def contact_limit_key(restriction: RestrictionView, now: datetime, tz: ZoneInfo) -> str:
    period = restriction.params_as(ContactLimit).period
    return f"{RESTRICTION_COUNTER}:{restriction.id}:{period_bucket(period, now, tz)}"


def customer_count_key(customer_id: int, period: str, now: datetime, tz: ZoneInfo) -> str:
    return f"{CUSTOMER_COUNTER}:{customer_id}:{period}:{period_bucket(period, now, tz)}"


def counters_needed(
    compiled: CompiledRuleSet, bundles: Iterable[Bundle], now: datetime, tz: ZoneInfo, channel: str | None = None
) -> list[CounterSpec]:
    """Counters to increment for this contact: enforced contact limits covering `channel` (any
    channel when None) and one per customer per period that a rule's count_at_least reads."""
    specs: dict[str, CounterSpec] = {}
    for bundle in bundles:
        for r in bundle.restrictions:
            if r.kind == "contact_limit" and r.status in ENFORCED_STATUSES and (channel is None or r.covers(channel)):
                key = contact_limit_key(r, now, tz)
                specs[key] = CounterSpec(key, TTL_SECONDS[r.params_as(ContactLimit).period])
        for period in sorted(compiled.periods):
            key = customer_count_key(bundle.customer.id, period, now, tz)
            specs[key] = CounterSpec(key, TTL_SECONDS[period])
    return sorted(specs.values(), key=lambda s: s.key)
