"""Sign-offs asked of one named person, given by that person signed in: a manager's equality note
(DESIGN §3.3) and the approval of a review period longer than the default (§3.1).

A caution lead recording or renewing a restriction names who is to sign; what they asked waits on
the restriction (`equality_note_asked`, `review_period_asked`) until that person signs with their
own credential. An equality note awaiting its signature keeps the restriction proposed; a longer
review period awaiting approval leaves the default review date in force.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import DomainError, FieldInvalid, NotAllowed, StateConflict
from ..models.restrictions import Restriction, SignOffIn
from .actors import acting, staff_roles
from .changes import notify_in_transaction
from .restrictions import activate_if_met, event, get, load, snapshot
from .transitions import require_status, update_restriction

log = logging.getLogger(__name__)
# A sign-off is given on a restriction that is still in force or may yet be; a review period is not
# changed under an appeal being decided (the appeal's decision may change it).
_OPEN = frozenset({"proposed", "active", "under_appeal"})
_NOT_UNDER_APPEAL = frozenset({"proposed", "active"})


async def _asked_of_me(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: SignOffIn,
    actor: lc.Actor,
    roles: frozenset[str],
    column: str,
    who: str,
    what: str,
    statuses: frozenset[str] = _OPEN,
) -> tuple[asyncpg.Record, int, dict[str, Any]]:
    """The restriction (locked), the signed-in person signing, and what they were asked to sign;
    refused unless it is still open, something is asked, and it was asked of them. When the person
    asked has left or no longer holds a role that signs, anyone who does may sign in their place
    (recorded as the signer), so that a request is never stuck with no one able to answer it."""
    row = await load(conn, restriction_id, lock=True)  # a restriction that is not there: 404 first
    staff_id, _ = await acting(conn, actor, body.staff_id, roles)
    require_status(row, statuses, f"sign off its {what}")
    asked = row[column]
    if asked is None:
        raise StateConflict(
            f"restriction {row['id']} has no {what} waiting to be signed",
            {"field": column},
            code="nothing_asked",
        )
    if asked[who] != staff_id and (await staff_roles(conn, [asked[who]])).get(asked[who]) in roles:
        raise NotAllowed(
            f"the {what} on restriction {row['id']} was asked of staff member {asked[who]}, and you are "
            f"signed in as staff member {staff_id}: only the person asked signs it, with their own key",
            {"field": column},
            code="not_you",
        )
    if body.on is not None and body.on < date.fromisoformat(asked["asked_on"]):
        raise FieldInvalid("on", f"must not be before the day it was asked ({asked['asked_on']})")
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
        try:  # the signature stands even when activation is refused (the way in changed meanwhile)
            async with conn.transaction():
                await activate_if_met(conn, updated, roles, policy, actor, max(signed_on, row["created_at"].date()))
        except DomainError as exc:
            log.info("restriction %d: equality note signed, not activated: %s", restriction_id, exc)
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
            _NOT_UNDER_APPEAL,
        )
        replaces = asked.get("replaces")
        if replaces is not None and row["review_due"].isoformat() != replaces:
            raise StateConflict(
                f"restriction {restriction_id}'s review date is {row['review_due'].isoformat()} now, not "
                f"{replaces} as when the longer period was asked (an appeal brought it forward): ask again "
                "at its review",
                {"field": "review_period_asked"},
                code="stale",
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
