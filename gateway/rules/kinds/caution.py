"""caution: a staff-safety marker; every contact is routed with a danger banner."""

from __future__ import annotations

from datetime import datetime

from ..context import Context, RestrictionView
from ..kind import RestrictionKind
from ..outcome import BannerPart, Outcome
from ..params import Caution
from ..vocabulary import Contact


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(Caution)
    text = f"Caution: {params.note.rstrip('.')}."
    if contact.channel == "visit":
        text += " Do not visit alone."
    banner = BannerPart("danger", text)
    if not r.covers(contact.channel):
        return Outcome(because="caution does not cover this channel", banner=banner)
    return Outcome(action="route", banner=banner, because="Staff safety marker: route with the caution banner.")


KIND = RestrictionKind("caution", "Staff safety marker shown to every agent.", check)
