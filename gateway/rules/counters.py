"""Which counters one contact needs: each enforced restriction's own (its kind says which) and
one per customer per period that a manager rule reads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .context import Bundle
from .counterkeys import (
    CUSTOMER_COUNTER,
    RESTRICTION_COUNTER,
    TTL_SECONDS,
    CounterSpec,
    Period,
    customer_count_key,
    period_bucket,
)
from .kinds.contact_limit import contact_limit_key
from .outcome import ENFORCED_STATUSES
from .registry import REGISTRY, Registry

if TYPE_CHECKING:
    from .compiled import CompiledRuleSet

__all__ = [
    "CUSTOMER_COUNTER",
    "RESTRICTION_COUNTER",
    "TTL_SECONDS",
    "CounterSpec",
    "Period",
    "contact_limit_key",
    "counters_needed",
    "customer_count_key",
    "period_bucket",
]


def counters_needed(
    compiled: CompiledRuleSet,
    bundles: Iterable[Bundle],
    now: datetime,
    tz: ZoneInfo,
    channel: str | None = None,
    kinds: Registry = REGISTRY,
) -> list[CounterSpec]:
    """Counters to increment for this contact: those of the enforced restrictions covering
    `channel` (any channel when None) and one per customer per period that a rule's
    count_at_least reads."""
    specs: dict[str, CounterSpec] = {}
    for bundle in bundles:
        for r in bundle.restrictions:
            if r.status in ENFORCED_STATUSES and (channel is None or r.covers(channel)):
                specs.update((spec.key, spec) for spec in kinds[r.kind].counters(r, now, tz))
        for period in sorted(compiled.periods):
            key = customer_count_key(bundle.customer.id, period, now, tz)
            specs[key] = CounterSpec(key, TTL_SECONDS[period])
    return sorted(specs.values(), key=lambda s: s.key)
