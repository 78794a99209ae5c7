"""The lifecycle after saving: letter sent, appeal, appeal decision, review, lift, lapse."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import FieldInvalid, StateConflict
from ..letters import Letter
from ..models.restrictions import (
    LetterSentIn,
    LiftIn,
    Restriction,
    ReviewIn,
)
from ..outbox.message import OutgoingMail
from . import outbox
from .actors import DECIDER_ROLES, acting, staff_role
from .changes import notify_in_transaction
from .restrictions import COLS, event, get, load, snapshot

LAPSE_ACTOR = lc.Actor("system:lapse")


def require_status(row: asyncpg.Record, allowed: frozenset[str] | set[str], doing: str) -> None:
    if row["status"] not in allowed:
        raise StateConflict(
            f"restriction {row['id']} is {row['status']}; cannot {doing}",
            {"status": row["status"], "allowed": sorted(allowed)},
            code="wrong_status",
        )


async def update_restriction(conn: asyncpg.Connection, restriction_id: int, **fields: Any) -> asyncpg.Record:
    # Column names come from this module's keyword arguments, never from a request.
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    return await conn.fetchrow(
        f"UPDATE restrictions SET {sets}, updated_at = now() WHERE id = $1 RETURNING {COLS}",
        restriction_id,
        *fields.values(),
    )


# The customer knew of the restriction: a letter was sent, or they appealed.
_TOLD_OF_IT = """SELECT EXISTS (SELECT 1 FROM restriction_letters WHERE restriction_id = $1)
                     OR EXISTS (SELECT 1 FROM appeals WHERE restriction_id = $1)"""


async def record_letter(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: LetterSentIn,
    letter: Letter,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
    *,
    pdf: bytes | None = None,
    email: OutgoingMail | None = None,
    made_from: datetime | None = None,
) -> Restriction:
    """Marks the letter sent and keeps a copy of exactly what was sent (text, html, the PDF); an
    emailed letter goes into the email outbox in the same transaction, so it is sent if and only if
    it is recorded."""
    sent_on = body.sent_on or today
    lc.check_not_future("sent_on", sent_on, today)
    async with conn.transaction():
        await acting(conn, actor, roles=DECIDER_ROLES)
        row = await load(conn, restriction_id, lock=True)
        if made_from is not None and row["updated_at"] != made_from:  # an appeal decided, a lift, since
            raise StateConflict(
                f"restriction {restriction_id} changed while its letter was being made: make it again",
                code="letter_outdated",
            )
        if row["status"] == "lifted":  # the letter telling a customer who knew of it that it is lifted, once
            if row["letter_sent_on"] is not None:
                raise StateConflict(
                    f"restriction {restriction_id} is lifted and its letter was sent on {row['letter_sent_on']}",
                    code="letter_already_sent",
                )
            if not await conn.fetchval(_TOLD_OF_IT, restriction_id):
                raise StateConflict(
                    f"restriction {restriction_id} was lifted before the customer was written to or appealed: "
                    "there is nothing to tell them",
                    code="no_letter_due",
                )
        else:
            require_status(row, lc.ENFORCED, "send a letter before the restriction is active")
        outbox_id = await enqueue_letter(conn, email) if email is not None else None
        await conn.execute(
            """INSERT INTO restriction_letters (restriction_id, sent_on, method, note, body_text, body_html,
                   recorded_by, sent_to, outbox_id, body_pdf) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            restriction_id,
            sent_on,
            body.method,
            body.note,
            letter.text,
            letter.html,
            actor.label,
            email.to if email else None,
            outbox_id,
            pdf,
        )
        updated = await update_restriction(conn, restriction_id, letter_sent_on=sent_on)
        await event(
            conn,
            updated,
            actor,
            "letter_sent",
            why=body.note,
            before={"letter_sent_on": iso_day(row["letter_sent_on"])},
            after={"letter_sent_on": sent_on.isoformat(), "method": body.method, "sent_to": email and email.to},
        )
    return await get(conn, restriction_id, policy)


async def enqueue_letter(conn: asyncpg.Connection, mail: OutgoingMail) -> int:
    """Into the email outbox, in the caller's transaction: the sender delivers it after commit."""
    return await outbox.enqueue(
        conn,
        kind="letter",
        to=mail.to,
        subject=mail.subject,
        body=mail.text,
        message_id=mail.message_id,
        attachments=[(a.name, a.content_type, a.content) for a in mail.attachments],
    )


def closing(row: asyncpg.Record) -> lc.Closing:
    return lc.Closing(row["id"], row["kind"], frozenset(row["channels"]))


def iso_day(day: date | None) -> str | None:
    return day.isoformat() if day else None


