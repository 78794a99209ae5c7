"""caution: a staff-safety marker; every contact is routed with a danger banner."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ..context import Context, RestrictionView
from ..kind import LetterWords, RestrictionKind, Sentences
from ..outcome import BannerPart, Outcome
from ..params import KindParams
from ..vocabulary import Contact


class Caution(KindParams):
    kind: Literal["caution"] = "caution"
    note: str = Field(min_length=1, max_length=500)


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(Caution)
    text = f"Caution: {params.note.rstrip('.')}."
    if contact.channel == "visit":
        text += " Do not visit alone."
    banner = BannerPart("danger", text)
    if not r.covers(contact.channel):
        return Outcome(because="caution does not cover this channel", banner=banner)
    return Outcome(action="route", banner=banner, because="Staff safety marker: route with the caution banner.")


def letter(p: Caution, w: LetterWords) -> Sentences:
    return (
        "Our staff will take extra safety precautions when dealing with you, for example not visiting alone.",
        "You can contact us in the usual way.",
    )


KIND = RestrictionKind(
    name="caution",
    description="Staff safety marker shown to every agent.",
    params_model=Caution,
    check=check,
    letter=letter,
)
