"""closed_issue: an exhausted complaint is read and filed, answered only on new information."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from ..calendar import format_date
from ..context import Context, RestrictionView
from ..explain import closed_on
from ..kind import LetterWords, Problem, Proposal, References, RestrictionKind, Sentences
from ..outcome import NEW_INFORMATION_QUEUE, BannerPart, Dest, Outcome
from ..params import WRITTEN, Id, KindParams
from ..vocabulary import Contact

# The policies restrict contact about a complaint only once every internal and external review of it
# is done ("exhausted"); a complaint merely closed may still be escalated, and that must be answered.
EXHAUSTED = "exhausted"


class ClosedIssue(KindParams):
    kind: Literal["closed_issue"] = "closed_issue"
    case_id: Id


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(ClosedIssue)
    case = ctx.find_case(params.case_id)
    ref = case.reference if case else f"#{params.case_id}"
    closed = closed_on(case.closed_on if case else None)
    banner = BannerPart(
        "warning", f"Do not reopen case {ref} (closed {closed}): reply only to new, relevant information."
    )
    if case is not None and case.status != EXHAUSTED:  # reopened (or its review not over after all)
        banner = BannerPart(
            "warning",
            f"Case {ref} is {case.status}, not exhausted: its closed-issue restriction does not apply; review it.",
        )
        return Outcome(because=f"case {ref} is {case.status}, no longer exhausted: not applied", banner=banner)
    about = ctx.case is not None and ctx.case.id == params.case_id
    if not about or not r.covers(contact.channel):
        return Outcome(because=f"not about closed case {ref}", banner=banner)
    if contact.channel not in WRITTEN:
        return Outcome(action="route", banner=banner, because=f"About closed case {ref}: route, but do not reopen it.")
    message = (
        f"Thank you for your message. It has been filed with case {ref}, which is closed. "
        "We will reply only if it contains new, relevant information."
    )
    return Outcome(
        action="auto_acknowledge",
        target=Dest("queue", NEW_INFORMATION_QUEUE),
        flagged=True,
        banner=banner,
        customer_message=message,
        because=f"About closed case {ref} (closed {closed}): filed to case {ref} "
        "without reopening it, acknowledged with no reply, and queued for a "
        "new-information check.",
    )


def names(p: ClosedIssue) -> References:
    return References(cases=(("params.case_id", p.case_id),))


def on_save(p: ClosedIssue, proposal: Proposal) -> Sequence[Problem]:
    case = proposal.records.cases.get(p.case_id)
    if case is None:  # reported as missing before the kind is asked
        return ()
    if case.customer_id != proposal.customer_id:
        return [Problem("params.case_id", f"case {case.reference} belongs to another customer")]
    if case.status != EXHAUSTED:
        why = (
            f"case {case.reference} is {case.status}; closed_issue needs an exhausted case "
            "(every internal and external review of it done)"
        )
        return [Problem("params.case_id", why)]
    return ()


def letter(p: ClosedIssue, w: LetterWords) -> Sentences:
    case = w.records.cases.get(p.case_id)
    complaint = f"{case.reference} ({case.subject})" if case else f"#{p.case_id}"
    closed = format_date(case.closed_on) if case and case.closed_on else "its closing date"
    return (
        f"Your complaint {complaint} completed our complaints process on {closed}. Further contact "
        "about it will be read and filed, and answered only where it gives new, relevant information.",
        "We will still consider any new, unrelated matter you raise in the usual way.",
    )


KIND = RestrictionKind(
    name="closed_issue",
    description="An exhausted complaint: filed, answered only on new information.",
    params_model=ClosedIssue,
    check=check,
    letter=letter,
    names=names,
    on_save=on_save,
)
