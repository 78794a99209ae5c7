"""How long a rule-set simulation takes over a large contact log: `python -m bench.simulate`.

Seeds its own database with COPY (customers, some with adjustment flags, 1% restricted with their
'created' events and some lifted half-way; N contacts over the last 30 days), then replays them
through a draft and the published default exactly as the job process does, and prints the time.
`--contacts 1000000 --customers 100000` by default; DATABASE_URL must be set (`make` runs it
under the embedded services: `.venv/bin/python -m gateway.embedded exec -- .venv/bin/python -m bench.simulate`).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway import db
from gateway.decide.simulate import SimulationParams, simulate
from gateway.migrate import migrate
from gateway.rules.calendar import Calendar
from gateway.rules.compiled import compile_ruleset
from gateway.rules.default_ruleset import DEFAULT_RULESET
from gateway.rules.ruleset import parse_ruleset

from .load import RESTRICTION_COLUMNS, Progress, _chunks, _create_database, database_url, restriction_row

DB_NAME = "gateway_bench_simulate"
SUBJECTS = ["Damp in the bedroom", "Rent statement", "Repair request", "Complaint", "Black mould again", "", "Noise"]
LINES = ["+441134960000", "+441134960001", "repairs@bench.example.org", "rents@bench.example.org"]
KINDS = ["written_only", "set_times", "no_personal_contact", "contact_limit", "caution", "appointment_only"]
DRAFT_RULES = [
    {
        "id": "damp",
        "description": "Damp and mould go to urgent repairs",
        "when": {"subject_has": ["damp", "black mould"]},
        "then": {"target": {"type": "queue", "id": "urgent-repairs"}, "priority": 5},
    },
    {
        "id": "rents-line",
        "description": "Calls to the rents line go to the rents team",
        "when": {"channels": ["phone"], "to": ["+441134960001"]},
        "then": {"target": {"type": "queue", "id": "rents"}},
    },
    {
        "id": "vulnerable",
        "description": "Vulnerable customers reach the trained team",
        "when": {"adjustments": ["vulnerable"]},
        "then": {"target": {"type": "queue", "id": "trained"}, "priority": 9},
    },
]


def _params(kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        **{
            "set_times": {"windows": [{"days": ["tue", "thu"], "start": "10:00", "end": "12:00"}]},
            "contact_limit": {"limit": 3, "period": "week"},
            "caution": {"note": "Two officers"},
        }.get(kind, {}),
    }


async def _seed(conn: Any, customers: int, contacts: int, now: datetime) -> None:
    rnd = random.Random(7)
    flags = {c: ["vulnerable"] if c % 40 == 0 else ["needs_phone"] for c in range(1, customers + 1) if c % 20 == 0}
    rows = ((c, f"Customer {c}", {"text": "", "flags": flags.get(c, [])}) for c in range(1, customers + 1))
    for chunk in _chunks(rows):
        await conn.copy_records_to_table("customers", records=chunk, columns=["id", "name", "adjustments"])
    restricted = list(range(1, customers + 1, 100))
    restriction_rows, events = [], []
    status = RESTRICTION_COLUMNS.index("status")
    for k, cid in enumerate(restricted):
        kind = KINDS[k % len(KINDS)]
        lifted = k % 3 == 0  # lifted half-way through the month replayed
        row = restriction_row(cid, kind, _params(kind), [], "bench")
        record = dict(zip(RESTRICTION_COLUMNS, row, strict=True))
        snapshot = {name: record[name] for name in ("kind", "params", "channels", "status")}
        snapshot |= {"valid_from": record["valid_from"].isoformat(), "valid_to": None}
        restriction_rows.append((k + 1, *row[:status], "lifted" if lifted else "active", *row[status + 1 :]))
        events.append((k + 1, cid, now - timedelta(days=30, hours=6), "bench", "created", snapshot))
        if lifted:
            events.append((k + 1, cid, now - timedelta(days=15), "bench", "lifted", {"status": "lifted"}))
    await conn.copy_records_to_table("restrictions", records=restriction_rows, columns=["id", *RESTRICTION_COLUMNS])
    await conn.copy_records_to_table(
        "restriction_events", records=events, columns=["restriction_id", "customer_id", "at", "actor", "kind", "after"]
    )

    def contact_rows() -> Iterator[tuple[Any, ...]]:
        span = 30 * 86400
        for _ in range(contacts):
            channel = rnd.choice(["phone", "phone", "email", "web_form", "visit"])
            cid = rnd.randint(1, customers) if rnd.random() < 0.85 else None
            if cid is not None and rnd.random() < 0.05:
                cid = rnd.choice(restricted)
            kind = "phone" if channel == "phone" else "email" if channel == "email" else "web"
            at = now - timedelta(seconds=rnd.random() * span)
            yield (
                uuid.uuid4(),
                at,
                channel,
                "route",
                kind,
                f"s{cid or 0}",
                f"s{cid or 0}",
                rnd.choice(LINES),
                rnd.choice(SUBJECTS),
                [cid] if cid else [],
                [],
            )

    bar = Progress("contacts", contacts)
    columns = [
        "id",
        "received_at",
        "channel",
        "action",
        "sender_kind",
        "sender_raw",
        "sender",
        "recipient",
        "subject",
        "customer_ids",
        "reasons",
    ]
    for chunk in _chunks(contact_rows()):
        await conn.copy_records_to_table("contacts", records=chunk, columns=columns)
        bar.add(len(chunk))
    await conn.execute("ANALYZE contacts")


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--restrictions", choices=["at_the_time", "now"], default="at_the_time")
    p.add_argument("--reuse", action="store_true", help="replay what an earlier run seeded")
    args = p.parse_args(argv)
    base = os.environ["DATABASE_URL"]
    now = datetime.now(UTC)
    await _create_database(base, DB_NAME, fresh=not args.reuse)
    conn = await db.connect(database_url(base, DB_NAME))
    try:
        await migrate(conn)
        if not args.reuse:
            started = time.perf_counter()
            await _seed(conn, args.customers, args.contacts, now)
            print(f"seeded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        draft_data = copy.deepcopy(DEFAULT_RULESET)
        draft_data.update(version=2, rules=draft_data["rules"] + DRAFT_RULES)
        draft = compile_ruleset(parse_ruleset(draft_data))
        published = compile_ruleset(parse_ruleset(DEFAULT_RULESET))

        async def progress(done: int, total: int) -> None:
            if done % 100_000 == 0:
                print(f"  {done:>9,}/{total:,}", file=sys.stderr, flush=True)

        started = time.perf_counter()
        params = SimulationParams(days=30, restrictions=args.restrictions, examples=1)
        result = await simulate(conn, draft, published, params, now, Calendar(ZoneInfo("Europe/London")), progress)
        took = time.perf_counter() - started
    finally:
        await conn.close()
    print(
        f"replayed {result['contacts']:,} contacts ({args.restrictions}) in {took:.1f} s "
        f"({result['contacts'] / took:,.0f}/s): {result['changed']:,} changed, "
        f"{result['customers_affected']:,} customers affected, "
        f"{result['customers_with_adjustments']:,} with adjustments"
    )
    for c in result["changes"][:8]:
        print(f"  {c['from']} -> {c['to']}: {c['contacts']:,} contacts, {c['customers']:,} customers")
    date.today()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
