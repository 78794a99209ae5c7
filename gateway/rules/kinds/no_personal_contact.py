"""no_personal_contact: only writing or a registered third party (PB policy 5.1.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ..context import Context, RestrictionView
from ..explain import describe_representatives
from ..kind import LetterWords, RestrictionKind, Sentences
from ..outcome import BannerPart, Outcome
from ..params import PERSONAL, KindParams
from ..vocabulary import Contact


class NoPersonalContact(KindParams):
    kind: Literal["no_personal_contact"] = "no_personal_contact"


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


def letter(p: NoPersonalContact, w: LetterWords) -> Sentences:
    return (
        "Your name is on our 'no personal contact' list: we will not accept contact "
        f"from you in person by {w.channels}.",
        "Please contact us in writing, or through a third party such as a family "
        f"member, friend, advocate or support worker. {w.write_instead}",
    )


KIND = RestrictionKind(
    name="no_personal_contact",
    description="No personal contact: writing or a registered representative only.",
    params_model=NoPersonalContact,
    check=check,
    letter=letter,
    # The customer's own calls and visits are shut; writing and representatives stay open.
    acts_on=PERSONAL,
    default_channels=PERSONAL,
    shuts=True,
    asks_to_write=True,
)
