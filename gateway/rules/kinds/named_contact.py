"""named_contact: one designated member of staff handles every contact (never a general queue)."""

from __future__ import annotations

from datetime import datetime

from ...contact import InboundContact
from ..context import Context, RestrictionView, StaffView
from ..kind import RestrictionKind
from ..outcome import CAUTION_QUEUE, BannerPart, Dest, Outcome
from ..params import NamedContact


def _who(params: NamedContact, ctx: Context) -> tuple[StaffView | None, str]:
    if params.staff_id in ctx.staff:
        return ctx.staff[params.staff_id], "named contact"
    if params.deputy_staff_id is not None and params.deputy_staff_id in ctx.staff:
        return ctx.staff[params.deputy_staff_id], "deputy (named contact unavailable)"
    return None, "unavailable"


def _dest(channel: str, staff: StaffView, ctx: Context, now: datetime) -> Dest:
    if channel == "phone" and staff.working_hours and not ctx.calendar.in_windows(
            staff.working_hours, now, closed_on_holidays=True):
        return Dest("voicemail", str(staff.id))
    return Dest("staff", str(staff.id))


def check(contact: InboundContact, r: RestrictionView, ctx: Context, now: datetime) -> Outcome:
    params = r.params_as(NamedContact)
    staff, role = _who(params, ctx)
    name = staff.name if staff else f"staff #{params.staff_id} (not available)"
    banner = BannerPart("info", f"Named contact: {name} handles all contact with this customer.")
    if not r.covers(contact.channel):
        return Outcome(because="named contact does not cover this channel", banner=banner)
    if staff is None:
        return Outcome(action="route", target=Dest("queue", CAUTION_QUEUE), pins_target=True,
                       flagged=True, banner=banner,
                       because=f"Named contact staff #{params.staff_id} and any deputy are not "
                               "available: sent to the caution queue for a lead to handle.")
    dest = _dest(contact.channel, staff, ctx, now)
    where = "voicemail (outside their working hours)" if dest.type == "voicemail" else "them"
    return Outcome(action="route", target=dest, pins_target=True, banner=banner,
                   because=f"Routed to {staff.name}, the {role}: to {where}.")


KIND = RestrictionKind("named_contact", "One member of staff handles all contact.", check)
