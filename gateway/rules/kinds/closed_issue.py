"""closed_issue: an exhausted complaint is read and filed, answered only on new information."""

from __future__ import annotations

from datetime import datetime

from ..context import Context, RestrictionView
from ..explain import closed_on
from ..kind import RestrictionKind
from ..outcome import NEW_INFORMATION_QUEUE, BannerPart, Dest, Outcome
from ..params import WRITTEN, ClosedIssue
from ..vocabulary import Contact


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(ClosedIssue)
    case = ctx.find_case(params.case_id)
    ref = case.reference if case else f"#{params.case_id}"
    closed = closed_on(case.closed_on if case else None)
    banner = BannerPart(
        "warning", f"Do not reopen case {ref} (closed {closed}): reply only to new, relevant information."
    )
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


KIND = RestrictionKind("closed_issue", "An exhausted complaint: filed, answered only on new information.", check)