async def review(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: ReviewIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Restriction:
    """Renew (new reasons, review date; a new letter is then due) or lift."""
    reviewed_on = body.reviewed_on or today
    lc.check_not_future("reviewed_on", reviewed_on, today)
    for i, incident in enumerate(body.incidents):
        lc.check_not_future(f"incidents.{i}.on", incident.on, today)
    async with conn.transaction():
        staff_id, _ = await acting(conn, actor, body.staff_id, DECIDER_ROLES)
        row = await load(conn, restriction_id, lock=True)
        require_status(row, {"active"}, "review it (decide any open appeal first)")
        if body.outcome == "lift":  # the customer is told (policy 000 §7.1): a letter is due
            changes: dict[str, Any] = {
                "status": "lifted",
                "valid_to": min(reviewed_on, row["valid_to"] or reviewed_on),
                "letter_sent_on": None,
            }
        else:
            changes = await _renewal(conn, row, body, policy, reviewed_on, staff_id, today)
        updated = await update_restriction(conn, restriction_id, **changes)
        await event(
            conn,
            updated,
            actor,
            "reviewed",
            why=body.reasons,
            before=snapshot(row),
            after={
                **snapshot(updated),
                "outcome": body.outcome,
                "reviewed_by": staff_id,
                "reviewed_on": reviewed_on.isoformat(),
            },
        )
        if body.outcome == "lift":
            lifted = {"lifted_on": reviewed_on.isoformat()}
            await event(conn, updated, actor, "lifted", why=f"lifted at review by staff {staff_id}", after=lifted)
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


async def _renewal(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    body: ReviewIn,
    policy: lc.Policy,
    reviewed_on: date,
    me: int,
    today: date,
) -> dict[str, Any]:
    review_due = body.review_due or lc.add_months(reviewed_on, policy.review_months)
    approver = body.review_approver
    lc.check_review_due(
        reviewed_on,
        review_due,
        policy.review_months,
        await staff_role(conn, approver, "review_approver") if approver else None,
    )
    period = lc.review_period(reviewed_on, review_due, policy.review_months, approver, me, today)
    if body.valid_to is not None and body.valid_to < row["valid_from"]:
        raise FieldInvalid("valid_to", "must not be before valid_from")
    incidents = [*row["incidents"], *(i.model_dump(mode="json") for i in body.incidents)]
    return {
        "reasons": body.reasons,
        "incidents": incidents,
        "review_due": period.review_due,
        "review_approver": period.approver,
        "review_period_asked": period.asked,  # a renewal replaces what an earlier review asked
        "valid_to": body.valid_to,
        "letter_sent_on": None,
    }


async def lift(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: LiftIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Restriction:
    lifted_on = body.lifted_on or today
    lc.check_not_future("lifted_on", lifted_on, today)
    async with conn.transaction():
        staff_id, _ = await acting(conn, actor, body.staff_id, DECIDER_ROLES)
        row = await load(conn, restriction_id, lock=True)
        require_status(row, {"proposed", "active", "under_appeal"}, "lift it")
        valid_to = max(row["valid_from"], min(lifted_on, row["valid_to"] or lifted_on))
        # A customer told of the restriction is told it is lifted (a letter is due; see letter_facts).
        updated = await update_restriction(
            conn, restriction_id, status="lifted", valid_to=valid_to, letter_sent_on=None
        )
        ended = await end_open_appeal(
            conn,
            restriction_id,
            lifted_on,
            f"The restriction was lifted by staff {staff_id} before the appeal was decided.",
        )
        after = {
            **snapshot(updated),
            "lifted_by": staff_id,
            "lifted_on": lifted_on.isoformat(),  # in force no longer from then (valid_to may be clamped)
            **({"appeal_ended": ended} if ended else {}),
        }
        await event(conn, updated, actor, "lifted", why=body.reason, before=snapshot(row), after=after)
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


async def end_open_appeal(conn: asyncpg.Connection, restriction_id: int, on: date, why: str) -> int | None:
    """The appeal still open against a restriction that has just stopped being in force (lifted, or
    lapsed) has nothing left to decide: closed as 'ended' on that day (never before it was lodged),
    by no one, with why. Returns its id, or None when none was open."""
    found: int | None = await conn.fetchval(
        """UPDATE appeals SET outcome = 'ended', decided_on = greatest(lodged_on, $2::date), notes = $3
           WHERE restriction_id = $1 AND outcome IS NULL RETURNING id""",
        restriction_id,
        on,
        why,
    )
    return found


async def lapse_expired(conn: asyncpg.Connection, today: date) -> list[tuple[int, int]]:
    """Restrictions whose valid_to has passed become lapsed; idempotent. Returns (id, customer)."""
    async with conn.transaction():
        rows = await conn.fetch(
            f"""UPDATE restrictions SET status = 'lapsed', updated_at = now()
                WHERE status IN ('proposed', 'active', 'under_appeal') AND valid_to < $1
                RETURNING {COLS}""",
            today,
        )
        for row in rows:
            lapsed_on = min(row["valid_to"] + timedelta(days=1), today)
            why = f"valid to {row['valid_to'].isoformat()} has passed"
            ended = await end_open_appeal(
                conn, row["id"], lapsed_on, f"The restriction lapsed ({why}) before the appeal was decided."
            )
            after = {"status": "lapsed", **({"appeal_ended": ended} if ended else {})}
            await event(conn, row, LAPSE_ACTOR, "lapsed", why=why, after=after)
        for customer_id in sorted({r["customer_id"] for r in rows}):
            await notify_in_transaction(conn, customer_id)
    return [(r["id"], r["customer_id"]) for r in rows]
