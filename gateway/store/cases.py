"""Complaints and issues a customer has raised: open, closed, or exhausted (all review done)."""

from __future__ import annotations

import asyncpg

from ..errors import FieldInvalid, Missing, StateConflict
from ..models.cases import Case, CaseIn, CasePatch
from .changes import notify_in_transaction
from .people import ensure_customer

_COLS = "id, customer_id, reference, subject, status, closed_on, outcome_letter, owner_id"


def _check_closed_on(status: str, closed_on: object) -> None:
    if status != "open" and closed_on is None:
        raise FieldInvalid("closed_on", f"a {status} case needs the date it was closed")


async def create_case(conn: asyncpg.Connection, c: CaseIn) -> Case:
    await ensure_customer(conn, c.customer_id)
    _check_closed_on(c.status, c.closed_on)
    async with conn.transaction():
        if await conn.fetchval("SELECT id FROM cases WHERE reference = $1", c.reference):
            raise StateConflict(f"case reference {c.reference} already exists", [{"field": "reference"}])
        row = await conn.fetchrow(
            f"""INSERT INTO cases (customer_id, reference, subject, status, closed_on, outcome_letter, owner_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLS}""",
            c.customer_id,
            c.reference,
            c.subject,
            c.status,
            c.closed_on if c.status != "open" else None,
            c.outcome_letter,
            c.owner_id,
        )
        await notify_in_transaction(conn, c.customer_id)
    return Case.model_validate(dict(row))


async def get_case(conn: asyncpg.Connection | asyncpg.Pool, case_id: int) -> Case:
    row = await conn.fetchrow(f"SELECT {_COLS} FROM cases WHERE id = $1", case_id)
    if row is None:
        raise Missing(f"case {case_id} does not exist")
    return Case.model_validate(dict(row))


async def update_case(conn: asyncpg.Connection, case_id: int, patch: CasePatch) -> Case:
    async with conn.transaction():
        row = await conn.fetchrow(f"SELECT {_COLS} FROM cases WHERE id = $1 FOR UPDATE", case_id)
        if row is None:
            raise Missing(f"case {case_id} does not exist")
        merged = {**dict(row), **patch.model_dump(exclude_unset=True)}
        if merged["status"] == "open":
            merged["closed_on"] = None
        _check_closed_on(merged["status"], merged["closed_on"])
        updated = await conn.fetchrow(
            f"""UPDATE cases SET subject = $2, status = $3, closed_on = $4, outcome_letter = $5,
                       owner_id = $6, updated_at = now() WHERE id = $1 RETURNING {_COLS}""",
            case_id,
            merged["subject"],
            merged["status"],
            merged["closed_on"],
            merged["outcome_letter"],
            merged["owner_id"],
        )
        await notify_in_transaction(conn, row["customer_id"])
    return Case.model_validate(dict(updated))
