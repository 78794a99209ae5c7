"""written_only: calls and visits are declined with how to write instead; writing is routed."""

from __future__ import annotations

from datetime import datetime

from ..context import Context, RestrictionView
from ..kind import RestrictionKind
from ..outcome import BannerPart, Outcome
from ..params import PERSONAL
from ..vocabulary import Contact

BANNER = BannerPart("warning", "Written contact only: letter, email or web form. Do not take calls or visits.")


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    if not r.covers(contact.channel):
        return Outcome(because="written-only does not cover this channel", banner=BANNER)
    if contact.channel in PERSONAL:
        message = "We can only accept contact from you in writing. " + ctx.provider.how_to_write()
        return Outcome(
            action="deflect",
            banner=BANNER,
            customer_message=message,
            because="Written contact only: calls and visits are declined.",
        )
    return Outcome(action="route", banner=BANNER, because="Written contact is allowed.")


KIND = RestrictionKind("written_only", "Contact in writing only (letter, email, web form).", check)
