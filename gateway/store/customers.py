"""Changing a customer's record (PATCH and the housing-system import), its audit trail, and
always-a-way-in re-proved after every change: restrictions that leave no way in are flagged."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal

import asyncpg

from .. import lifecycle as lc
from ..errors import FieldInvalid, Missing
from ..models.people import Customer, CustomerPatch, PostalAddress, RepresentativeChanges
from .changes import notify_in_transaction
from .people import address_columns, get_customer, insert_identifiers, reject_unknown_ids


async def record_event(
    conn: asyncpg.Connection,
    customer_id: int,
    actor: lc.Actor,
    kind: str,
    *,
    why: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    await conn.execute(
        """INSERT INTO customer_events (customer_id, actor, staff_id, kind, why, before, after)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        customer_id,
        actor.label,
        actor.staff_id,
        kind,
        why,
        before,
        after,
    )


async def snapshot(conn: asyncpg.Connection, customer_id: int) -> dict[str, Any]:
    """The record as an event's before/after (urgent reviews are the gateway's, not the record's)."""
    customer = await get_customer(conn, customer_id)
    return customer.model_dump(mode="json", exclude={"id", "urgent_reviews"})


def _judged(rows: Sequence[asyncpg.Record], flags: list[str] | None, has_reps: bool) -> lc.NoWayIn | None:
    """What always-a-way-in says of a customer, from their enforced restrictions' rows."""
    closings = [lc.Closing(r["id"], r["kind"], frozenset(r["channels"])) for r in rows]
    noted = [r["id"] for r in rows if r["noted"]]
    return lc.no_way_in(closings, list(flags or []), has_reps, noted)


def _as_recorded(rows: Sequence[asyncpg.Record], found: lc.NoWayIn | None) -> bool:
    """Whether the restrictions' urgent-review marks already say what `found` says (nothing to write)."""
    flagged = {r["id"] for r in rows if r["urgent_review_since"] is not None}
    if found is None:
        return not flagged
    return flagged == set(found.restriction_ids) and all(
        r["urgent_review_why"] == found.why and sorted(r["urgent_review_channels"]) == sorted(found.channels)
        for r in rows
        if r["id"] in flagged
    )


_RESTRICTION_MARKS = """id, kind, channels, equality_note IS NOT NULL AS noted,
                       urgent_review_since, urgent_review_why, urgent_review_channels"""


async def recheck_way_in(conn: asyncpg.Connection, customer_id: int, actor: lc.Actor) -> lc.NoWayIn | None:
    """Flag (or clear) urgent review on this customer's enforced restrictions; in the caller's
    transaction, which must hold the customer's row lock."""
    cust = await conn.fetchrow(
        """SELECT adjustments->'flags' AS flags,
                  EXISTS (SELECT 1 FROM representatives r WHERE r.customer_id = c.id) AS has_reps
           FROM customers c WHERE id = $1""",
        customer_id,
    )
    rows = await conn.fetch(
        f"SELECT {_RESTRICTION_MARKS} FROM restrictions WHERE customer_id = $1 AND status = ANY($2::text[])",
        customer_id,
        list(lc.ENFORCED),
    )
    found = _judged(rows, cust["flags"], cust["has_reps"])
    flagged_before = {r["id"] for r in rows if r["urgent_review_since"] is not None}
    whys_before = {r["urgent_review_why"] for r in rows if r["urgent_review_since"] is not None}
    flag_ids = list(found.restriction_ids) if found else []
    await conn.execute(
        """UPDATE restrictions SET urgent_review_since = NULL, urgent_review_why = NULL,
               urgent_review_channels = '{}' WHERE id = ANY($1::bigint[])""",
        sorted(flagged_before - set(flag_ids)),
    )
    if found is not None:
        await conn.execute(
            """UPDATE restrictions SET urgent_review_since = coalesce(urgent_review_since, now()),
                   urgent_review_why = $2, urgent_review_channels = $3 WHERE id = ANY($1::bigint[])""",
            flag_ids,
            found.why,
            sorted(found.channels),
        )
    if set(flag_ids) != flagged_before or (found is not None and whys_before != {found.why}):
        kind = "no_way_in" if found is not None else "way_in_restored"
        after = {"restriction_ids": flag_ids, "channels": sorted(found.channels)} if found else None
        await record_event(conn, customer_id, actor, kind, why=found.why if found else None, after=after)
        await notify_in_transaction(conn, customer_id)
    return found


