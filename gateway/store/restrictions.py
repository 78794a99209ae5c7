"""Restriction records: validated save, activation by deciders, the audit trail and full reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import FieldInvalid, Missing, StateConflict
from ..models.restrictions import Appeal, DecisionIn, Event, RestrictionIn
from ..models.restrictions import Restriction as Record
from ..rules.context import CaseView, StaffView
from ..rules.kind import Proposal, Records, References
from ..rules.params import KindParams
from ..rules.registry import REGISTRY
from .actors import DECIDER_ROLES, acting, check_deciders, staff_role, staff_roles
from .changes import notify_in_transaction

COLS = (
    "id, customer_id, kind, params, channels, reason_category, reasons, incidents, warned_on, "
    "immediate_risk, deciders, decided_on, valid_from, valid_to, review_due, review_approver, "
    "adjustments, equality_note, letter_sent_on, status, created_by, created_at, updated_at, "
    "equality_note_asked, review_period_asked"
)


async def event(
    conn: asyncpg.Connection,
    row: Any,
    actor: lc.Actor,
    kind: str,
    *,
    why: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Append one audit event; `row` is the restriction (anything with id and customer_id)."""
    await conn.execute(
        """INSERT INTO restriction_events
               (restriction_id, customer_id, actor, staff_id, kind, why, before, after)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        row["id"],
        row["customer_id"],
        actor.label,
        actor.staff_id,
        kind,
        why,
        before,
        after,
    )


async def load(conn: asyncpg.Connection, restriction_id: int, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {COLS} FROM restrictions WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        restriction_id,
    )
    if row is None:
        raise Missing(f"restriction {restriction_id} does not exist")
    return row


def snapshot(row: Any) -> dict[str, Any]:
    """Record as JSON for an event's before/after (timestamps left out: events have their own)."""
    return Record.model_validate(dict(row)).model_dump(
        mode="json", exclude={"created_at", "updated_at", "appeals", "missing_deciders"}
    )


async def load_records(conn: asyncpg.Connection, refs: References, *, active_only: bool = True) -> Records:
    """The staff and cases a kind's params name (staff who have left only when asked for)."""
    staff = await conn.fetch(
        "SELECT id, name, role, line, mailbox FROM staff WHERE id = ANY($1::bigint[]) AND (active OR NOT $2)",
        [i for _, i in refs.staff],
        active_only,
    )
    cases = await conn.fetch(
        "SELECT id, reference, customer_id, status, closed_on, subject FROM cases WHERE id = ANY($1::bigint[])",
        [i for _, i in refs.cases],
    )
    return Records(
        staff={r["id"]: StaffView(r["id"], r["name"], r["role"], line=r["line"], mailbox=r["mailbox"]) for r in staff},
        cases={r["id"]: CaseView(**dict(r)) for r in cases},
    )


async def check_kind(
    conn: asyncpg.Connection,
    kind: str,
    customer_id: int,
    params: KindParams | Mapping[str, Any],
    channels: Iterable[str],
    prefix: str = "",
) -> None:
    """The kind's own save-time checks: the channels it can act on, the records its params name."""
    unit = REGISTRY[kind]
    records = await load_records(conn, unit.references(params))
    problems = unit.validate(params, Proposal(customer_id, frozenset(channels), records))
    if problems:
        raise FieldInvalid(prefix + problems[0].field, problems[0].message)


async def _check_equality_note(conn: asyncpg.Connection, body: RestrictionIn) -> bool:
    if body.equality_note is None:
        return False
    role = await staff_role(conn, body.equality_note.staff_id, "equality_note.staff_id")
    if role not in lc.APPEAL_DECIDERS:
        raise FieldInvalid(
            "equality_note.staff_id",
            f"staff member {body.equality_note.staff_id} is a {role}; an equality note is signed by a manager",
        )
    return True


async def check_channels(
    conn: asyncpg.Connection, customer_id: int, candidate: lc.Closing, equality_signed: bool
) -> None:
    """Always a way in, and no recorded adjustment broken; locks the customer to serialise saves."""
    cust = await conn.fetchrow(
        """SELECT open_channels, adjustments->'flags' AS flags,
                  EXISTS (SELECT 1 FROM representatives r WHERE r.customer_id = c.id) AS has_reps
           FROM customers c WHERE id = $1 FOR UPDATE""",
        customer_id,
    )
    if cust is None:
        raise FieldInvalid("customer_id", f"customer {customer_id} does not exist")
    rows = await conn.fetch(
        "SELECT id, kind, channels FROM restrictions WHERE customer_id = $1 "
        "AND status = ANY($2::text[]) AND id IS DISTINCT FROM $3",
        customer_id,
        list(lc.ENFORCED),
        candidate.restriction_id,
    )
    others = [lc.Closing(r["id"], r["kind"], frozenset(r["channels"])) for r in rows]
    flags, always = list(cust["flags"] or []), list(cust["open_channels"])
    lc.check_way_in([*others, candidate], flags, cust["has_reps"])
    lc.check_adjustments(others, candidate, flags, always, equality_signed)


async def create(
    conn: asyncpg.Connection, body: RestrictionIn, policy: lc.Policy, actor: lc.Actor, today: date
) -> Record:
    """Saved by the signed-in caution lead, its first decider; it is active at once only when the
    rule asks for no one else and no equality note awaits its manager's signature."""
    deciders = lc.own_deciders(actor, body.deciders)
    channels = sorted(body.channels or REGISTRY[body.kind].default_channels)
    review_due = body.review_due or lc.add_months(body.valid_from, policy.review_months)
    for i, incident in enumerate(body.incidents):
        lc.check_not_future(f"incidents.{i}.on", incident.on, today)
    lc.check_not_future("warned_on", body.warned_on, today)
    async with conn.transaction():
        me, _ = await acting(conn, actor, roles=DECIDER_ROLES)
        await check_kind(conn, body.kind, body.customer_id, body.params, channels)
        approver = body.review_approver
        approver_role = await staff_role(conn, approver, "review_approver") if approver else None
        lc.check_review_due(body.valid_from, review_due, policy.review_months, approver_role)
        period = lc.review_period(body.valid_from, review_due, policy.review_months, approver, me, today)
        roles = await check_deciders(conn, deciders)
        # A manager's note, signed or asked, lets the proposal be saved; activation waits for the signature.
        noted = await _check_equality_note(conn, body)
        candidate = lc.Closing(None, body.kind, frozenset(channels))
        await check_channels(conn, body.customer_id, candidate, noted)
        note = body.equality_note.model_dump(mode="json") if body.equality_note else None
        signed, asked = lc.equality_note(note, me, today)
        row = await _insert(conn, body, deciders, channels, period, signed, asked, actor.label)
        await event(conn, row, actor, "created", after=snapshot(row))
        row = await activate_if_met(conn, row, roles, policy, actor, body.decided_on or today)
        await notify_in_transaction(conn, body.customer_id)
    return await get(conn, row["id"], policy)


async def _insert(
    conn: asyncpg.Connection,
    body: RestrictionIn,
    deciders: list[int],
    channels: list[str],
    period: lc.ReviewPeriod,
    note: dict[str, Any] | None,
    note_asked: dict[str, Any] | None,
    actor: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO restrictions (customer_id, kind, params, channels, reason_category,
                reasons, incidents, warned_on, immediate_risk, deciders, valid_from, valid_to,
                review_due, review_approver, adjustments, equality_note, created_by,
                equality_note_asked, review_period_asked)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
            RETURNING {COLS}""",
        body.customer_id,
        body.kind,
        body.params.model_dump(mode="json"),
        channels,
        body.reason_category,
        body.reasons,
        [i.model_dump(mode="json") for i in body.incidents],
        body.warned_on,
        body.immediate_risk,
        deciders,
        body.valid_from,
        body.valid_to,
        period.review_due,
        period.approver,
        body.adjustments,
        note,
        actor,
        note_asked,
        period.asked,
    )


async def activate_if_met(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    roles: dict[int, str],
    policy: lc.Policy,
    actor: lc.Actor,
    decided_on: date,
) -> asyncpg.Record:
    """Proposed → active once the deciders satisfy the rule and no equality note awaits its
    manager's signature (re-checking the way in then). One whose equality note its manager declined
    is never activated: the decline binds, whatever else has changed since."""
    if row["status"] != "proposed" or lc.missing_deciders(policy.rule, roles) or row["equality_note_asked"]:
        return row
    if row["equality_note"] is None and await _note_declined(conn, row["id"]):
        raise StateConflict(
            f"restriction {row['id']}'s equality note was declined by the manager asked, so it is not "
            "enforced: lift it, and record it afresh if it is still needed",
            {"field": "equality_note"},
            code="note_declined",
        )
    await check_channels(
        conn,
        row["customer_id"],
        lc.Closing(row["id"], row["kind"], frozenset(row["channels"])),
        row["equality_note"] is not None,
    )
    active = await conn.fetchrow(
        f"""UPDATE restrictions SET status = 'active', decided_on = $2, updated_at = now()
            WHERE id = $1 RETURNING {COLS}""",
        row["id"],
        decided_on,
    )
    await event(
        conn,
        active,
        actor,
        "activated",
        why="decision rule met",
        before={"status": row["status"]},
        after={
            "status": "active",
            "decided_on": decided_on.isoformat(),
            "deciders": list(active["deciders"]),
        },
    )
    return active


async def _note_declined(conn: asyncpg.Connection, restriction_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM restriction_events WHERE restriction_id = $1 AND kind = $2)",
            restriction_id,
            "equality_note_declined",
        )
    )


async def add_decision(
    conn: asyncpg.Connection,
    restriction_id: int,
    body: DecisionIn,
    policy: lc.Policy,
    actor: lc.Actor,
    today: date,
) -> Record:
    """The signed-in caution lead adds themselves to the deciders; the last one needed activates it."""
    decided_on = body.decided_on or today
    lc.check_not_future("decided_on", decided_on, today)
    async with conn.transaction():
        staff_id, _ = await acting(conn, actor, body.staff_id, DECIDER_ROLES)
        row = await load(conn, restriction_id, lock=True)
        if row["status"] != "proposed":
            raise StateConflict(
                f"restriction {restriction_id} is {row['status']}; only a proposed restriction takes decisions",
                code="wrong_status",
            )
        if staff_id in row["deciders"]:
            raise StateConflict(
                f"staff member {staff_id} is already a decider on this restriction",
                {"field": "staff_id"},
                code="duplicate_decider",
            )
        deciders = [*row["deciders"], staff_id]
        roles = await check_deciders(conn, deciders)
        updated = await conn.fetchrow(
            f"UPDATE restrictions SET deciders = $2, updated_at = now() WHERE id = $1 RETURNING {COLS}",
            restriction_id,
            deciders,
        )
        await event(
            conn,
            updated,
            actor,
            "amended",
            why=f"decision by staff {staff_id}",
            before={"deciders": list(row["deciders"])},
            after={"deciders": deciders},
        )
        await activate_if_met(conn, updated, roles, policy, actor, decided_on)
        await notify_in_transaction(conn, row["customer_id"])
    return await get(conn, restriction_id, policy)


async def get(conn: asyncpg.Connection, restriction_id: int, policy: lc.Policy) -> Record:
    row = await load(conn, restriction_id)
    appeals = await conn.fetch(
        """SELECT id, lodged_on, grounds, due_on, decided_by, decided_on, outcome, notes
           FROM appeals WHERE restriction_id = $1 ORDER BY id""",
        restriction_id,
    )
    record = Record.model_validate({**dict(row), "appeals": [Appeal.model_validate(dict(a)) for a in appeals]})
    if record.status == "proposed":
        record.missing_deciders = lc.missing_deciders(policy.rule, await staff_roles(conn, record.deciders))
    return record


async def view(conn: asyncpg.Connection, restriction_id: int, policy: lc.Policy, actor: lc.Actor, why: str) -> Record:
    """A read of the full record, audited with who and why."""
    async with conn.transaction():
        record = await get(conn, restriction_id, policy)
        await event(conn, {"id": record.id, "customer_id": record.customer_id}, actor, "viewed", why=why)
    return record


async def events(conn: asyncpg.Connection, restriction_id: int) -> list[Event]:
    await load(conn, restriction_id)
    rows = await conn.fetch("SELECT * FROM restriction_events WHERE restriction_id = $1 ORDER BY id", restriction_id)
    return [Event.model_validate(dict(r)) for r in rows]
