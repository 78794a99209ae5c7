"""What a breach of a restriction is, written independently of the engine (for property tests)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import holidays

from gateway.contact import InboundContact
from gateway.rules.context import Context, RestrictionView
from gateway.rules.counters import contact_limit_key
from gateway.rules.engine import Verdict
from gateway.rules.kinds.closed_issue import ClosedIssue
from gateway.rules.kinds.contact_limit import ContactLimit
from gateway.rules.kinds.named_contact import NamedContact
from gateway.rules.kinds.set_times import SetTimes
from gateway.rules.params import Window

LONDON = ZoneInfo("Europe/London")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERSONAL = {"phone", "visit"}
WRITTEN = {"email", "web_form", "letter"}
REACHES_STAFF = {"route", "hold"}


def inside(windows: list[Window], now: datetime, closed_on_holidays: bool) -> bool:
    local = now.astimezone(LONDON)
    if closed_on_holidays and local.date() in holidays.country_holidays("GB", subdiv="ENG", years=local.year):
        return False
    hm = local.strftime("%H:%M")
    return any(DAYS[local.weekday()] in w.days and w.start <= hm and (w.end == "24:00" or hm < w.end) for w in windows)


def _named_targets(rs: list[RestrictionView], ctx: Context) -> set[tuple[str, str]]:
    """Where a named contact's customer may be routed: to that person (line, voicemail or their own
    queue), or to the caution queue for a lead to handle; never to any other queue."""
    allowed: set[tuple[str, str]] = {("queue", "caution")}
    for r in rs:
        p = r.params
        assert isinstance(p, NamedContact)
        people = [ctx.staff[i] for i in (p.staff_id, p.deputy_staff_id) if i is not None and i in ctx.staff]
        allowed |= {(t, str(s.id)) for s in people for t in ("staff", "voicemail")}
        allowed |= {("queue", s.queue) for s in people if s.queue}
    return allowed


def _kind_breach(r: RestrictionView, c: InboundContact, ctx: Context, now: datetime, v: Verdict) -> str | None:
    ch, routed, p = c.channel, v.action in REACHES_STAFF, r.params
    if r.kind == "written_only" and ch in PERSONAL and routed:
        return "written-only customer reached staff in person"
    if (
        r.kind == "no_personal_contact"
        and ch in PERSONAL
        and routed
        and r.customer_id not in ctx.match.representative_of
    ):
        return "no-personal-contact customer reached staff in person"
    if (
        r.kind == "set_times"
        and isinstance(p, SetTimes)
        and ch in PERSONAL
        and routed
        and not inside(p.windows, now, p.closed_on_bank_holidays)
    ):
        return "set-times customer routed outside their windows"
    if r.kind == "appointment_only" and ch == "visit" and routed and not ctx.appointment:
        return "visit without an appointment routed"
    if (
        r.kind == "closed_issue"
        and isinstance(p, ClosedIssue)
        and ch in WRITTEN
        and ctx.case is not None
        and ctx.case.id == p.case_id
        and ctx.case.status == "exhausted"
        and routed
    ):
        return "closed-issue correspondence routed for a reply"
    if r.kind == "closed_issue" and isinstance(p, ClosedIssue):
        case = ctx.find_case(p.case_id)
        said = v.banner is not None and "not exhausted" in v.banner.text
        if case is not None and case.status != "exhausted" and not said:
            return "closed-issue restriction on a case not exhausted, and no banner asking for its review"
    if (
        r.kind == "contact_limit"
        and isinstance(p, ContactLimit)
        and routed
        and (ctx.counts.get(contact_limit_key(r, now, LONDON), 0) > p.limit)
    ):
        return "over the contact limit but routed"
    if r.kind == "caution" and (v.banner is None or v.banner.severity != "danger"):
        return "caution marker without a danger banner"
    return None


def breaches(c: InboundContact, ctx: Context, now: datetime, v: Verdict) -> list[str]:
    """Every way the verdict breaks an enforced restriction; empty when it keeps them all."""
    if ctx.match.withheld:
        return ["withheld sender matched"] if v.matched.customer_ids else []
    enforced = [r for b in ctx.match.bundles for r in b.restrictions if r.status in ("active", "under_appeal")]
    found = [
        f"#{r.id} {r.kind}: {why}"
        for r in enforced
        if c.channel in r.channels
        if (why := _kind_breach(r, c, ctx, now, v))
    ]
    named = [r for r in enforced if r.kind == "named_contact" and c.channel in r.channels]
    target = (v.target.type, v.target.id) if v.target else None
    if named and v.action in REACHES_STAFF and target not in _named_targets(named, ctx):
        found.append(f"named contact routed to {target}")
    ids = sorted(r.id for r in enforced)
    if (v.banner.restriction_ids if v.banner else []) != ids:
        found.append("banner does not list exactly the enforced restrictions")
    if (v.action == "deflect") != (v.target is None):
        found.append("a deflected contact has no target and every other contact has one")
    return found