async def _identifiers(conn: asyncpg.Connection, customer_id: int, patch: CustomerPatch) -> None:
    if patch.identifiers is None:
        return
    for n, ident in enumerate(patch.identifiers.remove):
        gone = await conn.execute(
            "DELETE FROM identifiers WHERE customer_id = $1 AND kind = $2 AND value = $3",
            customer_id,
            ident.kind,
            ident.value,
        )
        if gone == "DELETE 0":
            raise FieldInvalid(f"identifiers.remove.{n}", f"{ident.kind} {ident.value} is not linked to this customer")
    linked = {(r["kind"], r["value"]) for r in await conn.fetch(_LINKED, customer_id)}
    new = [i for i in patch.identifiers.add if (i.kind, i.value) not in linked]
    await insert_identifiers(conn, new, customer_id=customer_id, field="identifiers.add")


_LINKED = "SELECT kind, value FROM identifiers WHERE customer_id = $1"


async def _representatives(conn: asyncpg.Connection, customer_id: int, changes: RepresentativeChanges) -> None:
    ours = {r["id"] for r in await conn.fetch("SELECT id FROM representatives WHERE customer_id = $1", customer_id)}
    reject_unknown_ids("representatives.remove", set(changes.remove), ours)
    reject_unknown_ids("representatives.change", {c.id for c in changes.change}, ours)
    await conn.execute("DELETE FROM representatives WHERE id = ANY($1::bigint[])", changes.remove)
    for n, ch in enumerate(changes.change):
        await conn.execute(
            """UPDATE representatives SET name = coalesce($2, name), relationship = coalesce($3, relationship)
               WHERE id = $1""",
            ch.id,
            ch.name,
            ch.relationship,
        )
        if ch.identifiers is not None:
            await conn.execute("DELETE FROM identifiers WHERE representative_id = $1", ch.id)
            field = f"representatives.change.{n}.identifiers"
            await insert_identifiers(conn, ch.identifiers, representative_id=ch.id, field=field)
    for n, rep in enumerate(changes.add):
        rep_id = await conn.fetchval(
            "INSERT INTO representatives (customer_id, name, relationship) VALUES ($1, $2, $3) RETURNING id",
            customer_id,
            rep.name,
            rep.relationship,
        )
        field = f"representatives.add.{n}.identifiers"
        await insert_identifiers(conn, rep.identifiers, representative_id=rep_id, field=field)


async def set_address(conn: asyncpg.Connection, customer_id: int, address: PostalAddress | None) -> None:
    await conn.execute(
        "UPDATE customers SET address_lines = $2, postcode = $3, updated_at = now() WHERE id = $1",
        customer_id,
        *address_columns(address),
    )


async def _lock(conn: asyncpg.Connection, customer_id: int) -> None:
    if await conn.fetchval("SELECT id FROM customers WHERE id = $1 FOR UPDATE", customer_id) is None:
        raise Missing(f"customer {customer_id} does not exist")


async def patch_customer(conn: asyncpg.Connection, customer_id: int, patch: CustomerPatch, actor: lc.Actor) -> Customer:
    """Apply the parts of `patch` given, audit before/after, and re-prove the way in."""
    async with conn.transaction():
        await _lock(conn, customer_id)
        before = await snapshot(conn, customer_id)
        await conn.execute(
            """UPDATE customers SET name = coalesce($2, name), adjustments = coalesce($3, adjustments),
                   open_channels = coalesce($4, open_channels), updated_at = now() WHERE id = $1""",
            customer_id,
            patch.name,
            patch.adjustments.model_dump() if patch.adjustments is not None else None,
            list(patch.open_channels) if patch.open_channels is not None else None,
        )
        if patch.postal_address is not None:
            await set_address(conn, customer_id, patch.postal_address or None)
        await _identifiers(conn, customer_id, patch)
        if patch.representatives is not None:
            await _representatives(conn, customer_id, patch.representatives)
        after = await snapshot(conn, customer_id)
        if after != before:
            await record_event(conn, customer_id, actor, "updated", before=before, after=after)
        await recheck_way_in(conn, customer_id, actor)
        await notify_in_transaction(conn, customer_id)
    return await get_customer(conn, customer_id)


async def _relink(
    conn: asyncpg.Connection, customer_id: int, idents: list[tuple[str, str]], kinds: frozenset[str]
) -> tuple[list[str], list[str]]:
    """Make the customer's identifiers of `kinds` exactly `idents`: (added, removed) as kind:value."""
    linked = {(r["kind"], r["value"]) for r in await conn.fetch(_LINKED, customer_id)}
    wanted = set(idents)
    gone = sorted(i for i in linked if i[0] in kinds and i not in wanted)
    new = [i for i in dict.fromkeys(idents) if i not in linked]
    for kind, value in gone:
        await conn.execute(
            "DELETE FROM identifiers WHERE customer_id = $1 AND kind = $2 AND value = $3", customer_id, kind, value
        )
    for kind, value in new:
        await conn.execute(
            "INSERT INTO identifiers (kind, value, customer_id) VALUES ($1, $2, $3)", kind, value, customer_id
        )
    return [f"{k}:{v}" for k, v in new], [f"{k}:{v}" for k, v in gone]


