"""no_personal_contact: only writing or a registered third party (PB policy 5.1.1)."""

from __future__ import annotations

from datetime import datetime

from ..context import Context, RestrictionView
from ..explain import describe_representatives
from ..kind import RestrictionKind
from ..outcome import BannerPart, Outcome
from ..params import PERSONAL
from ..vocabulary import Contact


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    bundle = ctx.bundle_of(r.customer_id)
    reps = describe_representatives(bundle.representatives if bundle else ())
    banner = BannerPart(
        "warning", f"No personal contact: writing or through a representative only. Representatives: {reps}."
    )
    if not r.covers(contact.channel):
        return Outcome(because="no-personal-contact does not cover this channel", banner=banner)
    if contact.channel not in PERSONAL:
        return Outcome(action="route", banner=banner, because="Written contact is allowed.")
    if r.customer_id in ctx.match.representative_of:
        return Outcome(action="route", banner=banner, because="From a registered representative: allowed.")
    message = (
        "We can only accept contact from you in writing or through your representative. " + ctx.provider.how_to_write()
    )
    return Outcome(
        action="deflect",
        banner=banner,
        customer_message=message,
        because="No personal contact: the customer's own call or visit is declined.",
    )


KIND = RestrictionKind(
    "no_personal_contact", "No personal contact: writing or a registered representative only.", check
)
