"""appointment_only: a visit without a prior appointment is declined (PB policy 5.4)."""

from __future__ import annotations

from datetime import datetime

from ..context import Context, RestrictionView
from ..kind import RestrictionKind
from ..outcome import BannerPart, Outcome
from ..vocabulary import Contact

BANNER = BannerPart("info", "Appointment only: visits by prior appointment.")


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    if not r.covers(contact.channel):
        return Outcome(because="appointment-only does not cover this channel", banner=BANNER)
    if contact.channel != "visit":
        return Outcome(action="route", banner=BANNER, because="Not a visit: allowed.")
    if ctx.appointment:
        return Outcome(action="route", banner=BANNER, because="Visit with an appointment.")
    return Outcome(
        action="deflect",
        banner=BANNER,
        customer_message="We can only see you by appointment. Please contact us to arrange one before you visit.",
        because="Visit without an appointment: declined.",
    )


KIND = RestrictionKind("appointment_only", "Visits by prior appointment only.", check)
