"""The four faults, each done to this run's own processes; each returns the window it lasted.

The window runs from the first signal sent to the moment the service is whole again (PostgreSQL
accepting connections, Redis answering, a replacement worker listening).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from .services import Services, wait_until

FAULTS = ("pg-kill", "pg-hang", "redis-kill", "worker-kill")


@dataclass(frozen=True)
class Window:
    start: float  # wall-clock seconds
    end: float
    what: str


@dataclass(frozen=True)
class Timings:
    pg_down: float  # seconds between the kill -9 and pg_ctl start
    hang: float
    redis_down: float


def say(fault: str, text: str) -> None:
    print(f"  [{fault}] {text}", file=sys.stderr, flush=True)


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def pg_kill(services: Services, timings: Timings) -> Window:
    pids = services.postgres_pids()
    if not pids:
        raise RuntimeError("no PostgreSQL postmaster found for this run")
    start = time.time()
    _signal_all(pids, signal.SIGKILL)
    if not wait_until(lambda: all(_gone(p) for p in pids), 30):
        raise RuntimeError(f"PostgreSQL processes {pids} survived SIGKILL")
    say("pg-kill", f"SIGKILL to postmaster {pids[0]} and {len(pids) - 1} children; down for {timings.pg_down:.0f} s")
    time.sleep(timings.pg_down)
    services.start_postgres()  # pg_ctl start -w: returns once crash recovery is done and it accepts connections
    end = time.time()
    say("pg-kill", f"pg_ctl start: accepting connections {end - start:.1f} s after the kill")
    return Window(start, end, "PostgreSQL killed and restarted")


def pg_hang(services: Services, timings: Timings) -> Window:
    pids = services.postgres_pids()
    if not pids:
        raise RuntimeError("no PostgreSQL postmaster found for this run")
    start = time.time()
    # The postmaster first, so it cannot start a backend we would then miss.
    _signal_all(pids, signal.SIGSTOP)
    late = [p for p in services.postgres_pids() if p not in pids]
    _signal_all(late, signal.SIGSTOP)
    say("pg-hang", f"SIGSTOP to {len(pids) + len(late)} PostgreSQL processes for {timings.hang:.0f} s")
    try:
        time.sleep(timings.hang)
    finally:
        _signal_all(services.postgres_pids(), signal.SIGCONT)
    end = time.time()
    say("pg-hang", "SIGCONT: PostgreSQL running again")
    return Window(start, end, "PostgreSQL frozen")


def redis_kill(services: Services, timings: Timings) -> Window:
    pid = services.redis_pid()
    if pid is None:
        raise RuntimeError("no Redis found for this run")
    start = time.time()
    os.kill(pid, signal.SIGKILL)
    if not wait_until(lambda: _gone(pid), 30):
        raise RuntimeError(f"Redis {pid} survived SIGKILL")
    say("redis-kill", f"SIGKILL to Redis {pid}; down for {timings.redis_down:.0f} s")
    time.sleep(timings.redis_down)
    services.start_redis()  # same port (kept in the run's port file), empty: no persistence
    end = time.time()
    say("redis-kill", f"Redis restarted (empty) {end - start:.1f} s after the kill")
    return Window(start, end, "Redis killed and restarted")


def worker_kill(services: Services, timings: Timings) -> Window:
    gateway = services.gateway
    assert gateway is not None
    victim = gateway.worker_pids()[0]
    start = time.time()
    os.kill(victim, signal.SIGKILL)
    say("worker-kill", f"SIGKILL to worker {victim}")
    replaced = wait_until(lambda: _gone(victim) and services.listening_workers() == gateway.workers, 120, 0.05)
    end = time.time()
    if not replaced:
        say("worker-kill", "no replacement worker listening after 120 s")
    else:
        say("worker-kill", f"replacement worker listening {end - start:.1f} s after the kill")
    return Window(start, end, "one gateway worker killed")


INJECT: dict[str, Callable[[Services, Timings], Window]] = {
    "pg-kill": pg_kill,
    "pg-hang": pg_hang,
    "redis-kill": redis_kill,
    "worker-kill": worker_kill,
}
