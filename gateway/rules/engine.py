"""The decision: manager rules propose a route, every enforced restriction is applied, the most
restrictive outcome wins, and the reasons say why. A table (the registry) plus a short loop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import explain
from .compiled import Facts, Proposal
from .context import Bundle, Context, RestrictionView
from .counters import customer_count_key
from .outcome import (
    ACTION_ORDER,
    CAUTION_QUEUE,
    ENFORCED_STATUSES,
    NEW_INFORMATION_QUEUE,
    BannerPart,
    Dest,
    Outcome,
    action_rank,
)
from .ruleset import GENERAL
from .template import render
from .vocabulary import Action, Banner, Contact, Decision, Matched, Reason, Target
from .words import address_keys, phrase_words

# Where a contact goes when neither a restriction nor a rule named a place (a rule deflected,
# then a later one routed without a target).
_FALLBACK: dict[Action, Dest] = {
    "route": GENERAL,
    "hold": GENERAL,
    "auto_acknowledge": Dest("queue", NEW_INFORMATION_QUEUE),
}


@dataclass(frozen=True, slots=True)
class Applied:
    """One enforced restriction's outcome on this contact."""

    restriction: RestrictionView
    bundle: Bundle
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Verdict:
    """Everything of a Decision except contact_id and degraded, plus the rule's queue priority."""

    action: Action
    target: Target | None
    flagged: bool
    banner: Banner | None
    customer_message: str | None
    matched: Matched
    reasons: list[Reason]
    ruleset_version: int | None
    priority: int = 0

    def to_decision(self, contact_id: str, *, degraded: bool = False, received_at: datetime | None = None) -> Decision:
        return Decision(
            contact_id=contact_id,
            action=self.action,
            target=self.target,
            flagged=self.flagged,
            banner=self.banner,
            customer_message=self.customer_message,
            matched=self.matched,
            reasons=self.reasons,
            ruleset_version=self.ruleset_version,
            degraded=degraded,
            received_at=received_at,
        )


def decide(contact: Contact, ctx: Context, now: datetime) -> Verdict:
    """The pure decision for one contact at instant `now` (aware) given the loaded context."""
    ctx.calendar.local(now)  # refuses a naive `now` before anything else
    applied = apply_restrictions(contact, ctx, now)
    proposal: Proposal = ctx.ruleset.propose(_facts(contact, ctx, now, applied))
    return _compose(ctx, now, proposal, applied)


def apply_restrictions(contact: Contact, ctx: Context, now: datetime) -> tuple[Applied, ...]:
    """Each enforced restriction's outcome on this contact; no manager rule takes part."""
    if ctx.match.withheld:
        return ()
    return tuple(
        Applied(r, bundle, _unless_no_way_in(contact, bundle, ctx.kinds[r.kind].check(contact, r, ctx, now)))
        for bundle in ctx.match.bundles
        for r in bundle.restrictions
        if r.status in ENFORCED_STATUSES
    )


def _unless_no_way_in(contact: Contact, bundle: Bundle, outcome: Outcome) -> Outcome:
    """A customer flagged as left with no way in is never deflected on the channel they need: the
    contact reaches trained staff in the caution queue, flagged, with the reason on the banner."""
    if outcome.action != "deflect":
        return outcome
    urgent = next(
        (r.urgent for r in bundle.restrictions if r.urgent is not None and contact.channel in r.urgent.channels),
        None,
    )
    if urgent is None:
        return outcome
    since = urgent.since.date().isoformat()
    return Outcome(
        action="route",
        target=Dest("queue", CAUTION_QUEUE),
        pins_target=True,
        flagged=True,
        banner=BannerPart(
            "danger",
            f"Urgent review since {since}: {urgent.why}. Take this contact: do not turn the customer away.",
        ),
        because=f"Flagged for urgent review ({urgent.why}): routed to the caution queue instead of declined.",
    )


