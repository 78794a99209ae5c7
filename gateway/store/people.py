"""Staff, customers, their identifiers, representatives and reasonable adjustments."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..errors import FieldInvalid, Missing, StateConflict
from ..letters import Recipient
from ..models.people import Customer, CustomerIn, IdentifierIn, PostalAddress, Staff, StaffIn
from .changes import notify_in_transaction
from .incidents import referrals_of

_STAFF_COLS = "id, name, role, line, voicemail, mailbox, queue, working_hours, active"


async def create_staff(conn: asyncpg.Connection, s: StaffIn) -> Staff:
    row = await conn.fetchrow(
        f"""INSERT INTO staff (name, role, line, voicemail, mailbox, queue, working_hours)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_STAFF_COLS}""",
        s.name,
        s.role,
        s.line,
        s.voicemail,
        s.mailbox,
        s.queue,
        [w.model_dump() for w in s.working_hours],
    )
    await notify_in_transaction(conn, "staff")
    return Staff.model_validate(dict(row))


async def get_staff(conn: asyncpg.Connection | asyncpg.Pool, staff_id: int) -> Staff:
    row = await conn.fetchrow(f"SELECT {_STAFF_COLS} FROM staff WHERE id = $1", staff_id)
    if row is None:
        raise Missing(f"staff member {staff_id} does not exist")
    return Staff.model_validate(dict(row))


async def insert_identifiers(
    conn: asyncpg.Connection,
    idents: list[IdentifierIn],
    *,
    customer_id: int | None = None,
    representative_id: int | None = None,
    field: str = "identifiers",
) -> None:
    seen: set[tuple[str, str]] = set()
    for i, ident in enumerate(idents):
        if (ident.kind, ident.value) in seen:
            raise StateConflict(
                f"{field}.{i}: {ident.kind} {ident.value} is listed twice",
                [{"field": f"{field}.{i}.value", "message": "duplicate"}],
            )
        seen.add((ident.kind, ident.value))
        if ident.kind == "web":
            owner = await conn.fetchval(
                "SELECT coalesce(customer_id, representative_id) FROM identifiers WHERE kind = 'web' AND value = $1",
                ident.value,
            )
            if owner is not None:
                raise StateConflict(
                    f"{field}.{i}: web account {ident.value} already belongs to someone else",
                    [{"field": f"{field}.{i}.value", "message": "already in use"}],
                )
        await conn.execute(
            "INSERT INTO identifiers (kind, value, customer_id, representative_id) VALUES ($1, $2, $3, $4)",
            ident.kind,
            ident.value,
            customer_id,
            representative_id,
        )


async def create_customer(conn: asyncpg.Connection, c: CustomerIn) -> Customer:
    async with conn.transaction():
        if c.external_ref is not None:
            existing = await conn.fetchval("SELECT id FROM customers WHERE external_ref = $1", c.external_ref)
            if existing is not None:
                raise StateConflict(
                    f"external_ref {c.external_ref} is already customer {existing}",
                    [{"field": "external_ref", "message": "already exists", "id": existing}],
                )
        customer_id = await conn.fetchval(
            """INSERT INTO customers (external_ref, name, open_channels, adjustments, address_lines, postcode)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
            c.external_ref,
            c.name,
            list(c.open_channels),
            c.adjustments.model_dump(),
            *address_columns(c.postal_address),
        )
        await insert_identifiers(conn, c.identifiers, customer_id=customer_id)
        for n, rep in enumerate(c.representatives):
            rep_id = await conn.fetchval(
                "INSERT INTO representatives (customer_id, name, relationship) VALUES ($1, $2, $3) RETURNING id",
                customer_id,
                rep.name,
                rep.relationship,
            )
            await insert_identifiers(
                conn, rep.identifiers, representative_id=rep_id, field=f"representatives.{n}.identifiers"
            )
        await notify_in_transaction(conn, customer_id)
    return await get_customer(conn, customer_id)


def address_columns(address: PostalAddress | None) -> tuple[list[str], str | None]:
    """(address_lines, postcode) as stored; no address is no lines and no postcode."""
    return (list(address.lines), address.postcode) if address is not None else ([], None)


def stored_address(lines: list[str], code: str | None) -> PostalAddress | None:
    # As stored, unchecked: an address carried over from free text may lack its postcode.
    return PostalAddress.model_construct(lines=list(lines), postcode=code or "") if lines else None


