"""Serving: migrate, then run one or more worker processes sharing the port (reuse_port)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
import time

import asyncpg
import uvloop
from aiohttp import web

from . import db, logs
from .app import create_app
from .edge import KEEP_ALIVE, Edge
from .migrate import migrate
from .settings import Settings
from .store import server

log = logging.getLogger(__name__)
RESTART_CHECK_SECONDS = 0.5
# How long the serve process waits for its workers to stop: a worker's worst case is about 20 s
# (requests 5 s, the mail filter 5 s, the contact log's last commits, spooling under way 5 s, the
# last Redis sends).
STOP_WITHIN = 25.0
SHUTDOWN_SECONDS = 5.0  # requests under way at a stop are answered within this


async def _migrate_once(settings: Settings) -> None:
    """Migrate, and say once (not in every worker) up to what rate PostgreSQL's WAL files kept ready
    spare every caller a wait while it makes a new one."""
    conn = await db.connect(settings.database_url or "")
    try:
        applied = await migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        try:
            log.info("%s", (await server.wal_settings(conn)).describe())
        except Exception:  # a line for the operator only: never a reason not to serve
            log.debug("PostgreSQL's WAL settings not read", exc_info=True)
    finally:
        await conn.close()


def _stop_on_the_first_signal(loop: asyncio.AbstractEventLoop) -> None:
    """SIGTERM or SIGINT starts the graceful stop; a repeat is ignored. aiohttp's own handler would
    raise again in the middle of the stop and cut it short, with contacts still being committed or
    spooled (systemd, for one, signals the serve process and every worker, and serve passes it on).
    Set on the loop before the app starts, so a signal during start-up stops it gracefully too."""
    stopping = False

    def on_signal(signum: int) -> None:
        nonlocal stopping
        if stopping:
            log.info("already stopping: %s ignored (SIGKILL stops at once)", signal.Signals(signum).name)
            return
        stopping = True
        raise web.GracefulExit()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


def _worker(settings: Settings, reuse_port: bool) -> None:
    """One worker: the app served until the first SIGTERM or SIGINT, then stopped gracefully (as
    aiohttp's run_app does, with the lean edge in front when it is on)."""
    logs.setup(settings.log_level)
    app = create_app(settings)
    # uvloop: the same asyncio API on libuv, measurably cheaper per request (see bench/RESULTS.md).
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    _stop_on_the_first_signal(loop)
    main = loop.create_task(serve_app(app, settings, reuse_port=reuse_port))
    try:
        try:
            loop.run_until_complete(main)
        except (web.GracefulExit, KeyboardInterrupt):
            pass
        finally:
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError, web.GracefulExit):
                loop.run_until_complete(main)  # the stop (raises again what start-up raised)
    finally:
        _cancel_the_rest(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def serve_app(
    app: web.Application,
    settings: Settings,
    *,
    reuse_port: bool = False,
    started: asyncio.Future[tuple[int, Edge | None]] | None = None,
) -> None:
    """Start the app (its start-up first: a worker listens only once its index is loaded), serve it
    until cancelled, then stop: the edge's answers under way, then aiohttp's, then the app's cleanup.
    `started` receives the port listened on (tests listen on port 0) and the edge."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS, keepalive_timeout=KEEP_ALIVE
    )
    try:
        await runner.setup()  # in the try: what a failed or interrupted start-up opened is closed
        assert runner.server is not None
        edge = Edge(app, runner.server) if settings.lean_edge else None
        factory = edge.protocol if edge is not None else runner.server
        server = await asyncio.get_running_loop().create_server(
            factory, settings.host, settings.port, reuse_port=reuse_port or None, backlog=128
        )
        if started is not None:
            started.set_result((server.sockets[0].getsockname()[1], edge))
        try:
            await asyncio.Future()  # serve until cancelled
        finally:
            _stopping()
            server.close()
            runner.server.pre_shutdown()  # aiohttp's connections take no further request either
            if edge is not None:
                await edge.shutdown(SHUTDOWN_SECONDS)
    finally:
        _stopping()
        await runner.cleanup()


def _stopping() -> None:
    """The stop runs in the task being cancelled: uncancel it, so that what the stop awaits (aiohttp's
    handlers, the app's cleanup) is not cut short by that cancellation."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()


def _cancel_the_rest(loop: asyncio.AbstractEventLoop) -> None:
    """What is still running once the app has stopped is cancelled and let finish (as run_app does)."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("a task failed at shutdown", exc_info=task.exception())


def serve(settings: Settings) -> int:
    settings.require_services()
    try:
        asyncio.run(_migrate_once(settings))
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
        # Better a gateway that answers every call safely (degraded) than none: serve, and say so.
        log.error(
            "database unreachable at start-up (%r): serving degraded decisions until it returns; "
            "migrations were not checked and run on the next start",
            exc,
        )
    print(
        f"contact gateway serving on http://{settings.host}:{settings.port} with {settings.workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    if settings.workers == 1:
        _worker(settings, reuse_port=False)
        return 0
    return _supervise(settings)


def _supervise(settings: Settings) -> int:
    """Run GATEWAY_WORKERS processes on one port; replace any that dies until we are told to stop."""
    ctx = multiprocessing.get_context("spawn")

    def spawn() -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=_worker, args=(settings, True), daemon=False)
        proc.start()
        return proc

    procs = [spawn() for _ in range(settings.workers)]
    stopping = False
    told: set[int | None] = set()

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        _tell(procs, told)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(RESTART_CHECK_SECONDS)
        for i, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                log.error("worker %s exited with %s; starting a replacement", p.pid, p.exitcode)
                procs[i] = spawn()
    _tell(procs, told)  # a replacement started while the signal was being handled was not told yet
    _wait_for(procs)
    return 0


def _tell(procs: list[multiprocessing.process.BaseProcess], told: set[int | None]) -> None:
    """SIGTERM to each live worker, once: a worker stops gracefully on the first and ignores a repeat."""
    for p in procs:
        if p.is_alive() and p.pid not in told:
            told.add(p.pid)
            p.terminate()


def _wait_for(procs: list[multiprocessing.process.BaseProcess]) -> None:
    deadline = time.monotonic() + STOP_WITHIN
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():  # stuck past every budget of its own: nothing answered is lost by stopping it
            log.error("worker %s did not stop within %.0f s; killing it", p.pid, STOP_WITHIN)
            p.kill()
            p.join()


async def replay(settings: Settings) -> int:
    """Replays spooled contacts into the contact log (implemented by the contact log writer)."""
    from .contactlog import replay_spool

    return await replay_spool(settings)
