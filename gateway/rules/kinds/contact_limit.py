"""contact_limit: over N contacts per period, calls are declined and writing is filed unanswered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from ..context import Context, RestrictionView
from ..counterkeys import TTL_SECONDS, CounterSpec, Period, restriction_count_key
from ..kind import LetterWords, RestrictionKind, Sentences
from ..outcome import NEW_INFORMATION_QUEUE, BannerPart, Dest, Outcome
from ..params import PERSONAL, KindParams
from ..vocabulary import Contact


class ContactLimit(KindParams):
    kind: Literal["contact_limit"] = "contact_limit"
    limit: int = Field(ge=1, le=1000)
    period: Period


def contact_limit_key(restriction: RestrictionView, now: datetime, tz: ZoneInfo) -> str:
    """The counter of contacts against this restriction in the current period."""
    period = restriction.params_as(ContactLimit).period
    return restriction_count_key(restriction.id, period, now, tz)


def counters(r: RestrictionView, now: datetime, tz: ZoneInfo) -> Sequence[CounterSpec]:
    return (CounterSpec(contact_limit_key(r, now, tz), TTL_SECONDS[r.params_as(ContactLimit).period]),)


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


_DECLINED = (("phone", "calls"), ("visit", "visits"))
_FILED = (("email", "emails"), ("web_form", "web forms"), ("letter", "letters"))


def letter(p: ContactLimit, w: LetterWords) -> Sentences:
    """What happens beyond the limit, said only of the channels the restriction covers."""
    declined = _joined([name for ch, name in _DECLINED if ch in w.covered])
    filed = _joined([name for ch, name in _FILED if ch in w.covered])
    beyond = [
        f"{declined} will be declined until the next {p.period}" if declined else "",
        f"{filed}{'' if declined else ' will be'} acknowledged, kept on file and read, though we may not reply"
        if filed
        else "",
    ]
    said = ", and ".join(b for b in beyond if b) or "further contacts may not be answered"
    return (
        f"We will respond to up to {p.limit} contacts by {w.channels} each {p.period}. Beyond that, {said}.",
        " ".join(s for s in (w.write_instead, w.emergency) if s),
    )


def _joined(names: list[str]) -> str:
    """'calls', 'calls and visits', 'emails, web forms and letters'; '' for none."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


KIND = RestrictionKind(
    name="contact_limit",
    description="At most N contacts per day, week or month.",
    params_model=ContactLimit,
    check=check,
    letter=letter,
    default_channels=frozenset({"phone", "email", "web_form"}),
    counters=counters,
)
