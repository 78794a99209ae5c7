"""What-if replay: the last N days of the contact log decided by a draft and by the published version.

Restrictions are taken as they stood at each contact's time (folded from the append-only restriction
events) or as they stand now. Both versions see the same world through the same `decide`, so every
difference is the rules' doing. Runs in its own process (`python -m gateway simulate JOB`), so a
long replay never slows the decisions being served; progress is written where any process can read it.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from ..rules.calendar import Calendar
from ..rules.compiled import CompiledRuleSet
from ..rules.context import Bundle, CaseView, CustomerView, Match, RepresentativeView, RestrictionView, StaffView
from ..rules.counters import counters_needed
from ..rules.engine import Verdict, decide
from ..rules.outcome import ENFORCED_STATUSES
from ..rules.vocabulary import Contact, Reason
from ..store import replay as store
from ..store.index import (
    enforced_restrictions,
    load_closures,
    load_staff,
    representatives_of,
    restriction_view,
    sharers,
)
from .context import make_context
from .counting import period_start

Progress = Callable[[int, int], Awaitable[None]]
PROGRESS_EVERY = 20_000
MAX_CUSTOMERS_LISTED = 200


class SimulationParams(BaseModel):
    """POST /v1/rulesets/{v}/simulate. `against`: the version compared with (default: published)."""

    model_config = ConfigDict(extra="forbid")
    days: int = Field(default=30, ge=1, le=400)
    restrictions: Literal["at_the_time", "now"] = "at_the_time"
    against: int | None = Field(default=None, ge=1, le=2**31 - 1)
    examples: int = Field(default=3, ge=0, le=20)


class HistoricalRestrictions:
    """Each customer's restrictions as they stood at any moment, from the folded event history."""

    def __init__(self, history: Mapping[int, list[tuple[datetime, dict[str, Any]]]], tz: ZoneInfo) -> None:
        self.tz = tz
        changes: dict[int, list[tuple[datetime, int, dict[str, Any]]]] = {}
        for rid, states in history.items():
            for at, state in states:
                changes.setdefault(int(state["customer_id"]), []).append((at, rid, state))
        self.times: dict[int, list[datetime]] = {}
        self.states: dict[int, list[tuple[dict[str, Any], ...]]] = {}
        for cid, items in changes.items():
            items.sort(key=lambda x: (x[0], x[1]))
            current: dict[int, dict[str, Any]] = {}
            for at, rid, state in items:
                current[rid] = state
                self.times.setdefault(cid, []).append(at)
                self.states.setdefault(cid, []).append(tuple(current.values()))
        self._views: dict[tuple[int, int, date], tuple[RestrictionView, ...]] = {}

    @property
    def customer_ids(self) -> list[int]:
        return list(self.times)

    def at(self, customer_id: int, when: datetime) -> tuple[RestrictionView, ...]:
        times = self.times.get(customer_id)
        if not times:
            return ()
        i = bisect.bisect_right(times, when) - 1
        if i < 0:
            return ()
        day = when.astimezone(self.tz).date()
        key = (customer_id, i, day)
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = tuple(
                restriction_view(s) for s in self.states[customer_id][i] if _enforced_on(s, day)
            )
        return found


def _enforced_on(state: Mapping[str, Any], day: date) -> bool:
    starts, ends = state.get("valid_from"), state.get("valid_to")
    return (
        state.get("status") in ENFORCED_STATUSES
        and (starts is None or date.fromisoformat(str(starts)) <= day)
        and (ends is None or date.fromisoformat(str(ends)) >= day)
    )


