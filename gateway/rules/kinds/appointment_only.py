"""appointment_only: a visit without a prior appointment is declined (PB policy 5.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ..context import Context, RestrictionView
from ..kind import LetterWords, RestrictionKind, Sentences
from ..outcome import BannerPart, Outcome
from ..params import KindParams
from ..vocabulary import Contact

VISIT = frozenset({"visit"})
BANNER = BannerPart("info", "Appointment only: visits by prior appointment.")


class AppointmentOnly(KindParams):
    kind: Literal["appointment_only"] = "appointment_only"


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


def letter(p: AppointmentOnly, w: LetterWords) -> Sentences:
    return (
        "You may visit our offices only by prior appointment.",
        "Please telephone or write to us to make an appointment before visiting.",
    )


KIND = RestrictionKind(
    name="appointment_only",
    description="Visits by prior appointment only.",
    params_model=AppointmentOnly,
    check=check,
    letter=letter,
    acts_on=VISIT,
    default_channels=VISIT,
)
