"""`make run`: embedded services when none are configured, migrate, demo data, an admin key, then serve."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from . import db, embedded
from .auth import active_key_id, create_key
from .demo import PROVIDER_SETTINGS, load_demo
from .lifecycle import Actor
from .migrate import migrate
from .serve import STOP_WITHIN
from .settings import Settings, SettingsError
from .store.keys import revoke_others

KEY_NAME = "make run"
MAKE_RUN = Actor("make run: the local admin key it keeps")  # who its keys' events name
KEY_FILE = "admin-key"


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


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write_key(path: Path, key: str) -> None:
    """Only the owner may read the key: it opens every endpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.replace(tmp, path)


async def admin_key(conn: asyncpg.Connection, path: Path) -> str:
    """The admin key `make run` prints: the one saved by the last start while it still works, else a new
    one. Either way it is left the only active `make run` key, so restarts do not pile keys up."""
    key = _read_key(path)
    key_id = await active_key_id(conn, key) if key else None
    if key is None or key_id is None:
        key_id, key = await create_key(conn, "admin", KEY_NAME, actor=MAKE_RUN)
        _write_key(path, key)
    revoked = await revoke_others(conn, "admin", KEY_NAME, key_id, MAKE_RUN)
    if revoked:
        print(f"revoked {len(revoked)} earlier `make run` admin key(s)", file=sys.stderr)
    return key


async def _prepare(settings: Settings, key_file: Path) -> str:
    conn = await _connect_creating(settings.database_url or "")
    try:
        await migrate(conn)
        print(await load_demo(conn, only_if_empty=True), file=sys.stderr)
        return await admin_key(conn, key_file)
    finally:
        await conn.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve_until_stopped(command: list[str], env: dict[str, str], banner: str) -> int:
    """Start the server, print the banner and wait for the server. A stop signal is passed on to it
    and the wait goes on: raising from a signal handler in the middle of `Popen.wait` can leave its
    internal lock held, and every later wait then spins to its timeout while the server is long gone.
    A repeat is not passed on again; a server still running STOP_WITHIN + 5 s after the first is killed."""
    stopped_at: list[float] = []
    server: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: object) -> None:
        if not stopped_at:
            stopped_at.append(time.monotonic())
            if server:
                server[0].terminate()

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    # Started before the banner: a stop that follows the banner then always reaches it.
    proc = subprocess.Popen(command, env=env)
    server.append(proc)
    if stopped_at:  # the stop came while it was being started
        proc.terminate()
    print(banner, file=sys.stderr, flush=True)
    while True:
        try:
            code = proc.wait(timeout=0.5)
            return 0 if stopped_at else code
        except subprocess.TimeoutExpired:
            if stopped_at and time.monotonic() - stopped_at[0] > STOP_WITHIN + 5:
                proc.kill()  # serve itself kills a worker stuck past STOP_WITHIN; this is for serve stuck too


def _banner(settings: Settings, key: str, key_file: Path, started: bool) -> str:
    url = f"http://{settings.host}:{settings.port}"
    return f"""
Contact gateway on {url}  (Ctrl-C stops it{"" if not started else " and the embedded services"})
Admin key (kept in {key_file} for the next start): {key}
Try:
  curl {url}/readyz
  curl -H 'Authorization: Bearer {key}' {url}/v1/customers/1
  curl -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
       -d '{{"channel": "phone", "from": "07700 900003"}}' {url}/v1/contacts
Restriction steps are taken by people, each with a key of their own (the admin key is no one's):
  python -m gateway keys create --staff ID      (staff ids: curl -H 'Authorization: Bearer {key}' {url}/v1/staff/1)
External services: DATABASE_URL=postgresql://... REDIS_URL=redis://... make run
"""


def main() -> int:
    # Ctrl-C and a plain `kill` both stop the gateway and, if we started them, the services. Until the
    # server runs, a stop raises here; from then on it is passed on to the server (_serve_until_stopped).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    base = Path(os.environ.get("GATEWAY_EMBEDDED_DIR", ".gateway"))
    try:
        env, started = embedded.ensure(base)
    except KeyboardInterrupt:
        return 130
    try:
        return _start(base, env, started)
    except KeyboardInterrupt:  # stopped before the server ran
        return 130
    finally:
        if started:
            embedded.stop(base)
            print("embedded services stopped", file=sys.stderr)


def _start(base: Path, env: dict[str, str], started: bool) -> int:
    # The demo provider's name, address and contact details, unless the caller set their own.
    env = {**PROVIDER_SETTINGS, **env} if not any(k.startswith("GATEWAY_PROVIDER_") for k in env) else env
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:  # one line naming the setting, as `python -m gateway` gives it
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        key = asyncio.run(_prepare(settings, base / KEY_FILE))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"cannot prepare the database at {settings.database_url}: {exc}", file=sys.stderr)
        return 3
    command = [sys.executable, "-m", "gateway", "serve"]
    return _serve_until_stopped(command, env, _banner(settings, key, base / KEY_FILE, started))


if __name__ == "__main__":
    raise SystemExit(main())