@dataclass
class World:
    """What the replay decides against, besides the contacts: people, cases, staff, the calendar."""

    customers: dict[int, CustomerView]
    representatives: dict[int, list[RepresentativeView]]
    cases: dict[int, CaseView]
    cases_of: dict[int, tuple[CaseView, ...]]  # the restricted customers' cases
    staff: dict[int, StaffView]
    calendar: Calendar
    restrictions_at: Callable[[int, datetime], tuple[RestrictionView, ...]]
    _bundles: dict[tuple[int, int], Bundle] = field(default_factory=dict)

    def bundle(self, customer_id: int, when: datetime) -> Bundle | None:
        restrictions = self.restrictions_at(customer_id, when)
        if not restrictions:
            return None
        key = (customer_id, id(restrictions))  # the tuples are cached where they are made: same tuple, same bundle
        found = self._bundles.get(key)
        if found is None:
            customer = self.customers.get(customer_id) or CustomerView(customer_id, f"Customer {customer_id}")
            found = self._bundles[key] = Bundle(
                customer,
                restrictions,
                tuple(self.representatives.get(customer_id, ())),
                self.cases_of.get(customer_id, ()),
            )
        return found

    def match(self, row: Mapping[str, Any], when: datetime) -> Match:
        if row["sender_kind"] == "withheld":
            return Match(withheld=True, sender_kind="withheld")
        ids: list[int] = list(row["customer_ids"] or ())
        bundles = tuple(b for c in ids if (b := self.bundle(c, when)) is not None)
        restricted = {b.customer.id for b in bundles}
        acting_for = list(row["representative_of"] or ())
        flags = [self.customers[c].adjustments_flags for c in ids if c in self.customers]
        # As the live index has it: an identifier that reaches a restricted or flagged customer also
        # names the other customers whose own it is (the log's ids hold them all).
        others = [c for c in ids if c not in restricted and c not in acting_for] if bundles or any(flags) else []
        return Match(
            bundles=bundles,
            representative_of=tuple(c for c in acting_for if c in restricted),
            sender_kind=row["sender_kind"] or "none",
            adjustments=frozenset().union(*flags),
            on_behalf=bool(acting_for),
            shared_with=tuple((c, self._name(c)) for c in others) if len(others) + len(bundles) > 1 else (),
        )

    def _name(self, customer_id: int) -> str:
        customer = self.customers.get(customer_id)
        return customer.name if customer else f"Customer {customer_id}"


def _outcome(v: Verdict) -> dict[str, Any]:
    return {"action": v.action, "target": None if v.target is None else f"{v.target.type} {v.target.id}"}


def _reasons(reasons: list[Reason]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in reasons]


@dataclass
class Impact:
    """Running totals of what changed between the two versions."""

    examples_per_change: int
    contacts: int = 0
    changed: int = 0
    changes: Counter[tuple[str, str | None, str, str | None]] = field(default_factory=Counter)
    change_customers: dict[tuple[str, str | None, str, str | None], set[int]] = field(default_factory=dict)
    customers: Counter[int] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    _shown: Counter[tuple[str, str | None, str, str | None]] = field(default_factory=Counter)

    def add(self, row: Mapping[str, Any], before: Verdict, after: Verdict) -> None:
        self.contacts += 1
        a, b = _outcome(before), _outcome(after)
        if a == b:
            return
        self.changed += 1
        key = (a["action"], a["target"], b["action"], b["target"])
        self.changes[key] += 1
        ids = list(row["customer_ids"] or ())
        self.change_customers.setdefault(key, set()).update(ids)
        self.customers.update(ids)
        if self._shown[key] < self.examples_per_change:
            self._shown[key] += 1
            self.examples.append(
                {
                    "contact_id": str(row["id"]),
                    "received_at": row["received_at"].isoformat(),
                    "channel": row["channel"],
                    "customer_ids": ids,
                    "published": {**a, "ruleset_version": before.ruleset_version, "reasons": _reasons(before.reasons)},
                    "draft": {**b, "ruleset_version": after.ruleset_version, "reasons": _reasons(after.reasons)},
                }
            )

    def report(self, customers: Mapping[int, CustomerView]) -> dict[str, Any]:
        def flags(cid: int) -> list[str]:
            c = customers.get(cid)
            return sorted(c.adjustments_flags) if c else []

        affected = [
            {
                "id": cid,
                "name": customers[cid].name if cid in customers else "",
                "adjustments": flags(cid),
                "contacts": n,
            }
            for cid, n in self.customers.most_common()
        ]
        return {
            "contacts": self.contacts,
            "changed": self.changed,
            "unchanged": self.contacts - self.changed,
            "changes": [
                {
                    "from": {"action": k[0], "target": k[1]},
                    "to": {"action": k[2], "target": k[3]},
                    "contacts": n,
                    "customers": len(self.change_customers.get(k, ())),
                }
                for k, n in self.changes.most_common()
            ],
            "customers_affected": len(affected),
            "customers_with_adjustments": sum(1 for a in affected if a["adjustments"]),
            "customers": affected[:MAX_CUSTOMERS_LISTED],
            "examples": self.examples,
        }


