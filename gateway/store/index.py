"""What the restriction index loads: enforced restrictions with their customers' bundles and
identifier links, the active staff, and the provider's closure days."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from ..rules.context import (
    Bundle,
    CaseView,
    CustomerView,
    RepresentativeView,
    RestrictionView,
    StaffView,
    UrgentReviewView,
)
from ..rules.params import Window
from ..rules.registry import Params

_PARAMS: TypeAdapter[Any] = TypeAdapter(Params)
_WINDOWS: TypeAdapter[list[Window]] = TypeAdapter(list[Window])
ENFORCED = ("active", "under_appeal")


def handle_key(kind: str, value: str) -> str:
    """The index's key for one normalised identifier."""
    return f"{kind}:{value}"


@dataclass(frozen=True, slots=True)
class Link:
    customer_id: int
    representative_id: int | None = None


@dataclass
class Loaded:
    """What one load returns, for all customers or a few."""

    bundles: dict[int, Bundle] = field(default_factory=dict)
    handles: dict[int, set[str]] = field(default_factory=dict)
    links: dict[str, list[Link]] = field(default_factory=dict)
    external_refs: dict[str, int] = field(default_factory=dict)
    flags: dict[int, frozenset[str]] = field(default_factory=dict)  # recorded adjustment flags
    # Every identifier of the customers loaded that is also another customer's own (a household
    # phone), with all the customers it is theirs: (id, name), by the index's key.
    shared: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)


_RESTRICTIONS = """
    SELECT r.id, r.customer_id, r.kind, r.params, r.channels, r.status, r.review_due,
           r.urgent_review_since, r.urgent_review_why, r.urgent_review_channels
    FROM restrictions r
    WHERE r.status = ANY($1::text[]) AND r.valid_from <= $2 AND (r.valid_to IS NULL OR r.valid_to >= $2)
      AND ($3::bigint[] IS NULL OR r.customer_id = ANY($3::bigint[]))"""
# Customers with recorded adjustment flags are linked too (without a bundle), so that manager rules
# can route on their flags; they are a small share of customers, like the restricted ones.
_FLAGGED = """SELECT id FROM customers WHERE adjustments->'flags' <> '[]'::jsonb
              AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))"""
_CUSTOMERS = "SELECT id, name, external_ref, adjustments FROM customers WHERE id = ANY($1::bigint[])"
_REPRESENTATIVES = """SELECT id, customer_id, name, relationship FROM representatives
                      WHERE customer_id = ANY($1::bigint[])"""
_IDENTIFIERS = """SELECT kind, value, customer_id, NULL::bigint AS representative_id
                  FROM identifiers WHERE customer_id = ANY($1::bigint[])
                  UNION ALL
                  SELECT i.kind, i.value, r.customer_id, i.representative_id
                  FROM representatives r JOIN identifiers i ON i.representative_id = r.id
                  WHERE r.customer_id = ANY($1::bigint[])"""
# The identifiers of these customers that more than one customer holds as their own, with everyone
# holding each (identifiers_customer_unique makes each holder one row).
_SHARED = """SELECT i.kind, i.value, array_agg(c.id ORDER BY c.id) AS ids, array_agg(c.name ORDER BY c.id) AS names
             FROM (SELECT DISTINCT kind, value FROM identifiers WHERE customer_id = ANY($1::bigint[])) k
             JOIN identifiers i ON i.kind = k.kind AND i.value = k.value
             JOIN customers c ON c.id = i.customer_id
             GROUP BY i.kind, i.value HAVING count(*) > 1"""
_CASES = """SELECT id, reference, customer_id, status, closed_on, subject
            FROM cases WHERE customer_id = ANY($1::bigint[])"""
_STAFF = "SELECT id, name, role, line, voicemail, mailbox, queue, working_hours FROM staff WHERE active"
_CLOSURES = "SELECT day FROM closures"


async def enforced_restrictions(
    conn: asyncpg.Connection, today: date, only: Sequence[int] | None
) -> dict[int, list[RestrictionView]]:
    """The restrictions enforced today (of every customer, or `only` these), by customer."""
    rows = await conn.fetch(_RESTRICTIONS, list(ENFORCED), today, None if only is None else list(only))
    by_customer: dict[int, list[RestrictionView]] = {}
    for n, r in enumerate(rows):
        if n % 500 == 499:
            await asyncio.sleep(0)  # a full resync must not stall the decisions being served
        by_customer.setdefault(r["customer_id"], []).append(restriction_view(r, _urgent(r)))
    return by_customer


