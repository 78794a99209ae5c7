"""Starting and watching the servers under test: the gateway (`python -m gateway serve`) and the floor."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from gateway.serve import STOP_WITHIN

from .load import settle
from .profile import cpu_seconds, used_since
from .wrk import WrkResult, run_wrk


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process tree: the parent and its spawned workers."""

    proc: subprocess.Popen[bytes]
    port: int
    workers: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The processes that serve: the spawned workers, or with one worker the serve process itself."""
        parent = psutil.Process(self.proc.pid)
        spawned = [c.pid for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
        return spawned or ([self.proc.pid] if self.workers == 1 else [])

    def listening_pids(self) -> set[int]:
        out = set()
        for pid in self.worker_pids():
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in conns):
                out.add(pid)
        return out

    def rss_mb(self) -> list[float]:
        return [psutil.Process(pid).memory_info().rss / 2**20 for pid in self.worker_pids()]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(STOP_WITHIN + 5)  # serve kills a stuck worker itself after STOP_WITHIN
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(server: Server, timeout: float = 180.0) -> float:
    """Seconds from launch until every worker listens and /readyz answers 200.

    A worker binds its socket only after its start-up (index load) completes, so "every worker
    listening" means every worker has its index loaded.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server on port {server.port} exited with {server.proc.returncode}")
        if len(server.listening_pids()) == server.workers and _ready(server.url):
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"server on port {server.port} not ready after {timeout:.0f} s")


def start_gateway(env: Mapping[str, str], workers: int) -> tuple[Server, float]:
    port = free_port()
    full_env = {
        **env,
        "GATEWAY_PORT": str(port),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_WORKERS": str(workers),
        "GATEWAY_LOG_LEVEL": env.get("GATEWAY_LOG_LEVEL", "WARNING"),
    }
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=full_env, stdout=subprocess.DEVNULL)
    server = Server(proc, port, workers)
    return server, _ready_or_stopped(server, 180.0)


def start_floor(workers: int) -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", "--port", str(port), "--workers", str(workers)], env=dict(os.environ)
    )
    server = Server(proc, port, workers)
    _ready_or_stopped(server, 30.0)
    return server


def _ready_or_stopped(server: Server, timeout: float) -> float:
    """Seconds until ready; a server that never gets ready is stopped, not left running."""
    try:
        return wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise


async def saturate(
    env: Mapping[str, str],
    database_url: str,
    path: str,
    warm: Path,
    script: Path,
    args: Any,
    then: Callable[[Server], Awaitable[None]] | None = None,
) -> tuple[WrkResult, float, datetime]:
    """A gateway started on `env`, warmed with one script, then saturated on `path` with another
    for `args.seconds`: wrk's result, the workers' CPU seconds meanwhile, and when the phase began
    (for the log check). `then`, if given, runs on the same gateway before it stops."""
    server, _ = start_gateway(env, args.workers)
    try:
        run_wrk(server.url + path, warm, seconds=2, connections=args.connections)
        await settle(database_url)
        since = datetime.now(UTC) - timedelta(seconds=1)
        workers = server.worker_pids()
        before = cpu_seconds(workers)
        result = run_wrk(server.url + path, script, seconds=args.seconds, connections=args.connections)
        used = used_since(before, cpu_seconds(workers))
        await asyncio.sleep(1.0)  # let the requests wrk cut off at its deadline commit
        if then is not None:
            await settle(database_url)
            await then(server)
    finally:
        server.stop()
    return result, used, since
