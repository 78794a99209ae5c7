"""The lifecycle after saving: letter sent, appeal, appeal decision, review, lift, lapse."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import FieldInvalid, StateConflict
from ..models.restrictions import (
    AppealDecisionIn,
    AppealIn,
    LetterSentIn,
    LiftIn,
    Restriction,
    ReviewIn,
)
from ..rules.registry import REGISTRY
from .actors import DECIDER_ROLES, acting, involved, staff_role
from .changes import notify_in_transaction
from .restrictions import COLS, check_channels, check_kind, event, get, load, snapshot

LAPSE_ACTOR = lc.Actor("system:lapse")


def _require(row: asyncpg.Record, allowed: frozenset[str] | set[str], doing: str) -> None:
    if row["status"] not in allowed:
        raise StateConflict(
            f"restriction {row['id']} is {row['status']}; cannot {doing}",
            {"status": row["status"], "allowed": sorted(allowed)},
            code="wrong_status",
        )


async def _update(conn: asyncpg.Connection, restriction_id: int, **fields: Any) -> asyncpg.Record:
    # Column names come from this module's keyword arguments, never from a request.
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    return await conn.fetchrow(
        f"UPDATE restrictions SET {sets}, updated_at = now() WHERE id = $1 RETURNING {COLS}",
        restriction_id,
        *fields.values(),
    )


async def record_letter(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: LetterSentIn,
    letter: tuple[str, str],
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Restriction:
    """Marks the letter sent and keeps a copy of exactly what was sent (text, html)."""
    sent_on = body.sent_on or today
    lc.check_not_future("sent_on", sent_on, today)
    async with conn.transaction():
        await acting(conn, actor, roles=DECIDER_ROLES)
        row = await load(conn, restriction_id, lock=True)
        _require(row, lc.ENFORCED, "send a letter before the restriction is active")
        await conn.execute(
            """INSERT INTO restriction_letters (restriction_id, sent_on, method, note, body_text,
                   body_html, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            restriction_id,
            sent_on,
            body.method,
            body.note,
            letter[0],
            letter[1],
            actor.label,
        )
        updated = await _update(conn, restriction_id, letter_sent_on=sent_on)
        await event(
            conn,
            updated,
            actor,
            "letter_sent",
            why=body.note,
            before={"letter_sent_on": _iso(row["letter_sent_on"])},
            after={"letter_sent_on": sent_on.isoformat(), "method": body.method},
        )
    return await get(conn, restriction_id, policy)


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
        _require(
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
        updated = await _update(conn, restriction_id, status="under_appeal")
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
        changes: dict[str, Any] = {"status": "active"}
        if body.outcome == "varied":
            changes.update(await _varied(conn, row, body))
        elif body.outcome == "lifted":
            ends = min(decided_on, row["valid_to"] or decided_on)
            changes = {"status": "lifted", "valid_to": ends}
        updated = await _update(conn, restriction_id, **changes)
        if body.outcome == "varied":
            signed = row["equality_note"] is not None
            await check_channels(conn, row["customer_id"], _closing(updated), signed)
        after = {**snapshot(updated), "appeal_id": appeal["id"], "outcome": body.outcome, "decided_by": staff_id}
        await event(conn, updated, actor, "appeal_decided", why=body.notes, before=snapshot(row), after=after)
        if body.outcome == "lifted":
            why = f"lifted on appeal by staff {staff_id}"
            await event(conn, updated, actor, "lifted", why=why)
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


def _closing(row: asyncpg.Record) -> lc.Closing:
    return lc.Closing(row["id"], row["kind"], frozenset(row["channels"]))


def _iso(day: date | None) -> str | None:
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
        _require(row, {"active"}, "review it (decide any open appeal first)")
        if body.outcome == "lift":
            changes: dict[str, Any] = {
                "status": "lifted",
                "valid_to": min(reviewed_on, row["valid_to"] or reviewed_on),
            }
        else:
            changes = await _renewal(conn, row, body, policy, reviewed_on)
        updated = await _update(conn, restriction_id, **changes)
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
            await event(conn, updated, actor, "lifted", why=f"lifted at review by staff {staff_id}")
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


async def _renewal(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    body: ReviewIn,
    policy: lc.Policy,
    reviewed_on: date,
) -> dict[str, Any]:
    review_due = body.review_due or lc.add_months(reviewed_on, policy.review_months)
    approver = body.review_approver
    lc.check_review_due(
        reviewed_on,
        review_due,
        policy.review_months,
        await staff_role(conn, approver, "review_approver") if approver else None,
    )
    if body.valid_to is not None and body.valid_to < row["valid_from"]:
        raise FieldInvalid("valid_to", "must not be before valid_from")
    incidents = [*row["incidents"], *(i.model_dump(mode="json") for i in body.incidents)]
    return {
        "reasons": body.reasons,
        "incidents": incidents,
        "review_due": review_due,
        "review_approver": approver,
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
        _require(row, {"proposed", "active", "under_appeal"}, "lift it")
        valid_to = max(row["valid_from"], min(lifted_on, row["valid_to"] or lifted_on))
        updated = await _update(conn, restriction_id, status="lifted", valid_to=valid_to)
        await event(
            conn,
            updated,
            actor,
            "lifted",
            why=body.reason,
            before=snapshot(row),
            after={**snapshot(updated), "lifted_by": staff_id},
        )
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


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
            await event(
                conn,
                row,
                LAPSE_ACTOR,
                "lapsed",
                why=f"valid to {row['valid_to'].isoformat()} has passed",
                after={"status": "lapsed"},
            )
        for customer_id in sorted({r["customer_id"] for r in rows}):
            await notify_in_transaction(conn, customer_id)
    return [(r["id"], r["customer_id"]) for r in rows]