async def get_customer(conn: asyncpg.Connection | asyncpg.Pool, customer_id: int) -> Customer:
    row = await conn.fetchrow(
        """SELECT id, external_ref, name, address_lines, postcode, open_channels, adjustments
           FROM customers WHERE id = $1""",
        customer_id,
    )
    if row is None:
        raise Missing(f"customer {customer_id} does not exist")
    idents = await conn.fetch(
        """SELECT kind, value, customer_id, representative_id FROM identifiers
           WHERE customer_id = $1 OR representative_id IN
                 (SELECT id FROM representatives WHERE customer_id = $1) ORDER BY id""",
        customer_id,
    )
    reps = await conn.fetch(
        "SELECT id, name, relationship FROM representatives WHERE customer_id = $1 ORDER BY id", customer_id
    )
    data: dict[str, Any] = dict(row)
    data["postal_address"] = stored_address(data.pop("address_lines"), data.pop("postcode"))
    data["identifiers"] = [{"kind": i["kind"], "value": i["value"]} for i in idents if i["customer_id"]]
    data["representatives"] = [
        {
            **dict(r),
            "identifiers": [
                {"kind": i["kind"], "value": i["value"]} for i in idents if i["representative_id"] == r["id"]
            ],
        }
        for r in reps
    ]
    data["urgent_reviews"] = [dict(r) for r in await conn.fetch(_URGENT, customer_id)]
    data["incident_referrals"] = await referrals_of(conn, customer_id)
    return Customer.model_validate(data)


_URGENT = """SELECT id AS restriction_id, urgent_review_since AS since, urgent_review_why AS why,
                     urgent_review_channels AS channels
              FROM restrictions WHERE customer_id = $1 AND urgent_review_since IS NOT NULL
                AND status IN ('active', 'under_appeal') ORDER BY id"""


async def ensure_customer(
    conn: asyncpg.Connection | asyncpg.Pool, customer_id: int, field: str = "customer_id"
) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)", customer_id):
        raise Missing(f"customer {customer_id} does not exist", [{"field": field}])


def reject_unknown_ids(field: str, wanted: set[int], found: set[int]) -> None:
    missing = sorted(wanted - found)
    if missing:
        raise FieldInvalid(field, f"unknown id(s) {', '.join(map(str, missing))}")


async def any_customer(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customers)"))


async def email_recipient(
    conn: asyncpg.Connection, customer_id: int, representative_id: int | None = None
) -> Recipient:
    """Where an emailed letter goes: the customer's email address on record (the first one given),
    or the named representative's. Neither on record is a conflict that says to post it."""
    if representative_id is not None:
        rep = await conn.fetchrow(
            "SELECT name FROM representatives WHERE id = $1 AND customer_id = $2", representative_id, customer_id
        )
        if rep is None:
            raise FieldInvalid("representative_id", f"not a representative of customer {customer_id}")
        email = await _first_email(conn, "representative_id", representative_id)
        if email is None:
            raise StateConflict(
                f"representative {representative_id} ({rep['name']}) has no email address on record: "
                "post the letter instead (by: post)",
                code="no_email_address",
            )
        return Recipient(rep["name"], email, representative_id)
    name = await conn.fetchval("SELECT name FROM customers WHERE id = $1", customer_id)
    email = await _first_email(conn, "customer_id", customer_id)
    if email is not None:
        return Recipient(name, email)
    reps = await conn.fetch(
        """SELECT r.id, r.name FROM representatives r WHERE r.customer_id = $1 AND EXISTS
               (SELECT 1 FROM identifiers i WHERE i.representative_id = r.id AND i.kind = 'email') ORDER BY r.id""",
        customer_id,
    )
    named = "; ".join(f"representative_id {r['id']} ({r['name']})" for r in reps)
    raise StateConflict(
        f"customer {customer_id} has no email address on record: post the letter instead (by: post)"
        + (f", or send it to a representative who has one: {named}" if named else ""),
        {"representatives_with_email": [r["id"] for r in reps]},
        code="no_email_address",
    )


async def _first_email(conn: asyncpg.Connection, owner: str, owner_id: int) -> str | None:
    # `owner` is one of two column names fixed above, never a request's text.
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT value FROM identifiers WHERE {owner} = $1 AND kind = 'email' ORDER BY id LIMIT 1", owner_id
    )
