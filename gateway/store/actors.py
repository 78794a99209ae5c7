"""Who acts on a restriction: staff members as they are now (role, still active), the signed-in
person taking a step, the deciders, and everyone who has taken part (for an appeal)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..errors import FieldInvalid, NotAllowed

DECIDER_ROLES = frozenset(lc.FILLS)
# Events that record a part in the restriction; reading or exporting it is not taking part.
_TAKING_PART = [
    "created",
    "amended",
    "activated",
    "letter_sent",
    "reviewed",
    "appealed",
    "appeal_decided",
    "lifted",
    "equality_note_signed",
    "review_period_approved",
    "equality_note_declined",
    "review_period_declined",
]


async def staff_roles(conn: asyncpg.Connection, ids: Iterable[int]) -> dict[int, str]:
    """The current role of each of these staff members who is still active."""
    rows = await conn.fetch("SELECT id, role FROM staff WHERE id = ANY($1::bigint[]) AND active", list(ids))
    return {r["id"]: r["role"] for r in rows}


async def staff_role(conn: asyncpg.Connection, staff_id: int, field: str) -> str:
    role = (await staff_roles(conn, [staff_id])).get(staff_id)
    if role is None:
        raise FieldInvalid(field, f"staff member {staff_id} does not exist or is inactive")
    return role


async def acting(
    conn: asyncpg.Connection, actor: lc.Actor, named: int | None = None, roles: frozenset[str] | None = None
) -> tuple[int, str]:
    """The signed-in staff member taking a step and their role as it is now (their key may have been
    checked up to its cache time ago); a body naming someone else is refused, and so is a member
    who has left or whose role (when `roles` is given) no longer takes this step."""
    staff_id = lc.acting(actor, named)
    role = (await staff_roles(conn, [staff_id])).get(staff_id)
    if role is None:
        raise NotAllowed(f"staff member {staff_id} is no longer active", code="not_active")
    if roles is not None and role not in roles:
        raise NotAllowed(
            f"staff member {staff_id} is a {role.replace('_', ' ')}; this step is taken by "
            + " or ".join(sorted(r.replace("_", " ") + "s" for r in roles)),
            code="wrong_role",
        )
    return staff_id, role


async def check_deciders(conn: asyncpg.Connection, ids: list[int], field: str = "deciders") -> dict[int, str]:
    roles = await staff_roles(conn, ids)
    for i, staff_id in enumerate(ids):
        role = roles.get(staff_id)
        if role is None:
            raise FieldInvalid(f"{field}.{i}", f"staff member {staff_id} does not exist or is inactive")
        if role not in DECIDER_ROLES:
            raise FieldInvalid(
                f"{field}.{i}",
                f"staff member {staff_id} is a {role.replace('_', ' ')}; "
                "deciders are caution leads or service caution leads",
            )
    return roles


async def involved(conn: asyncpg.Connection, row: Any) -> set[int]:
    """Everyone who has taken part in this restriction: its deciders, the manager who signed its
    equality note, the approver of a longer review period, and every person recorded taking a step
    (declining a sign-off is one). Someone asked to sign who has neither signed nor declined has taken
    no part."""
    ids = set(row["deciders"])
    if row["equality_note"] is not None:
        ids.add(int(row["equality_note"]["staff_id"]))
    if row["review_approver"] is not None:
        ids.add(row["review_approver"])
    acted = await conn.fetch(
        "SELECT DISTINCT staff_id FROM restriction_events "
        "WHERE restriction_id = $1 AND staff_id IS NOT NULL AND kind = ANY($2::text[])",
        row["id"],
        _TAKING_PART,
    )
    return ids | {r["staff_id"] for r in acted}