async def import_row(
    conn: asyncpg.Connection,
    external_ref: str,
    name: str,
    idents: list[tuple[str, str]],
    kinds: frozenset[str],
    adjustments: dict[str, Any],
    actor: lc.Actor,
    address: PostalAddress | Literal[""] | None = None,
) -> dict[str, Any]:
    """One row of the housing system's export as the customer's current truth: the identifiers of
    the kinds it has columns for, the adjustment parts in `adjustments`, and the address when given
    ("" clears it), replace the held ones. Returns what changed; the caller holds the transaction."""
    customer_id = await conn.fetchval("SELECT id FROM customers WHERE external_ref = $1 FOR UPDATE", external_ref)
    created = customer_id is None
    if created:
        customer_id = await conn.fetchval(
            "INSERT INTO customers (external_ref, name) VALUES ($1, $2) RETURNING id", external_ref, name
        )
        before: dict[str, Any] | None = None
    else:
        before = await snapshot(conn, customer_id)
    await conn.execute(
        """UPDATE customers SET name = $2, adjustments = adjustments || $3::jsonb, updated_at = now()
           WHERE id = $1""",
        customer_id,
        name,
        adjustments,
    )
    if address is not None:
        await set_address(conn, customer_id, address or None)
    added, removed = await _relink(conn, customer_id, idents, kinds)
    after = await snapshot(conn, customer_id)
    change: dict[str, Any] = {"customer_id": customer_id, "external_ref": external_ref, "created": created}
    if before is None or before != after:
        await record_event(conn, customer_id, actor, "imported", before=before, after=after)
        change.update(_differences(before, after, added, removed))
    found = await recheck_way_in(conn, customer_id, actor)
    change["urgent_review"] = found.why if found else None
    await notify_in_transaction(conn, customer_id)
    return change


def _differences(
    before: dict[str, Any] | None, after: dict[str, Any], added: list[str], removed: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"identifiers_added": added, "identifiers_removed": removed}
    for part in ("name", "adjustments", "postal_address"):
        if before is None or before[part] != after[part]:
            out[part] = {"before": None if before is None else before[part], "after": after[part]}
    return out


AUDIT_ACTOR = lc.Actor("system:way-in-audit")


# Every enforced restriction of these customers, with what the audit needs to judge them unlocked.
_AUDIT_READ = """
SELECT r.customer_id, r.id, r.kind, r.channels, r.equality_note IS NOT NULL AS noted, r.urgent_review_since,
       r.urgent_review_why, r.urgent_review_channels, c.adjustments->'flags' AS flags,
       EXISTS (SELECT 1 FROM representatives p WHERE p.customer_id = c.id) AS has_reps
FROM restrictions r JOIN customers c ON c.id = r.customer_id
WHERE r.status = ANY($1::text[]) AND r.customer_id = ANY($2::bigint[])
ORDER BY r.customer_id, r.id"""
AUDIT_CHUNK = 1000  # customers read in one statement


async def audit_ways_in(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    """Always a way in, re-proved over every customer with an enforced restriction, so drift from
    any source is caught: (customer id, why) for each customer left without one.

    The customers are judged from a few set-wise reads, without locks; only a customer whose marks
    disagree with the judgement (drift) is re-checked in a transaction holding their row, as every
    change does. With 10,000 restricted customers (the million-customer bench data) it was ~60,000
    round trips and ~10 s, competing with the decide path for the CPU; now it is 11 reads, ~0.14 s."""
    ids = [
        r["customer_id"]
        for r in await pool.fetch(
            "SELECT DISTINCT customer_id FROM restrictions WHERE status = ANY($1::text[]) ORDER BY customer_id",
            list(lc.ENFORCED),
        )
    ]
    found: list[tuple[int, str]] = []
    drifted: list[int] = []
    for at in range(0, len(ids), AUDIT_CHUNK):
        rows = await pool.fetch(_AUDIT_READ, list(lc.ENFORCED), ids[at : at + AUDIT_CHUNK])
        for customer_id, group in groupby(rows, key=itemgetter("customer_id")):
            restrictions = list(group)
            judged = _judged(restrictions, restrictions[0]["flags"], restrictions[0]["has_reps"])
            if not _as_recorded(restrictions, judged):
                drifted.append(customer_id)
            elif judged is not None:
                found.append((customer_id, judged.why))
    if drifted:
        async with pool.acquire() as conn:
            for customer_id in drifted:
                async with conn.transaction():
                    await conn.execute("SELECT id FROM customers WHERE id = $1 FOR UPDATE", customer_id)
                    failing = await recheck_way_in(conn, customer_id, AUDIT_ACTOR)
                if failing is not None:
                    found.append((customer_id, failing.why))
    return sorted(found)
