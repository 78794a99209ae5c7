"""contact_limit: over N contacts per period, calls are declined and writing is filed unanswered."""

from __future__ import annotations

from datetime import datetime

from ..context import Context, RestrictionView
from ..counters import contact_limit_key
from ..kind import RestrictionKind
from ..outcome import NEW_INFORMATION_QUEUE, BannerPart, Dest, Outcome
from ..params import PERSONAL, ContactLimit
from ..vocabulary import Contact


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(ContactLimit)
    count = ctx.counts.get(contact_limit_key(r, now, ctx.calendar.tz), 0)
    per = f"{params.limit} per {params.period}"
    banner = BannerPart("warning", f"Contact limit: {per}; {count} so far this {params.period}.")
    if not r.covers(contact.channel):
        return Outcome(because="contact limit does not cover this channel", banner=banner)
    if count <= params.limit:
        return Outcome(action="route", banner=banner, because=f"Contact {count} of {per}: within the limit.")
    over = f"Contact {count} this {params.period} is over the limit of {per}"
    if contact.channel in PERSONAL:
        return Outcome(
            action="deflect",
            flagged=True,
            banner=banner,
            because=f"{over}: declined.",
            customer_message=f"You have reached the agreed limit of {per} contacts. "
            f"Please contact us again next {params.period}.",
        )
    return Outcome(
        action="auto_acknowledge",
        target=Dest("queue", NEW_INFORMATION_QUEUE),
        flagged=True,
        banner=banner,
        because=f"{over}: filed and acknowledged with no reply, queued for reading.",
        customer_message="Thank you for your message. It has been filed and will be "
        f"read, but you have reached the agreed limit of {per} "
        "contacts, so we may not reply.",
    )


KIND = RestrictionKind("contact_limit", "At most N contacts per day, week or month.", check)
