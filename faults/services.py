"""The fault run's own PostgreSQL, Redis and gateway, all under one temporary directory.

Nothing here touches the developer's ./.gateway/ services or the system ones: each process is found
by the pid file in this run's directory, so killing it disturbs nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.servers import Server, free_port, wait_ready
from gateway import db, embedded
from gateway.auth import create_key
from gateway.lifecycle import Actor
from gateway.migrate import migrate


@dataclass
class Services:
    """PostgreSQL and Redis under `base`, and the gateway serving from them."""

    base: Path
    database_url: str = ""
    redis_url: str = ""
    gateway: Server | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.base / "gateway.log"

    @property
    def spool_dir(self) -> Path:
        return self.base / "spool"

    def start_postgres(self) -> None:
        self.database_url = embedded.start_postgres(self.base)

    def start_redis(self) -> None:
        self.redis_url = embedded.start_redis(self.base)

    def postgres_pids(self) -> list[int]:
        """The postmaster first, then every process it started (backends, checkpointer, ...)."""
        pidfile = self.base / "pg" / "data" / "postmaster.pid"
        try:
            master = psutil.Process(int(pidfile.read_text().split()[0]))
            return [master.pid, *(c.pid for c in master.children(recursive=True))]
        except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess):
            return []

    def redis_pid(self) -> int | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int((self.base / "redis" / "redis.pid").read_text().strip())
            if psutil.pid_exists(pid):
                return pid
        return None

    def listening_workers(self) -> int:
        """Live workers of the gateway listening on its port (a just-killed one may linger as a zombie)."""
        assert self.gateway is not None
        count = 0
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.gateway.proc.pid).children():
                with contextlib.suppress(psutil.NoSuchProcess):  # ZombieProcess is one
                    if "spawn_main" not in " ".join(child.cmdline()):
                        continue
                    conns = child.net_connections(kind="tcp")
                    count += any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.gateway.port for c in conns)
        return count

    def spooled_files(self) -> int:
        return len(list(self.spool_dir.glob("contacts-*"))) if self.spool_dir.exists() else 0

    def quarantined(self) -> int:
        """Records the gateway could not write and set aside (the spool's quarantine.jsonl)."""
        path = self.spool_dir / "quarantine.jsonl"
        return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0

    async def prepare(self) -> str:
        """Migrate the run's database and return a new channel API key."""
        conn = await db.connect(self.database_url)
        try:
            await migrate(conn)
            return (await create_key(conn, "channel", "faults", actor=Actor("make faults")))[1]
        finally:
            await conn.close()

    def start_gateway(self, workers: int) -> float:
        """`python -m gateway serve` with its stderr (JSON log lines) in gateway.log; seconds to ready."""
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_WORKERS": str(workers),
            "GATEWAY_SPOOL_DIR": str(self.spool_dir),
            "GATEWAY_LOG_LEVEL": "INFO",
        }
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log
            )
        self.gateway = Server(proc, port, workers)
        return wait_ready(self.gateway, 120)

    def stop(self) -> None:
        """Everything this run started, even a PostgreSQL left frozen by an interrupted hang."""
        if self.gateway is not None:
            self.gateway.stop()
        for pid in self.postgres_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        embedded.stop(self.base)
        time.sleep(0.2)


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """Poll `check()` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def run_query(database_url: str, sql: str, *args: object) -> list[dict[str, Any]]:
    """One query on a fresh connection (the harness is synchronous; the gateway's pools are not ours)."""

    async def go() -> list[dict[str, Any]]:
        conn = await db.connect(database_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args, timeout=30)]
        finally:
            await conn.close()

    return asyncio.run(go())
