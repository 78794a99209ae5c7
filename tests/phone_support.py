"""Shared by the phone channel tests: an app on modified settings with the demo data loaded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.demo import load_demo
from gateway.models import CustomerIn
from gateway.settings import Settings
from gateway.store import people


@asynccontextmanager
async def running(
    settings: Settings, conn: asyncpg.Connection, *, demo: bool = True
) -> AsyncIterator[tuple[TestClient[Any, Any], web.Application]]:
    """The demo data first, so the index loads it at start-up: no waiting on invalidations."""
    if demo:
        await load_demo(conn)
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        yield client, app


async def staff_numbers(conn: asyncpg.Connection, name: str) -> dict[str, str]:
    row = await conn.fetchrow("SELECT id, line, voicemail FROM staff WHERE name = $1", name)
    return {"id": str(row["id"]), "staff": row["line"], "voicemail": row["voicemail"]}


async def rows(conn: asyncpg.Connection, where: str, *args: Any) -> list[asyncpg.Record]:
    """Contact log rows; the log commits in groups, so give it a moment to arrive."""
    found: list[asyncpg.Record] = []
    for _ in range(50):
        found = await conn.fetch(f"SELECT * FROM contacts WHERE {where}", *args)
        if found:
            return found
        await asyncio.sleep(0.02)
    return found


async def restricted_customer(
    conn: asyncpg.Connection, ref: str, phone: str, params: dict[str, Any], channels: tuple[str, ...] = ("phone",)
) -> int:
    """A customer with one active restriction, inserted the way the demo data does it."""
    customer = await people.create_customer(
        conn, CustomerIn(external_ref=ref, name=f"Test {ref}", identifiers=[{"kind": "phone", "value": phone}])
    )
    today = date.today()
    await conn.execute(
        """INSERT INTO restrictions (customer_id, kind, params, channels, reason_category, reasons,
               incidents, warned_on, deciders, decided_on, valid_from, review_due, letter_sent_on,
               status, created_by)
           VALUES ($1, $2, $3, $4, 'unreasonable_persistence', 'test', '[]', $5, '{}', $5, $5,
                   $6, $5, 'active', 'test')""",
        customer.id,
        params["kind"],
        params,
        list(channels),
        today - timedelta(days=1),
        today + timedelta(days=300),
    )
    return customer.id