def _senders(ctx: Context) -> frozenset[str]:
    m = ctx.match
    if m.withheld:
        return frozenset({"withheld", "unmatched"})
    if not m.bundles:
        return frozenset({"unmatched"})
    labels = {"matched"}
    labels |= {"ambiguous"} if m.ambiguous else set()
    labels |= {"representative"} if m.representative_of else set()
    return frozenset(labels)


def _facts(contact: Contact, ctx: Context, now: datetime, applied: tuple[Applied, ...]) -> Facts:
    uses = ctx.ruleset.conditions
    bundles = () if ctx.match.withheld else ctx.match.bundles
    counts = {
        period: max(
            (ctx.counts.get(customer_count_key(b.customer.id, period, now, ctx.calendar.tz), 0) for b in bundles),
            default=0,
        )
        for period in ctx.ruleset.periods
    }
    return Facts(
        channel=contact.channel,
        senders=_senders(ctx),
        kinds=frozenset(a.restriction.kind for a in applied),
        now=now,
        calendar=ctx.calendar,
        case_status=ctx.case.status if ctx.case else "none",
        counts=counts,
        # Only what some rule reads: most rule sets never look at the subject or the number called.
        to=address_keys(contact.to) if "to" in uses else frozenset(),
        subject_words=phrase_words(contact.subject) if contact.subject and "subject_has" in uses else (),
        adjustments=_adjustments(ctx),
        on_behalf=_on_behalf(contact, ctx),
    )


def _on_behalf(contact: Contact, ctx: Context) -> bool:
    """Someone names the customer they act for, or the sender is a registered representative."""
    m = ctx.match
    return bool(contact.on_behalf_of) or (not m.withheld and (m.on_behalf or bool(m.representative_of)))


def _adjustments(ctx: Context) -> frozenset[str]:
    m = ctx.match
    if m.withheld:
        return frozenset()
    return m.adjustments.union(*(b.customer.adjustments_flags for b in m.bundles))


def _compose(ctx: Context, now: datetime, proposal: Proposal, applied: tuple[Applied, ...]) -> Verdict:
    """The most restrictive action wins; the restriction that chose it names the target."""
    acting = [a for a in applied if a.outcome.action is not None]
    rank = max([action_rank(proposal.action)] + [action_rank(a.outcome.action) for a in acting if a.outcome.action])
    action = ACTION_ORDER[rank]
    deciding = [a for a in acting if a.outcome.action == action]
    target = _target(action, proposal, acting, deciding)
    return Verdict(
        action=action,
        target=target.as_target() if target else None,
        flagged=proposal.flagged or any(a.outcome.flagged for a in acting),
        banner=_banner(ctx, proposal, applied),
        customer_message=_with_emergency(ctx, action, _message(ctx, now, proposal, deciding, action)),
        matched=_matched(ctx),
        reasons=_reasons(ctx, proposal, acting, deciding, action, target),
        ruleset_version=ctx.ruleset.version,
        priority=proposal.priority,
    )


def _pinned(acting: list[Applied]) -> Dest | None:
    """A named contact's target; a real person before the caution-queue fallback."""
    pins = sorted(
        (a.outcome.target for a in acting if a.outcome.pins_target and a.outcome.target),
        key=lambda d: d.type == "queue",
    )
    return pins[0] if pins else None


def _target(action: Action, proposal: Proposal, acting: list[Applied], deciding: list[Applied]) -> Dest | None:
    if action == "deflect":
        return None
    own = _pinned(deciding) or next((a.outcome.target for a in deciding if a.outcome.target is not None), None)
    return own or _pinned(acting) or proposal.target or _FALLBACK.get(action)


def _message(ctx: Context, now: datetime, proposal: Proposal, deciding: list[Applied], action: Action) -> str | None:
    """The deciding restriction's words; else the rule's, if its action stood."""
    own = next((a.outcome.customer_message for a in deciding if a.outcome.customer_message), None)
    if own is not None:
        return own
    if proposal.message is None or proposal.action != action:
        return None
    return render(proposal.message, _variables(ctx, now, proposal))


