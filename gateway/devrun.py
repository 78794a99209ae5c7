"""`make run`: embedded services when none are configured, migrate, demo data, a key, then serve."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from . import db, embedded
from .auth import create_key
from .demo import load_demo
from .migrate import migrate
from .settings import Settings


async def _connect_creating(url: str) -> asyncpg.Connection:
    """Connect, creating the database first when the server is there but the database is not."""
    try:
        return await db.connect(url)
    except asyncpg.InvalidCatalogNameError:
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        print(f"created database {name!r}", file=sys.stderr)
        return await db.connect(url)


async def _prepare(settings: Settings) -> str:
    conn = await _connect_creating(settings.database_url or "")
    try:
        await migrate(conn)
        print(await load_demo(conn, only_if_empty=True), file=sys.stderr)
        _, key = await create_key(conn, "admin", "make run")
        return key
    finally:
        await conn.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C and a plain `kill` both stop the gateway and, if we started them, the services.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    base = Path(os.environ.get("GATEWAY_EMBEDDED_DIR", ".gateway"))
    env, started = embedded.ensure(base)
    settings = Settings.from_env(env)
    try:
        key = asyncio.run(_prepare(settings))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"cannot prepare the database at {settings.database_url}: {exc}", file=sys.stderr)
        return 3
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"""
Contact gateway on {url}  (Ctrl-C stops it{"" if not started else " and the embedded services"})
Admin key for this session: {key}
Try:
  curl {url}/readyz
  curl -H 'Authorization: Bearer {key}' {url}/v1/customers/1
  curl -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
       -d '{{"channel": "phone", "from": "07700 900003"}}' {url}/v1/contacts
External services: DATABASE_URL=postgresql://... REDIS_URL=redis://... make run
""",
        file=sys.stderr,
        flush=True,
    )
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
    finally:
        if started:
            embedded.stop(base)
            print("embedded services stopped", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
