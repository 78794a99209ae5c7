"""The benchmark data set, loaded with COPY into its own database and reused when already the right size.

N customers with 1–3 identifiers each, N/100 active restrictions spread over all eight kinds,
N/10 cases (1,000,000 / 10,000 / 100,000 at full size). Identifiers are derived from the customer id,
so the load generator can name restricted and unrestricted senders without asking the database.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gateway import db
from gateway.migrate import migrate
from gateway.rules.registry import KINDS

CHUNK = 50_000
BENCH_CREATOR = "bench"
PROPAGATION_CREATOR = "bench-propagation"
_CHANNELS = {
    "set_times": ["phone"],
    "named_contact": ["phone", "email", "web_form", "letter", "visit"],
    "written_only": ["phone", "visit"],
    "no_personal_contact": ["phone", "visit"],
    "appointment_only": ["visit"],
    "closed_issue": ["phone", "email", "web_form", "letter"],
    "caution": ["phone", "email", "web_form", "letter", "visit"],
    "contact_limit": ["phone", "email", "web_form"],
}


@dataclass(frozen=True)
class Shape:
    """How big the data set is; everything else follows from the customer count."""

    customers: int

    @property
    def restrictions(self) -> int:
        return max(8, self.customers // 100)

    @property
    def cases(self) -> int:
        return max(self.restrictions, self.customers // 10)

    def restricted_customer(self, k: int) -> int:
        """The k-th restricted customer (0-based): spread evenly over the id range."""
        return 1 + k * (self.customers // self.restrictions)

    def is_restricted(self, customer_id: int) -> bool:
        step = self.customers // self.restrictions
        return (customer_id - 1) % step == 0 and (customer_id - 1) // step < self.restrictions


def identifier_count(customer_id: int) -> int:
    return 1 + (customer_id * 7919) % 3


def phone_of(customer_id: int) -> str:
    """E.164 mobile, as stored (normalised)."""
    return f"+447{customer_id:09d}"


def landline_of(customer_id: int) -> str:
    return f"+44113{customer_id % 10_000_000:07d}"


def email_of(customer_id: int) -> str:
    return f"c{customer_id}@bench.example.org"


def identifiers_of(customer_id: int) -> list[tuple[str, str]]:
    all_three = [
        ("phone", phone_of(customer_id)),
        ("email", email_of(customer_id)),
        ("phone", landline_of(customer_id)),
    ]
    return all_three[: identifier_count(customer_id)]


def database_url(base_url: str, name: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.started = label, total, 0, time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * 30)
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        print(
            f"\r  {self.label:<12} [{bar:<30}] {self.done:>9,}/{self.total:,} {rate:>9,.0f}/s",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if self.done >= self.total:
            print(file=sys.stderr, flush=True)


def _chunks(rows: Iterator[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _copy(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], total: int, rows: Iterator[tuple[Any, ...]]
) -> None:
    bar = Progress(table, total)
    for chunk in _chunks(rows):
        await conn.copy_records_to_table(table, records=chunk, columns=list(columns))
        bar.add(len(chunk))


def _customers(shape: Shape) -> Iterator[tuple[Any, ...]]:
    for cid in range(1, shape.customers + 1):
        yield cid, f"B{cid:08d}", f"Bench customer {cid}"


def _identifiers(shape: Shape) -> Iterator[tuple[Any, ...]]:
    for cid in range(1, shape.customers + 1):
        for kind, value in identifiers_of(cid):
            yield kind, value, cid


def _cases(shape: Shape) -> Iterator[tuple[Any, ...]]:
    closed = date.today() - timedelta(days=90)
    for k in range(shape.cases):
        if k < shape.restrictions:  # one exhausted complaint per restricted customer, for closed_issue
            yield k + 1, shape.restricted_customer(k), f"BCH-{k + 1:07d}", "Damp and mould", "exhausted", closed
        else:
            cid = (k * 7 + 3) % shape.customers + 1
            yield k + 1, cid, f"BCH-{k + 1:07d}", "Repairs to the kitchen", "open", None


def _params(kind: str, k: int, staff: Sequence[int]) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Any]] = {
        "set_times": {"windows": [{"days": ["tue", "thu"], "start": "10:00", "end": "12:00"}]},
        "named_contact": {"staff_id": staff[k % len(staff)]},
        "closed_issue": {"case_id": k + 1},
        "caution": {"note": "Do not visit alone"},
        "contact_limit": {"limit": 3, "period": "day"},
    }
    return {"kind": kind, **by_kind.get(kind, {})}


RESTRICTION_COLUMNS = (
    "customer_id",
    "kind",
    "params",
    "channels",
    "reason_category",
    "reasons",
    "incidents",
    "warned_on",
    "deciders",
    "decided_on",
    "valid_from",
    "review_due",
    "letter_sent_on",
    "status",
    "created_by",
)


def restriction_row(
    customer_id: int, kind: str, params: dict[str, Any], deciders: Sequence[int], created_by: str
) -> tuple[Any, ...]:
    today = date.today()
    return (
        customer_id,
        kind,
        params,
        _CHANNELS[kind],
        "unreasonable_persistence",
        "Benchmark restriction",
        [{"on": str(today - timedelta(days=45)), "description": "bench"}],
        today - timedelta(days=40),
        list(deciders),
        today - timedelta(days=30),
        today - timedelta(days=30),
        today + timedelta(days=300),
        today - timedelta(days=30),
        "active",
        created_by,
    )


def _restrictions(shape: Shape, staff: Sequence[int]) -> Iterator[tuple[Any, ...]]:
    for k in range(shape.restrictions):
        kind = KINDS[k % len(KINDS)]
        yield restriction_row(shape.restricted_customer(k), kind, _params(kind, k, staff), staff[:3], BENCH_CREATOR)


async def _staff(conn: asyncpg.Connection) -> list[int]:
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM staff ORDER BY id")]
    for n in range(8 - len(ids)):
        ids.append(
            await conn.fetchval(
                """INSERT INTO staff (name, role, line, mailbox, queue) VALUES ($1, 'caution_lead', $2, $3, 'general')
               RETURNING id""",
                f"Bench officer {n}",
                f"+44113496{n:04d}",
                f"officer{n}@bench.example.org",
            )
        )
    return ids


async def _load(conn: asyncpg.Connection, shape: Shape) -> None:
    staff = await _staff(conn)
    await _copy(conn, "customers", ("id", "external_ref", "name"), shape.customers, _customers(shape))
    total_idents = sum(identifier_count(c) for c in range(1, shape.customers + 1))
    await _copy(conn, "identifiers", ("kind", "value", "customer_id"), total_idents, _identifiers(shape))
    await _copy(
        conn, "cases", ("id", "customer_id", "reference", "subject", "status", "closed_on"), shape.cases, _cases(shape)
    )
    await _copy(conn, "restrictions", RESTRICTION_COLUMNS, shape.restrictions, _restrictions(shape, staff))
    for table in ("customers", "cases"):
        await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    await conn.execute("ANALYZE")


async def _counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM customers) AS customers,
                  (SELECT count(*) FROM restrictions WHERE status = 'active') AS restrictions,
                  (SELECT count(*) FROM cases) AS cases"""
    )
    return row["customers"], row["restrictions"], row["cases"]


