"""Shared fixtures: a migrated test database and a Redis database on the real services, an app client,
the system keys (channel, admin), the factory that builds test data through the API, and a team of
staff members, each with a key of their own.

Each test that touches PostgreSQL starts from empty tables (the test database is created fresh
per session); Redis is flushed per test on a database number of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from gateway import db
from gateway.app import create_app
from gateway.auth import SYSTEM_ROLES, create_key
from gateway.migrate import migrate
from gateway.settings import Settings
from tests.browser import browser, context, page  # noqa: F401  (browser fixtures, shared)
from tests.factory import SET_UP, Api, Team
from tests.tcpproxy import TcpProxy

TEST_REDIS_DB = 13

# CI replays the same examples every run (a red build must be reproducible, not a dice roll);
# a developer's run explores new ones. Failures found either way are kept in .hypothesis/.
hypothesis.settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _with_redis_db(url: str, n: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{n}"))


@pytest.fixture(scope="session")
async def base_settings() -> AsyncIterator[Settings]:
    env_settings = Settings.from_env()
    if not env_settings.database_url or not env_settings.redis_url:
        pytest.exit("DATABASE_URL and REDIS_URL must be set: run the suite with `make test`", 2)
    name = f"gateway_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(_with_db(env_settings.database_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(env_settings.database_url, name)
    conn = await db.connect(url)
    await migrate(conn)
    await conn.close()
    yield env_settings.with_(
        database_url=url,
        redis_url=_with_redis_db(env_settings.redis_url, TEST_REDIS_DB),
        spool_dir=f"/tmp/{name}-spool",
    )
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.close()


_FEW = 1000  # rows a table may hold and still be emptied with DELETE


async def _empty_tables(conn: asyncpg.Connection) -> None:
    """Every table as a fresh database has it. Only the tables holding rows are emptied, and only the
    sequences used are reset: a TRUNCATE of all 46 tables (and the contact log's partitions) took
    ~100 ms before every test, a sixth of the suite on a slow machine. A table with a few rows is
    emptied with DELETE, since a TRUNCATE makes new files for the table and its indexes (for
    `contacts`, those of all its partitions)."""
    tables = [
        r["t"]
        for r in await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('schema_migrations', 'rulesets') AND tablename NOT LIKE 'contacts_%'"
        )
    ]
    counted = " UNION ALL ".join(
        f"SELECT {i} AS i, (SELECT count(*) FROM (SELECT FROM {t} LIMIT {_FEW + 1}) AS f) AS n"
        for i, t in enumerate(tables)
    )
    # The audit table refuses TRUNCATE and DELETE by trigger, and foreign keys are checked by
    # triggers too: replica mode (superuser, tests only) skips them, so the order does not matter.
    await conn.execute("SET session_replication_role = replica")
    async with conn.transaction():
        # Like the TRUNCATE of every table before: a write still under way (a task or process the
        # last test left) is waited for, and its rows are counted and emptied with the rest.
        await conn.execute(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")
        full = {tables[r["i"]]: r["n"] for r in await conn.fetch(counted) if r["n"]}
        for table in (t for t, n in full.items() if n <= _FEW):  # a few rows: cheaper than new files
            await conn.execute(f"DELETE FROM {table}")
        if many := [t for t, n in full.items() if n > _FEW]:
            # Tables that refer to them hold rows too (CASCADE): all are being emptied.
            await conn.execute(f"TRUNCATE {', '.join(many)} CASCADE")
    # As RESTART IDENTITY would, for every sequence used since (rows may have come and gone).
    await conn.execute(
        "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
        "FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL"
    )
    await conn.execute("DELETE FROM rulesets WHERE created_by <> 'migration'")
    await conn.execute("UPDATE rulesets SET published = (version = (SELECT min(version) FROM rulesets))")
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence('rulesets', 'version'), (SELECT max(version) FROM rulesets))"
    )
    await conn.execute("SET session_replication_role = origin")


@pytest.fixture
async def settings(base_settings: Settings) -> AsyncIterator[Settings]:
    conn = await asyncpg.connect(base_settings.database_url)
    try:
        await _empty_tables(conn)
    finally:
        await conn.close()
    r = aioredis.from_url(base_settings.redis_url or "")
    await r.flushdb()
    await r.aclose()
    yield base_settings


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    c = await db.connect(settings.database_url or "")
    yield c
    await c.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.fixture
async def keys(conn: asyncpg.Connection) -> dict[str, str]:
    """One key per system role (channel, admin); a person's key comes with a `team` member."""
    return {role: (await create_key(conn, role, f"test {role}", actor=SET_UP))[1] for role in SYSTEM_ROLES}


@pytest.fixture
def api(client: TestClient[Any, Any], keys: dict[str, str]) -> Api:
    """Test data made through the app's own HTTP API."""
    return Api(client, keys)


@pytest.fixture
async def team(api: Api) -> Team:
    """Staff of every role, each with a key of their own."""
    return await api.team()


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test database, to cut it (a dead host) or freeze it (a hang)."""
    parts = urlsplit(settings.database_url or "")
    p = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await p.start()
    yield p
    await p.close()
