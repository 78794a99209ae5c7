"""set_times: calls (or visits) only at agreed times on agreed days (PoI policy 4.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ..calendar import describe_windows
from ..context import Context, RestrictionView
from ..kind import LetterWords, RestrictionKind, Sentences
from ..outcome import BannerPart, Outcome
from ..params import WRITTEN, KindParams, Window
from ..vocabulary import Contact

_NOUNS = {"phone": ("calls", "call"), "visit": ("visits", "visit")}


class SetTimes(KindParams):
    kind: Literal["set_times"] = "set_times"
    windows: list[Window] = Field(min_length=1, max_length=21)
    closed_on_bank_holidays: bool = True


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(SetTimes)
    windows = describe_windows(params.windows)
    holidays = ", not on bank holidays" if params.closed_on_bank_holidays else ""
    banner = BannerPart("warning", f"Set times: contact only {windows} (UK time{holidays}).")
    if not r.covers(contact.channel):
        return Outcome(because="set times do not cover this channel", banner=banner)
    cal = ctx.calendar
    if cal.in_windows(params.windows, now, params.closed_on_bank_holidays):
        return Outcome(action="route", because=f"Inside the agreed times ({windows}).", banner=banner)
    nxt = cal.next_allowed(params.windows, now, params.closed_on_bank_holidays)
    when = cal.describe_next(nxt, now) if nxt else "not within the next 60 days"
    if contact.channel in WRITTEN:
        return Outcome(
            action="hold", banner=banner, because=f"Outside the agreed times ({windows}): held until {when}."
        )
    plural, singular = _NOUNS.get(contact.channel, ("contact", "contact us"))
    message = f"We can only accept {plural} {windows}."
    if nxt:
        message += f" The next time you can {singular} is {when}."
    return Outcome(
        action="deflect",
        banner=banner,
        customer_message=message,
        because=f"Outside the agreed times ({windows}); next allowed {when}.",
    )


def letter(p: SetTimes, w: LetterWords) -> Sentences:
    windows = describe_windows(p.windows)
    holidays = " (not on bank holidays)" if p.closed_on_bank_holidays else ""
    return (
        f"We will only take contact by {w.channels} {windows}{holidays}.",
        f"Please contact us by {w.channels} {windows}. {w.write_instead}",
    )


KIND = RestrictionKind(
    name="set_times",
    description="Contact only inside agreed weekly windows, in local time.",
    params_model=SetTimes,
    check=check,
    letter=letter,
    # Calls by default; visits are declined and writing is held outside the windows when covered.
    default_channels=frozenset({"phone"}),
)
