"""Sign-offs asked of one named person, given or declined by that person signed in: a manager's
equality note (DESIGN §3.3) and the approval of a review period longer than the default (§3.1).

A caution lead recording or renewing a restriction names who is to sign; what they asked waits on
the restriction (`equality_note_asked`, `review_period_asked`) until that person signs with their
own credential, or declines it with a reason. An equality note awaiting its signature keeps the
restriction proposed; declined, it keeps it proposed for good (a further decision is refused), and
the review report says so until the caution lead lifts it, to record it afresh if it is still
needed. A longer review period awaiting approval, or declined, leaves the default review date in
force.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import DomainError, FieldInvalid, NotAllowed, StateConflict
from ..models.restrictions import DeclineIn, Restriction, SignOffIn
from .actors import acting, staff_roles
from .changes import notify_in_transaction
from .restrictions import activate_if_met, event, get, load, snapshot
from .transitions import require_status, update_restriction

log = logging.getLogger(__name__)
# A sign-off is given on a restriction that is still in force or may yet be; a review period is not
# changed under an appeal being decided (the appeal's decision may change it).
_OPEN = frozenset({"proposed", "active", "under_appeal"})
_NOT_UNDER_APPEAL = frozenset({"proposed", "active"})


@dataclass(frozen=True, slots=True)
class _SignOff:
    """One kind of sign-off: where its request waits, whom it names, and who may give it."""

    column: str
    who: str
    what: str
    roles: frozenset[str]
    statuses: frozenset[str]


_NOTE = _SignOff("equality_note_asked", "staff_id", "equality note", lc.APPEAL_DECIDERS, _OPEN)
_PERIOD = _SignOff(
    "review_period_asked", "approver", "longer review period", lc.LONG_REVIEW_APPROVERS, _NOT_UNDER_APPEAL
)


async def _asked_of_me(
    conn: asyncpg.Connection, restriction_id: int, body: SignOffIn, actor: lc.Actor, today: date, kind: _SignOff
) -> tuple[asyncpg.Record, int, dict[str, Any], date]:
    """The restriction (locked), the signed-in person signing, what they were asked to sign, and the
    day they sign it; refused unless it is still open, something is asked, and it was asked of them.
    When the person asked has left or no longer holds a role that signs, anyone who does may sign in
    their place (recorded as the signer), so that a request is never stuck with no one to answer it."""
    on = body.on or today
    lc.check_not_future("on", on, today)
    row = await load(conn, restriction_id, lock=True)  # a restriction that is not there: 404 first
    staff_id, _ = await acting(conn, actor, body.staff_id, kind.roles)
    require_status(row, kind.statuses, f"sign off its {kind.what}")
    asked = row[kind.column]
    if asked is None:
        raise StateConflict(
            f"restriction {row['id']} has no {kind.what} waiting to be signed or declined",
            {"field": kind.column},
            code="nothing_asked",
        )
    named = asked[kind.who]
    if named != staff_id and (await staff_roles(conn, [named])).get(named) in kind.roles:
        raise NotAllowed(
            f"the {kind.what} on restriction {row['id']} was asked of staff member {named}, and you are "
            f"signed in as staff member {staff_id}: only the person asked signs or declines it, with their own key",
            {"field": kind.column},
            code="not_you",
        )
    if on < date.fromisoformat(asked["asked_on"]):
        raise FieldInvalid("on", f"must not be before the day it was asked ({asked['asked_on']})")
    return row, staff_id, dict(asked), on


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
    async with conn.transaction():
        row, staff_id, asked, signed_on = await _asked_of_me(conn, restriction_id, body, actor, today, _NOTE)
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
    async with conn.transaction():
        row, staff_id, asked, approved_on = await _asked_of_me(conn, restriction_id, body, actor, today, _PERIOD)
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


async def _decline(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: DeclineIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
    *,
    kind: _SignOff,
    event_kind: str,
) -> Restriction:
    """The person asked says no: the request ends, with their reason in the history."""
    async with conn.transaction():
        row, staff_id, asked, declined_on = await _asked_of_me(conn, restriction_id, body, actor, today, kind)
        updated = await update_restriction(conn, restriction_id, **{kind.column: None})
        await event(
            conn,
            updated,
            actor,
            event_kind,
            why=f"{kind.what} declined by staff {staff_id} on {declined_on.isoformat()}: {body.reason}",
            before={kind.column: asked},
            after={kind.column: None, "declined_by": staff_id, "reason": body.reason},
        )
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


# The manager asked will not sign the note: the restriction stays proposed, and without a signed
# note the way in refuses to activate it.
decline_equality_note = partial(_decline, kind=_NOTE, event_kind="equality_note_declined")
# The approver asked does not agree the longer period: the default review date stays in force.
decline_review_period = partial(_decline, kind=_PERIOD, event_kind="review_period_declined")
