"""Storage limitation: what the retention settings remove next (the plan), and the run that removes it
and records what went, as counts and date ranges, in retention_runs.

The contact limit covers the contact log and what is kept beside it: mail sent (acknowledgements,
with their attachments), the message ids that thread replies, staff sessions and sign-in events.
Mail still queued is never removed; a letter's email stays with the letter (restriction limit)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from .lifecycle import add_months
from .settings import Settings
from .store import retention as store

log = logging.getLogger(__name__)
# Shared by every gateway process and the command line: one run at a time.
RETENTION_LOCK_ID = 0x6761_7465_7761_7902
# DETACH waits at most this long for its lock on `contacts`; meanwhile new contacts queue behind it, so
# it is kept well under the contact log's commit wait. It tries again after a pause, up to the attempts.
DETACH_LOCK_TIMEOUT_MS = 100
DETACH_RETRY_SECONDS = 0.2
DETACH_ATTEMPTS = 50

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Limits:
    contact_months: int
    excerpt_months: int
    restriction_months: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.contact_retention_months, settings.excerpt_retention_months, settings.restriction_retention_months
        )

    def contacts_before(self, now: datetime) -> datetime:
        return _months_back(now, self.contact_months)

    def excerpts_before(self, now: datetime) -> datetime:
        return _months_back(now, self.excerpt_months)

    def ended_before(self, today: date) -> date:
        return add_months(today, -self.restriction_months)


def _months_back(now: datetime, months: int) -> datetime:
    return datetime.combine(add_months(now.date(), -months), now.timetz())


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value else None


async def plan(conn: asyncpg.Pool | asyncpg.Connection, limits: Limits, now: datetime, today: date) -> dict[str, Any]:
    """What a run at `now` would remove: partitions and their rows, excerpts, ended restrictions."""
    contacts_before = limits.contacts_before(now)
    parts = await store.partitions_before(conn, contacts_before)
    listed: list[dict[str, Any]] = [
        {"name": p.name, "from": p.start.isoformat(), "to": p.end.isoformat(), "rows": await _rows(conn, p)}
        for p in parts
    ]
    default_rows = await store.default_older(conn, contacts_before)
    kept_from = max((p.end for p in parts), default=None)
    blanked, oldest, newest = await store.excerpt_span(conn, kept_from, limits.excerpts_before(now))
    ended, first, last = await store.ended_span(conn, limits.ended_before(today))
    beside = await store.beside_the_log_older(conn, contacts_before)
    latest = await store.runs(conn, 1)
    return {
        "limits": asdict(limits),
        "contacts": {
            "removed_before": contacts_before.isoformat(),
            "partitions": listed,
            "rows": sum(int(p["rows"]) for p in listed) + default_rows,
        },
        "beside_the_log": {"removed_before": contacts_before.isoformat(), "rows": beside},
        "excerpts": {
            "blanked_before": limits.excerpts_before(now).isoformat(),
            "rows": blanked,
            "oldest": _iso(oldest),
            "newest": _iso(newest),
        },
        "restrictions": {
            "ended_before": limits.ended_before(today).isoformat(),
            "count": ended,
            "ended_from": _iso(first),
            "ended_to": _iso(last),
        },
        "last_run": latest[0] if latest else None,
    }


async def _rows(conn: asyncpg.Pool | asyncpg.Connection, p: store.Partition) -> int:
    if p.attached:
        return await store.rows_between(conn, p.start, p.end)
    return 0  # left detached by an interrupted run: already out of the log, only the table is left


async def run(
    pool: asyncpg.Pool, limits: Limits, now: datetime, today: date, actor: str, progress: Progress | None = None
) -> dict[str, Any] | None:
    """Remove what the plan lists and record the run; None if another run holds the lock."""
    say = progress or (lambda line: log.info("retention: %s", line))
    async with pool.acquire() as conn:
        if not await store.try_lock(conn, RETENTION_LOCK_ID):
            say("another retention run is in progress; nothing done")
            return None
        try:
            removed = {
                "contacts": await _drop_partitions(conn, limits.contacts_before(now), say),
                "beside_the_log": await _delete_beside_the_log(conn, limits.contacts_before(now), say),
                "excerpts": await _blank_excerpts(conn, limits.excerpts_before(now), say),
                "restrictions": await _reduce(conn, limits.ended_before(today), today, say),
            }
            await store.record_run(conn, now, actor, asdict(limits), removed)
        finally:
            await store.unlock(conn, RETENTION_LOCK_ID)
    say("done; the run is recorded in retention_runs")
    return removed


async def _drop_partitions(conn: asyncpg.Connection, before: datetime, say: Progress) -> dict[str, Any]:
    dropped: list[dict[str, Any]] = []
    skipped: list[str] = []
    for p in await store.partitions_before(conn, before):
        say(f"detaching {p.name} ({p.start:%Y-%m})")
        if p.attached and not await _detach(conn, p.name):
            say(f"{p.name}: the contact log stayed busy; left for the next run")
            skipped.append(p.name)
            continue
        rows = await store.drop_detached(conn, p.name)
        say(f"dropped {p.name}: {rows} contact(s)")
        dropped.append({"name": p.name, "from": p.start.isoformat(), "to": p.end.isoformat(), "rows": rows})
    default_rows = await store.delete_default_older(conn, before)
    if default_rows:
        say(f"deleted {default_rows} contact(s) from the default partition")
    return {
        "removed_before": before.isoformat(),
        "partitions": dropped,
        "skipped": skipped,
        "default_rows": default_rows,
        "rows": sum(d["rows"] for d in dropped) + default_rows,
    }


async def _delete_beside_the_log(conn: asyncpg.Connection, before: datetime, say: Progress) -> dict[str, Any]:
    rows = await store.delete_beside_the_log(conn, before)
    say("deleted beside the log: " + ", ".join(f"{n} from {table}" for table, n in rows.items()))
    return {"removed_before": before.isoformat(), "rows": rows}


async def _detach(conn: asyncpg.Connection, name: str) -> bool:
    for _ in range(DETACH_ATTEMPTS):
        if await store.detach(conn, name, DETACH_LOCK_TIMEOUT_MS):
            return True
        await asyncio.sleep(DETACH_RETRY_SECONDS)
    return False


async def _blank_excerpts(conn: asyncpg.Connection, before: datetime, say: Progress) -> dict[str, Any]:
    """Month by month, oldest first, each month its own short transaction."""
    total, oldest, newest = await store.excerpt_span(conn, None, before)
    done = 0
    start = oldest
    while start is not None and start < before:
        month_start = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = min(datetime.combine(add_months(month_start.date(), 1), month_start.timetz()), before)
        done += await store.blank_excerpts(conn, start, end)
        say(f"excerpts blanked: {done}/{total}")
        start = end
    return {"blanked_before": before.isoformat(), "rows": done, "oldest": _iso(oldest), "newest": _iso(newest)}


async def _reduce(conn: asyncpg.Connection, ended_before: date, today: date, say: Progress) -> dict[str, Any]:
    ended = await store.reduce_ended(conn, ended_before, today)
    say(f"ended restrictions reduced to their audit record: {len(ended)}")
    return {
        "ended_before": ended_before.isoformat(),
        "count": len(ended),
        "ended_from": _iso(min(ended, default=None)),
        "ended_to": _iso(max(ended, default=None)),
    }


def is_due(last_started: datetime | None, now: datetime, every: timedelta) -> bool:
    return last_started is None or now - last_started >= every


async def notice(conn: asyncpg.Pool | asyncpg.Connection) -> dict[str, Any]:
    """For reports and exports: whether older data has been removed under the retention settings."""
    latest = await store.runs(conn, 1)
    if not latest:
        return {"removed": False, "note": "nothing has been removed under the retention settings yet"}
    last = latest[0]
    removed = last["removed"]
    # Runs recorded before the mail and sign-ins beside the log were covered did not remove them.
    beside = " (with the mail sent about them, their message ids, staff sessions and sign-ins as old)"
    beside = beside if "beside_the_log" in removed else ""
    return {
        "removed": True,
        "last_run": last["started_at"],
        "limits": last["limits"],
        "contacts_removed_before": removed["contacts"]["removed_before"],
        "excerpts_blanked_before": removed["excerpts"]["blanked_before"],
        "restrictions_ended_before_reduced": removed["restrictions"]["ended_before"],
        "note": (
            "older data has been removed under the retention settings: contacts received before "
            f"{removed['contacts']['removed_before'][:10]}{beside}, message excerpts before "
            f"{removed['excerpts']['blanked_before'][:10]}, and the incidents and reasons of restrictions "
            f"that ended before {removed['restrictions']['ended_before']}"
        ),
    }


def describe(p: dict[str, Any]) -> list[str]:
    """The plan as lines for people (the command line's --dry-run)."""
    c, e, r = p["contacts"], p["excerpts"], p["restrictions"]
    lines = [f"contact log: rows received before {c['removed_before'][:10]} go ({c['rows']} in all)"]
    lines += [f"  {x['name']}: {x['from'][:10]} to {x['to'][:10]}, {x['rows']} contact(s)" for x in c["partitions"]]
    beside = p["beside_the_log"]["rows"]
    lines.append(
        "kept beside the log, before the same date: "
        + ", ".join(f"{n} row(s) of {table}" for table, n in beside.items())
        + " (mail still queued stays)"
    )
    lines.append(f"message excerpts before {e['blanked_before'][:10]}: {e['rows']} to blank")
    span = f" (ended {r['ended_from']} to {r['ended_to']})" if r["count"] else ""
    lines.append(f"restrictions lifted or lapsed before {r['ended_before']}: {r['count']} to reduce{span}")
    last = p["last_run"]
    lines.append(f"last run: {last['started_at']} by {last['actor']}" if last else "last run: never")
    return lines
