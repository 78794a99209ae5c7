"""written_only: calls and visits are declined with how to write instead; writing is routed."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ..context import Context, RestrictionView
from ..kind import LetterWords, RestrictionKind, Sentences
from ..outcome import BannerPart, Outcome
from ..params import PERSONAL, KindParams
from ..vocabulary import Contact


class WrittenOnly(KindParams):
    kind: Literal["written_only"] = "written_only"


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


def letter(p: WrittenOnly, w: LetterWords) -> Sentences:
    return f"We will not accept contact by {w.channels}.", f"Please contact us in writing. {w.write_instead}"


KIND = RestrictionKind(
    name="written_only",
    description="Contact in writing only (letter, email, web form).",
    params_model=WrittenOnly,
    check=check,
    letter=letter,
    # Writing is what this kind leaves open: it restricts calls and visits, and shuts them.
    acts_on=PERSONAL,
    default_channels=PERSONAL,
    shuts=True,
    asks_to_write=True,
)
