"""Running the gateway in tests (in this process or as child processes) and waiting on what it does.

Test data is built in tests/factory.py."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.demo import load_demo
from gateway.edge import Edge
from gateway.serve import serve_app
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 2.0) -> float:
    """Poll until `check` holds; returns the seconds it took. Fails the test after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        if await check():
            return loop.time() - start
        if loop.time() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


async def logged_contacts(conn: asyncpg.Connection, where: str, *args: Any) -> list[asyncpg.Record]:
    """Contact log rows; the log commits in groups, so give it a moment to arrive."""
    found: list[asyncpg.Record] = []
    for _ in range(50):
        found = await conn.fetch(f"SELECT * FROM contacts WHERE {where}", *args)
        if found:
            return found
        await asyncio.sleep(0.02)
    return found


@asynccontextmanager
async def running(
    settings: Settings, conn: asyncpg.Connection, *, demo: bool = True
) -> AsyncIterator[tuple[TestClient[Any, Any], web.Application]]:
    """An app on these settings. The demo data goes in first, so the index loads it at start-up:
    no waiting on invalidations."""
    if demo:
        await load_demo(conn)
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        yield client, app


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[int, Edge]]:
    """A worker as `gateway serve` runs one, the lean edge in front: the port it listens on, and its edge."""
    settings = replace(settings, port=0)
    started: asyncio.Future[tuple[int, Edge | None]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_app(create_app(settings), settings, started=started))
    try:
        port, edge = await asyncio.wait_for(started, 60)
        assert edge is not None
        yield port, edge
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def staff_numbers(conn: asyncpg.Connection, name: str) -> dict[str, str]:
    """A member of staff's id and the numbers a call to them is put through to."""
    row = await conn.fetchrow("SELECT id, line, voicemail FROM staff WHERE name = $1", name)
    return {"id": str(row["id"]), "staff": row["line"], "voicemail": row["voicemail"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listen_port() -> int:
    """A free port below the kernel's ephemeral range, for a server that binds it later, and again
    in every test of a module (the mail filter Postfix is configured to call). One from that range
    can meanwhile become an outgoing connection's source port, and the next bind then fails."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    for _ in range(100):
        port = random.randrange(10_000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class GatewayProcess:
    """`python -m gateway serve` as a real child process on its own port."""

    def __init__(self, settings: Settings, log: Path | None = None, **env: str) -> None:
        """`log`: where the process's standard error goes (a test that fails can show it)."""
        self.port = free_port()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_SPOOL_DIR": settings.spool_dir + f"-{self.port}",
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> GatewayProcess:
        with open(self.log or os.devnull, "ab") as stderr:  # the child keeps its own copy
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway",
                "serve",
                env=self.env,
                cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        async with aiohttp.ClientSession() as s:

            async def ready() -> bool:
                try:
                    async with s.get(self.url + "/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)


def via_proxy(url: str, port: int) -> str:
    """The database URL reached through a local TCP proxy on `port` (see the `proxy` fixture)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


async def run_cli(env: dict[str, str], *args: str) -> tuple[int | None, str, str]:
    """`python -m gateway ARGS` as a child process: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()