def _with_emergency(ctx: Context, action: Action, message: str | None) -> str | None:
    """A caller or visitor turned away is told how to report an emergency, whatever turned them away."""
    sentence = ctx.provider.emergency_sentence()
    if action != "deflect" or not sentence:
        return message
    return f"{message} {sentence}" if message else sentence


def _variables(ctx: Context, now: datetime, proposal: Proposal) -> dict[str, str]:
    bundles = ctx.match.bundles if not ctx.match.withheld else ()
    nxt = (
        ctx.calendar.next_allowed(proposal.message_windows, now, closed_on_holidays=False)
        if proposal.message_windows
        else None
    )
    p = ctx.provider
    return {
        "customer_name": bundles[0].customer.name if len(bundles) == 1 else "",
        "next_allowed": ctx.calendar.describe_next(nxt, now) if nxt else "",
        "case_ref": ctx.case.reference if ctx.case else "",
        "provider_name": p.name,
        "provider_address": p.address,
        "provider_email": p.email,
        "provider_phone": p.phone,
        "emergency_phone": p.emergency_phone,
        "web_form_url": p.web_form_url,
    }


def _matched(ctx: Context) -> Matched:
    m = ctx.match
    ids = [] if m.withheld else sorted(set(m.customer_ids))
    return Matched(
        customer_ids=ids,
        case_id=ctx.case.id if ctx.case else None,
        representative_of=[] if m.withheld else sorted(set(m.representative_of)),
        ambiguous=m.ambiguous and not m.withheld,
        withheld=m.withheld,
    )


def _banner(ctx: Context, proposal: Proposal, applied: tuple[Applied, ...]) -> Banner | None:
    parts: list[BannerPart] = []
    if applied and ctx.match.ambiguous:
        parts.append(explain.ambiguous_banner(ctx.match))
    for a in applied:
        if a.outcome.banner is not None:
            text = a.outcome.banner.text
            if ctx.match.ambiguous:
                text = f"{a.bundle.customer.name}: {text}"
            parts.append(BannerPart(a.outcome.banner.severity, text))
    parts += [BannerPart("info", text) for text in proposal.banners]
    return explain.combine_banner(
        parts,
        [a.restriction.id for a in applied],
        [a.restriction.review_due for a in applied if a.restriction.review_due is not None],
    )


def _reasons(
    ctx: Context,
    proposal: Proposal,
    acting: list[Applied],
    deciding: list[Applied],
    action: Action,
    target: Dest | None,
) -> list[Reason]:
    reasons = explain.identity_reasons(ctx.match)
    reasons += [
        Reason(source="rule", id=r.id, because=f"Rule '{r.id}' matched: {r.description}.") for r in proposal.matched
    ] or [explain.NO_RULE]
    reasons += [
        Reason(source="restriction", id=str(a.restriction.id), because=f"{_kind_label(a)}: {a.outcome.because}")
        for a in acting
    ]
    return reasons + _overrides(proposal, acting, deciding, action, target)


def _kind_label(a: Applied) -> str:
    label = a.restriction.kind.replace("_", " ").capitalize()
    return f"{label} ({a.bundle.customer.name})"


def _overrides(
    proposal: Proposal, acting: list[Applied], deciding: list[Applied], action: Action, target: Dest | None
) -> list[Reason]:
    """Say which manager rule a restriction overrode, and why."""
    by: Applied | None = None
    if action != proposal.action and deciding:
        # A proposed route is best named by the rule that chose where it goes.
        first, second = (
            (proposal.target_rule, proposal.action_rule)
            if proposal.action == "route"
            else (proposal.action_rule, proposal.target_rule)
        )
        by, rule_id = deciding[0], first or second
    elif target != proposal.target:
        by = next((a for a in acting if a.outcome.target == target), None)
        rule_id = proposal.target_rule
    if by is None or rule_id is None:
        return []
    proposed = explain.describe_action(proposal.action, proposal.target)
    return [explain.overridden(rule_id, proposed, by.restriction.id, by.restriction.kind, by.outcome.because)]