def restriction_view(r: Any, urgent: UrgentReviewView | None = None) -> RestrictionView:
    """A restriction as the rules see it, from its row (or a snapshot of it rebuilt from its events)."""
    due = r.get("review_due")
    return RestrictionView(
        id=r["id"],
        customer_id=r["customer_id"],
        kind=r["kind"],
        params=_PARAMS.validate_python(r["params"]),
        channels=frozenset(r["channels"]),
        status=r["status"],
        review_due=date.fromisoformat(due) if isinstance(due, str) else due,
        urgent=urgent,
    )


def _urgent(r: asyncpg.Record) -> UrgentReviewView | None:
    if r["urgent_review_since"] is None:
        return None
    return UrgentReviewView(
        r["urgent_review_since"], r["urgent_review_why"] or "", frozenset(r["urgent_review_channels"])
    )


async def representatives_of(conn: asyncpg.Connection, ids: list[int]) -> dict[int, list[RepresentativeView]]:
    reps_of: dict[int, list[RepresentativeView]] = {}
    for r in await conn.fetch(_REPRESENTATIVES, ids):
        reps_of.setdefault(r["customer_id"], []).append(RepresentativeView(r["id"], r["name"], r["relationship"]))
    return reps_of


async def _cases(conn: asyncpg.Connection, ids: list[int]) -> dict[int, list[CaseView]]:
    cases_of: dict[int, list[CaseView]] = {}
    for c in await conn.fetch(_CASES, ids):
        cases_of.setdefault(c["customer_id"], []).append(
            CaseView(c["id"], c["reference"], c["customer_id"], c["status"], c["closed_on"], c["subject"])
        )
    return cases_of


async def load(conn: asyncpg.Connection, today: date, only: Sequence[int] | None) -> Loaded:
    """Bundles and identifier links for customers with an enforced restriction (all, or `only`),
    links and flags for customers with recorded adjustment flags, and the identifiers of those (or
    of every customer in `only`, restricted or not) that other customers share."""
    by_customer = await enforced_restrictions(conn, today, only)
    flagged = [r["id"] for r in await conn.fetch(_FLAGGED, None if only is None else list(only))]
    out = Loaded()
    ids = list(dict.fromkeys([*by_customer, *flagged]))
    # `only` whole: a customer outside the index who gained or lost a restricted customer's number
    # changes who that number reaches.
    for row in await conn.fetch(_SHARED, ids if only is None else list(only)):
        out.shared[handle_key(row["kind"], row["value"])] = tuple(zip(row["ids"], row["names"], strict=True))
    if not ids:
        return out
    restricted = list(by_customer)
    reps_of = await representatives_of(conn, restricted)
    cases_of = await _cases(conn, restricted)
    for c in await conn.fetch(_CUSTOMERS, ids):
        flags = frozenset((c["adjustments"] or {}).get("flags", []))
        if flags:
            out.flags[c["id"]] = flags
        if c["id"] not in by_customer:
            continue
        out.bundles[c["id"]] = Bundle(
            customer=CustomerView(c["id"], c["name"], flags),
            restrictions=tuple(by_customer[c["id"]]),
            representatives=tuple(reps_of.get(c["id"], ())),
            cases=tuple(cases_of.get(c["id"], ())),
        )
        if c["external_ref"]:
            out.external_refs[c["external_ref"].lower()] = c["id"]
    for i in await conn.fetch(_IDENTIFIERS, ids):
        key = handle_key(i["kind"], i["value"])
        out.links.setdefault(key, []).append(Link(i["customer_id"], i["representative_id"]))
        out.handles.setdefault(i["customer_id"], set()).add(key)
    return out


async def sharers(conn: asyncpg.Connection, ids: Sequence[int]) -> list[int]:
    """The other customers who hold any identifier of these customers as their own (a household
    phone): a simulation names them as the index does."""
    rows = await conn.fetch(
        """SELECT DISTINCT i.customer_id FROM identifiers i
           JOIN identifiers mine ON mine.kind = i.kind AND mine.value = i.value
           WHERE mine.customer_id = ANY($1::bigint[]) AND i.customer_id IS NOT NULL
             AND NOT i.customer_id = ANY($1::bigint[])""",
        list(ids),
    )
    return [r[0] for r in rows]


async def load_staff(conn: asyncpg.Connection | asyncpg.Pool) -> dict[int, StaffView]:
    return {
        r["id"]: StaffView(
            r["id"],
            r["name"],
            r["role"],
            r["line"],
            r["voicemail"],
            r["mailbox"],
            r["queue"],
            tuple(_WINDOWS.validate_python(r["working_hours"] or [])),
        )
        for r in await conn.fetch(_STAFF)
    }


async def load_closures(conn: asyncpg.Connection | asyncpg.Pool) -> frozenset[date]:
    """The days the provider is closed (on top of bank holidays)."""
    return frozenset(r["day"] for r in await conn.fetch(_CLOSURES))