async def _create_database(base_url: str, name: str, *, fresh: bool) -> None:
    admin = await asyncpg.connect(database_url(base_url, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and fresh:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = False
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def settle(url: str) -> None:
    """Before a measured phase: what the run so far left for autovacuum (the contact log starts each
    run empty, so the first phase's rows make it analyse and vacuum at once) is done now, instead of
    landing, a second of CPU at a time, in whichever phase autovacuum's next look happens to fall."""
    conn = await db.connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE) contacts, contact_provider_ids")
    finally:
        await conn.close()


async def ensure_loaded(base_url: str, shape: Shape) -> str:
    """The URL of a database holding exactly this data set, loading it only when needed."""
    name = f"gateway_bench_{shape.customers}"
    url = database_url(base_url, name)
    await _create_database(base_url, name, fresh=False)
    conn = await db.connect(url)
    try:
        await migrate(conn)
        await conn.execute("DELETE FROM restrictions WHERE created_by = $1", PROPAGATION_CREATOR)
        # Every run starts from an empty contact log, so runs (and the two sizes) compare like with like.
        await conn.execute("TRUNCATE contacts, contact_provider_ids")
        want = (shape.customers, shape.restrictions, shape.cases)
        if await _counts(conn) == want:
            print(f"bench data: {name} already holds {want[0]:,} customers, reused", file=sys.stderr)
            return url
    finally:
        await conn.close()
    print(f"bench data: loading {name}", file=sys.stderr)
    started = time.monotonic()
    await _create_database(base_url, name, fresh=True)
    conn = await db.connect(url)
    try:
        await migrate(conn)
        await _load(conn, shape)
    finally:
        await conn.close()
    print(f"bench data: loaded in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return url
