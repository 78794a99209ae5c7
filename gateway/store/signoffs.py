"""Sign-offs asked of one named person, given by that person signed in: a manager's equality note
(DESIGN §3.3) and the approval of a review period longer than the default (§3.1).

A caution lead recording or renewing a restriction names who is to sign; what they asked waits on
the restriction (`equality_note_asked`, `review_period_asked`) until that person signs with their
own credential. An equality note awaiting its signature keeps the restriction proposed; a longer
review period awaiting approval leaves the default review date in force.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import NotAllowed, StateConflict
from ..models.restrictions import Restriction, SignOffIn
from .actors import acting, staff_roles
from .changes import notify_in_transaction
from .restrictions import activate_if_met, event, get, load, snapshot
from .transitions import require_status, update_restriction

# A sign-off is given on a restriction that is still in force or may yet be.
_OPEN = frozenset({"proposed", "active", "under_appeal"})


async def _asked_of_me(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: SignOffIn,
    actor: lc.Actor,
    roles: frozenset[str],
    column: str,
    who: str,
    what: str,
) -> tuple[asyncpg.Record, int, dict[str, Any]]:
    """The restriction (locked), the signed-in person signing, and what they were asked to sign;
    refused unless it is still open, something is asked, and it was asked of them."""
    row = await load(conn, restriction_id, lock=True)  # a restriction that is not there: 404 first
    staff_id, _ = await acting(conn, actor, body.staff_id, roles)
    require_status(row, _OPEN, f"sign off its {what}")
    asked = row[column]
    if asked is None:
        raise StateConflict(
            f"restriction {row['id']} has no {what} waiting to be signed",
            {"field": column},
            code="nothing_asked",
        )
    if asked[who] != staff_id:
        raise NotAllowed(
            f"the {what} on restriction {row['id']} was asked of staff member {asked[who]}, and you are "
            f"signed in as staff member {staff_id}: only the person asked signs it, with their own key",
            {"field": column},
            code="not_you",
        )
    return row, staff_id, dict(asked)


async def sign_equality_note(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: SignOffIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Restriction:
    """The manager asked signs the note; a proposed restriction whose deciders are complete is
    activated by it (the way in re-checked then)."""
    signed_on = body.on or today
    lc.check_not_future("on", signed_on, today)
    async with conn.transaction():
        row, staff_id, asked = await _asked_of_me(
            conn, restriction_id, body, actor, lc.APPEAL_DECIDERS, "equality_note_asked", "staff_id", "equality note"
        )
        note = {"staff_id": staff_id, "note": asked["note"], "on": signed_on.isoformat()}
        updated = await update_restriction(conn, restriction_id, equality_note=note, equality_note_asked=None)
        await event(
            conn,
            updated,
            actor,
            "equality_note_signed",
            why=f"equality note signed by staff {staff_id}",
            before=snapshot(row),
            after=snapshot(updated),
        )
        roles = await staff_roles(conn, updated["deciders"])
        await activate_if_met(conn, updated, roles, policy, actor, signed_on)
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


async def approve_review_period(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: SignOffIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Restriction:
    """The approver asked agrees the longer review period, which then replaces the default date. A
    customer already written to was told the default date: a new letter is then due."""
    approved_on = body.on or today
    lc.check_not_future("on", approved_on, today)
    async with conn.transaction():
        row, staff_id, asked = await _asked_of_me(
            conn,
            restriction_id,
            body,
            actor,
            lc.LONG_REVIEW_APPROVERS,
            "review_period_asked",
            "approver",
            "longer review period",
        )
        changes: dict[str, Any] = {
            "review_due": date.fromisoformat(asked["review_due"]),
            "review_approver": staff_id,
            "review_period_asked": None,
        }
        if row["letter_sent_on"] is not None:
            changes["letter_sent_on"] = None
        updated = await update_restriction(conn, restriction_id, **changes)
        await event(
            conn,
            updated,
            actor,
            "review_period_approved",
            why=f"review by {asked['review_due']} approved by staff {staff_id} on {approved_on.isoformat()}",
            before=snapshot(row),
            after=snapshot(updated),
        )
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)