class Replay:
    """Decides logged contacts, in time order, with two rule sets against one world."""

    def __init__(self, world: World, draft: CompiledRuleSet, published: CompiledRuleSet, examples: int) -> None:
        self.world, self.draft, self.published = world, draft, published
        self.impact = Impact(examples)
        self.counts: Counter[str] = Counter()

    def count(self, row: Mapping[str, Any], when: datetime, match: Match) -> dict[str, int]:
        """Count this contact as the counters did when it came (both versions' counters)."""
        if not match.bundles:
            return {}
        tz = self.world.calendar.tz
        keys = {
            s.key
            for compiled in (self.published, self.draft)
            for s in counters_needed(compiled, match.bundles, when, tz, row["channel"])
        }
        self.counts.update(keys)
        return {k: self.counts[k] for k in keys}

    def warm(self, row: Mapping[str, Any]) -> None:
        """A contact from before the window: counted (so limits start right), not decided."""
        when = row["received_at"]
        self.count(row, when, self.world.match(row, when))

    def decide(self, row: Mapping[str, Any]) -> None:
        when: datetime = row["received_at"]
        match = self.world.match(row, when)
        counts = self.count(row, when, match)
        contact = Contact.model_construct(
            channel=row["channel"],
            sender=row["sender_raw"] or "",
            to=row["recipient"],
            subject=row["subject"],
            body=None,
            case_ref=row["case_ref"],
            on_behalf_of=row["on_behalf_of"],
            appointment=False,
        )
        case = self.world.cases.get(row["case_id"]) if row["case_id"] is not None else None
        w = self.world

        def verdict(compiled: CompiledRuleSet) -> Verdict:
            ctx = make_context(match, compiled, staff=w.staff, calendar=w.calendar, counts=counts, case=case)
            return decide(contact, ctx, when)

        self.impact.add(row, verdict(self.published), verdict(self.draft))


async def load_world(
    conn: asyncpg.Connection, mode: str, since: datetime, until: datetime, calendar: Calendar, today: date
) -> World:
    restrictions_at: Callable[[int, datetime], tuple[RestrictionView, ...]]
    if mode == "now":
        now = await enforced_restrictions(conn, today, None)  # as the index holds them, urgent flags too
        restricted = list(now)
        frozen = {cid: tuple(rs) for cid, rs in now.items()}

        def as_now(cid: int, when: datetime) -> tuple[RestrictionView, ...]:
            return frozen.get(cid, ())

        restrictions_at = as_now
    else:
        history = HistoricalRestrictions(await store.restriction_history(conn, until), calendar.tz)
        restricted = history.customer_ids
        restrictions_at = history.at
    cases = await store.cases(conn, restricted, since, until)
    cases_of: dict[int, tuple[CaseView, ...]] = {}
    for c in cases.values():
        cases_of[c.customer_id] = (*cases_of.get(c.customer_id, ()), c)
    return World(
        # The restricted customers and, so that a shared number's banner names them, their housemates.
        customers=await store.customers(conn, [*restricted, *await sharers(conn, restricted)]),
        representatives=await representatives_of(conn, restricted),
        cases=cases,
        cases_of=cases_of,
        staff=await load_staff(conn),
        calendar=replace(calendar, closures=await load_closures(conn)),
        restrictions_at=restrictions_at,
    )


async def simulate(
    conn: asyncpg.Connection,
    draft: CompiledRuleSet,
    published: CompiledRuleSet,
    params: SimulationParams,
    now: datetime,
    calendar: Calendar,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay [now - days, now) through both versions; the impact report."""
    started = time.perf_counter()
    since, until = now - timedelta(days=params.days), now
    tz = calendar.tz  # `calendar`: the provider's (Settings.calendar); its closure days are read here
    world = await load_world(conn, params.restrictions, since, until, calendar, now.astimezone(tz).date())
    total = await store.count_logged(conn, since, until)
    replay = Replay(world, draft, published, params.examples)
    if progress is not None:
        await progress(0, total)
    async with conn.transaction(readonly=True):
        async for row in store.logged_contacts(conn, period_start("month", since, tz), since):
            replay.warm(row)
        async for row in store.logged_contacts(conn, since, until):
            replay.decide(row)
            if progress is not None and replay.impact.contacts % PROGRESS_EVERY == 0:
                await progress(replay.impact.contacts, total)
    return {
        "version": draft.version,
        "against": published.version,
        "restrictions": params.restrictions,
        "days": params.days,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
        **replay.impact.report(await _named(conn, world.customers, replay.impact)),
    }


async def _named(conn: asyncpg.Connection, known: dict[int, CustomerView], impact: Impact) -> dict[int, CustomerView]:
    """The customers the report lists, with their names (the world holds only those it needed)."""
    listed = [cid for cid, _ in impact.customers.most_common(MAX_CUSTOMERS_LISTED) if cid not in known]
    return {**known, **await store.customers(conn, listed, flagged=False)} if listed else known
