"""Appeals against a restriction: lodged by the customer's side, decided by someone senior who took
no part (policy 000 §6.3); an upheld appeal keeps it, a varied one changes it, a lifted one ends it."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import FieldInvalid, StateConflict
from ..models.restrictions import (
    AppealDecisionIn,
    AppealIn,
    Restriction,
)
from ..rules.registry import REGISTRY
from .actors import DECIDER_ROLES, acting, involved
from .changes import notify_in_transaction
from .restrictions import check_channels, check_kind, event, get, load, snapshot
from .transitions import closing, require_status, update_restriction


async def lodge_appeal(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: AppealIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Restriction:
    """The restriction stays enforced while under appeal; the decision is due in working days."""
    lc.check_not_future("lodged_on", body.lodged_on, today)
    async with conn.transaction():
        await acting(conn, actor, roles=DECIDER_ROLES)
        row = await load(conn, restriction_id, lock=True)
        require_status(
            row,
            {"active"},
            "lodge an appeal (only an active restriction without an open appeal can be appealed)",
        )
        due = lc.appeal_due(body.lodged_on, policy.calendar)
        appeal_id = await conn.fetchval(
            """INSERT INTO appeals (restriction_id, lodged_on, grounds, due_on)
               VALUES ($1, $2, $3, $4) RETURNING id""",
            restriction_id,
            body.lodged_on,
            body.grounds,
            due,
        )
        updated = await update_restriction(conn, restriction_id, status="under_appeal")
        await event(
            conn,
            updated,
            actor,
            "appealed",
            why=body.grounds,
            before={"status": row["status"]},
            after={
                "status": "under_appeal",
                "appeal_id": appeal_id,
                "lodged_on": body.lodged_on.isoformat(),
                "due_on": due.isoformat(),
            },
        )
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


async def _varied(conn: asyncpg.Connection, row: asyncpg.Record, body: AppealDecisionIn) -> dict[str, Any]:
    """The changes a 'varied' appeal outcome makes, each checked as on saving."""
    v = body.variation
    assert v is not None
    changes: dict[str, Any] = {}
    if v.channels is not None:
        changes["channels"] = sorted(set(v.channels))
    if v.params is not None:
        changes["params"] = REGISTRY[row["kind"]].parse(v.params).model_dump(mode="json")
    if v.valid_to is not None:
        if v.valid_to < row["valid_from"]:
            raise FieldInvalid("variation.valid_to", "must not be before valid_from")
        changes["valid_to"] = v.valid_to
    if v.review_due is not None:
        if v.review_due > row["review_due"] or v.review_due <= row["valid_from"]:
            raise FieldInvalid("variation.review_due", "a variation may bring the review forward only")
        changes["review_due"] = v.review_due
    if "params" in changes or "channels" in changes:
        params, channels = changes.get("params", row["params"]), changes.get("channels", row["channels"])
        await check_kind(conn, row["kind"], row["customer_id"], params, channels, "variation.")
    return changes


async def decide_appeal(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: AppealDecisionIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Restriction:
    """Upheld keeps it, varied changes it (re-checked), lifted ends it; by an uninvolved manager."""
    decided_on = body.decided_on or today
    lc.check_not_future("decided_on", decided_on, today)
    async with conn.transaction():
        staff_id, role = await acting(conn, actor, body.staff_id)
        row = await load(conn, restriction_id, lock=True)
        appeal = await _open_appeal(conn, row, decided_on)
        lc.check_appeal_decider(staff_id, role, await involved(conn, row))
        await conn.execute(
            "UPDATE appeals SET decided_by = $2, decided_on = $3, outcome = $4, notes = $5 WHERE id = $1",
            appeal["id"],
            staff_id,
            decided_on,
            body.outcome,
            body.notes,
        )
        # Whatever the outcome, the customer is told it in writing (policy 000 §6.3): a letter is due.
        changes: dict[str, Any] = {"status": "active", "letter_sent_on": None}
        if body.outcome == "varied":
            changes.update(await _varied(conn, row, body))
        elif body.outcome == "lifted":
            ends = min(decided_on, row["valid_to"] or decided_on)
            changes = {"status": "lifted", "valid_to": ends, "letter_sent_on": None}
        updated = await update_restriction(conn, restriction_id, **changes)
        if body.outcome == "varied":
            signed = row["equality_note"] is not None
            await check_channels(conn, row["customer_id"], closing(updated), signed)
        after = {**snapshot(updated), "appeal_id": appeal["id"], "outcome": body.outcome, "decided_by": staff_id}
        await event(conn, updated, actor, "appeal_decided", why=body.notes, before=snapshot(row), after=after)
        if body.outcome == "lifted":
            why = f"lifted on appeal by staff {staff_id}"
            await event(conn, updated, actor, "lifted", why=why, after={"lifted_on": decided_on.isoformat()})
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


async def _open_appeal(conn: asyncpg.Connection, row: asyncpg.Record, decided_on: date) -> asyncpg.Record:
    appeal = await conn.fetchrow(
        "SELECT id, lodged_on FROM appeals WHERE restriction_id = $1 AND outcome IS NULL ORDER BY id DESC LIMIT 1",
        row["id"],
    )
    if appeal is None or row["status"] != "under_appeal":
        raise StateConflict(f"restriction {row['id']} has no open appeal", code="no_open_appeal")
    if decided_on < appeal["lodged_on"]:
        raise FieldInvalid("decided_on", "is before the appeal was lodged")
    return appeal
