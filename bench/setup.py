"""What every phase of the bench sets up: its Redis databases, an API key, the WAL files readied."""

from __future__ import annotations

import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from gateway import db
from gateway.auth import create_key
from gateway.lifecycle import Actor

from . import walfiles

# The bench's own Redis databases on REDIS_URL's server, each flushed before a phase uses it: the
# first for the phases of each size, the email and the phone mix; the side-by-side phase's gateways
# (bench/alternate.py), which run at once, take one each from the first on. The test suite's is 13.
BENCH_REDIS_DB = 1
MAX_SIZES = 8  # so databases 1–8
# WAL files readied before a data set's phases (bench/walfiles.py): a data set's phases write
# ~250–400 MB of WAL at the default lengths (~2 KB a contact, more just after a checkpoint).
WAL_FILES = 32


def redis_url(base: str, n: int = BENCH_REDIS_DB) -> str:
    """REDIS_URL with the bench's database `n` in place of its own."""
    if not BENCH_REDIS_DB <= n < BENCH_REDIS_DB + MAX_SIZES:
        raise ValueError(f"Redis database {n} is not one of the bench's")
    parts = urlsplit(base)
    if parts.scheme == "unix":  # the database is a query parameter there
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(n))]
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{n}"))


async def new_key(url: str) -> str:
    """A new channel key in that database, for the phase's requests."""
    conn = await db.connect(url)
    try:
        return (await create_key(conn, "channel", "bench", actor=Actor("make bench")))[1]
    finally:
        await conn.close()


async def ready_wal(url: str) -> walfiles.Ready | str:
    """Enough WAL files ready for a data set's phases (bench/walfiles.py), or why they could not be."""
    conn = await db.connect(url)
    try:
        wal = await walfiles.ready(conn, WAL_FILES)
    except asyncpg.PostgresError as exc:  # not a superuser: the phases may make files while commits wait
        why = f"WAL files not readied ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        print(f"  PostgreSQL: {why}; the phases may wait while PostgreSQL makes them", file=sys.stderr)
        return why.replace("|", "/")  # it goes in a table cell
    finally:
        await conn.close()
    print(f"  PostgreSQL: {wal.describe()}", file=sys.stderr)
    return wal
