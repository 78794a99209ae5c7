"""named_contact: one designated member of staff handles every contact (never a general queue)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ..context import Context, RestrictionView, StaffView
from ..kind import LetterWords, References, RestrictionKind, Sentences
from ..outcome import CAUTION_QUEUE, BannerPart, Dest, Outcome
from ..params import Id, KindParams
from ..vocabulary import Contact


class NamedContact(KindParams):
    kind: Literal["named_contact"] = "named_contact"
    staff_id: Id
    deputy_staff_id: Id | None = None


def _who(params: NamedContact, ctx: Context) -> tuple[StaffView | None, str]:
    if params.staff_id in ctx.staff:
        return ctx.staff[params.staff_id], "named contact"
    if params.deputy_staff_id is not None and params.deputy_staff_id in ctx.staff:
        return ctx.staff[params.deputy_staff_id], "deputy (named contact unavailable)"
    return None, "unavailable"


def _dest(channel: str, staff: StaffView, ctx: Context, now: datetime) -> Dest | None:
    """Their line, else their voicemail, else their own queue; None when nothing of theirs answers."""
    if channel != "phone":
        if staff.mailbox or not staff.queue:
            return Dest("staff", str(staff.id))
        return Dest("queue", staff.queue)
    off_duty = bool(staff.working_hours) and not ctx.calendar.in_windows(
        staff.working_hours, now, closed_on_holidays=True
    )
    if staff.voicemail and (off_duty or not staff.line):
        return Dest("voicemail", str(staff.id))
    if staff.line:
        return Dest("staff", str(staff.id))
    return Dest("queue", staff.queue) if staff.queue else None


def check(contact: Contact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(NamedContact)
    staff, role = _who(params, ctx)
    name = staff.name if staff else f"staff #{params.staff_id} (not available)"
    banner = BannerPart("info", f"Named contact: {name} handles all contact with this customer.")
    if not r.covers(contact.channel):
        return Outcome(because="named contact does not cover this channel", banner=banner)
    dest = _dest(contact.channel, staff, ctx, now) if staff is not None else None
    if staff is None or dest is None:
        return Outcome(
            action="route",
            target=Dest("queue", CAUTION_QUEUE),
            pins_target=True,
            flagged=True,
            banner=banner,
            because=f"Named contact {name} cannot be reached on this channel (no line, "
            "voicemail or queue, and no deputy): sent to the caution queue for a lead "
            "to handle.",
        )
    where = {"voicemail": "their voicemail", "queue": f"their queue '{dest.id}'"}.get(dest.type, "them")
    return Outcome(
        action="route",
        target=dest,
        pins_target=True,
        banner=banner,
        because=f"Routed to {staff.name}, the {role}: to {where}.",
    )


def names(p: NamedContact) -> References:
    deputy = () if p.deputy_staff_id is None else (("params.deputy_staff_id", p.deputy_staff_id),)
    return References(staff=(("params.staff_id", p.staff_id), *deputy))


def letter(p: NamedContact, w: LetterWords) -> Sentences:
    staff = w.records.staff.get(p.staff_id)
    if staff is None:
        return (
            f"Your contact with us by {w.channels} will be handled by one named member of staff.",
            "We will tell you separately who they are and how to reach them.",
        )
    ways = ", ".join(way for way in (staff.line, staff.mailbox) if way)
    return (
        f"Your contact with us by {w.channels} will be handled by one named member of staff, {staff.name}.",
        f"Please contact {staff.name}" + (f" ({ways})" if ways else "") + ".",
    )


KIND = RestrictionKind(
    name="named_contact",
    description="One member of staff handles all contact.",
    params_model=NamedContact,
    check=check,
    letter=letter,
    names=names,
)
