"""Wording shared across the engine: identity, rule overrides, targets and the combined banner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from .calendar import format_date, join_words
from .context import Match, RepresentativeView
from .outcome import BannerPart, Dest, severity_rank
from .vocabulary import Banner, Reason

NO_RULE = Reason(source="rule", id=None, because="No routing rule matched: the general queue (the built-in default).")


def describe_dest(dest: Dest | None) -> str:
    if dest is None:
        return "no target"
    if dest.type == "queue":
        return f"queue '{dest.id}'"
    return f"{dest.type} #{dest.id}"


def describe_action(action: str, dest: Dest | None) -> str:
    if action in ("route", "hold"):
        return f"{action} to {describe_dest(dest)}"
    return action.replace("_", "-")


def closed_on(day: date | None) -> str:
    return format_date(day) if day else "date not recorded"


def describe_representatives(reps: Sequence[RepresentativeView]) -> str:
    if not reps:
        return "no representative registered"
    return join_words([f"{r.name} ({r.relationship})" for r in reps])


def identity_reasons(match: Match) -> list[Reason]:
    if match.withheld:
        return [
            Reason(
                source="identity",
                id="withheld",
                because="Number withheld: no restriction can be matched; normal route.",
            )
        ]
    if not match.bundles and (match.adjustments or match.on_behalf or match.shared_with):
        # Known to us (their flags or their representative's link reached the rules), but with no
        # restriction: saying "not recognised" would mislead a manager reading a simulation.
        flags = join_words(sorted(match.adjustments)) if match.adjustments else "none"
        return [
            Reason(
                source="identity",
                id="unrestricted",
                because=f"Sender has no contact restriction (recorded adjustments: {flags}): normal route.",
            )
        ]
    if not match.bundles:
        return [Reason(source="identity", id="unmatched", because="Sender not recognised: normal route.")]
    reasons = []
    if match.ambiguous:
        names = match.names
        unrestricted = [name for _, name in match.shared_with]
        because = f"This identifier reaches {len(names)} customers ({join_words(names)}): "
        because += "the restrictions of all of them apply"
        if unrestricted:
            has = "has" if len(unrestricted) == 1 else "have"
            because += f" ({join_words(unrestricted)} {has} none)"
        reasons.append(Reason(source="identity", id="ambiguous", because=because + "."))
    for cid in match.representative_of:
        bundle = next((b for b in match.bundles if b.customer.id == cid), None)
        name = bundle.customer.name if bundle else f"customer #{cid}"
        reasons.append(
            Reason(source="identity", id=str(cid), because=f"Sender is a registered representative of {name}.")
        )
    return reasons


MOST_NAMED = 4  # customers with no restriction named in a banner; the rest are counted


def ambiguous_banner(match: Match) -> BannerPart:
    """Who the caller may be: every restricted customer (their restrictions are shown), then up to
    MOST_NAMED others (a hostel's landline may be dozens of residents'), said to have none."""
    restricted = [b.customer.name for b in match.bundles]
    others = [name for _, name in match.shared_with]
    named = others[:MOST_NAMED]
    rest = len(others) - len(named)
    who = join_words([*restricted, *named, *([f"one of {rest} other customers"] if rest else [])], "or")
    text = f"Shared identifier: could be {who}. Check who is contacting us"
    if restricted and others:
        none = f"{others[0]} has none" if len(others) == 1 else "the others have none"
        text += f"; the restrictions of {join_words(restricted)} are shown ({none})"
    elif restricted:
        text += "; the restrictions of each are shown"
    return BannerPart("warning", text + ".")


def overridden(rule_id: str, proposed: str, restriction_id: int, kind: str, why: str) -> Reason:
    return Reason(
        source="rule",
        id=rule_id,
        because=f"Rule '{rule_id}' proposed {proposed}; overridden by restriction "
        f"#{restriction_id} ({kind.replace('_', ' ')}): {why}",
    )


def combine_banner(
    parts: Sequence[BannerPart], restriction_ids: Sequence[int], review_dues: Sequence[date]
) -> Banner | None:
    """Several banners become one: the highest severity, texts joined, every restriction id."""
    if not parts:
        return None
    severity = max((p.severity for p in parts), key=severity_rank)
    texts = list(dict.fromkeys(p.text for p in parts))
    return Banner(
        severity=severity,
        text=" | ".join(texts),
        restriction_ids=sorted(set(restriction_ids)),
        review_due=min(review_dues) if review_dues else None,
    )
