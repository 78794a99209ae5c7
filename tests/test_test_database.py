"""The emptying between tests (`tests/conftest.py`'s `_empty_tables`): every test starts on the
database as migrations leave it, whatever the last one wrote or was still writing."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.conftest import _FEW, _empty_tables

# The tables migrations fill, and what they hold then.
_KEPT = {"schema_migrations", "rulesets"}


async def _rows(conn: asyncpg.Connection) -> dict[str, int]:
    tables = [
        r["tablename"]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'contacts\\_%'"
        )
    ]
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables if t not in _KEPT}


async def test_what_a_test_wrote_is_gone_and_ids_start_again_at_one(conn):
    # One table past the DELETE limit (emptied by TRUNCATE), one under it, one whose rows came and went.
    await conn.execute(
        "INSERT INTO closures (day, reason) SELECT current_date + n, 'x' FROM generate_series(1, $1) AS n", _FEW + 500
    )
    await conn.execute("INSERT INTO customers (name) SELECT 'c' || n FROM generate_series(1, 3) AS n")
    case_customer = await conn.fetchval("SELECT min(id) FROM customers")
    await conn.execute("INSERT INTO cases (customer_id, reference, subject) VALUES ($1, 'CMP-9', 's')", case_customer)
    await conn.execute("DELETE FROM cases")

    await _empty_tables(conn)

    assert {t: n for t, n in (await _rows(conn)).items() if n} == {}
    assert await conn.fetchval("INSERT INTO customers (name) VALUES ('first') RETURNING id") == 1
    assert (
        await conn.fetchval("INSERT INTO cases (customer_id, reference, subject) VALUES (1, 'CMP-1', 's') RETURNING id")
        == 1
    )
    assert await conn.fetchval("SELECT count(*) FROM rulesets WHERE published") == 1


async def test_a_write_still_under_way_is_waited_for_and_emptied(conn, settings):
    late = await asyncpg.connect(settings.database_url)
    try:
        writing = late.transaction()
        await writing.start()
        await late.execute("INSERT INTO closures (day, reason) VALUES (current_date, 'left by the last test')")
        emptying = asyncio.create_task(_empty_tables(conn))
        await asyncio.sleep(0.3)
        assert not emptying.done()  # it waits for the write, as a TRUNCATE did
        await writing.commit()
        await asyncio.wait_for(emptying, 10)
    finally:
        await late.close()
    assert await conn.fetchval("SELECT count(*) FROM closures") == 0
