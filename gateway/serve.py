"""Serving: migrate, then run one or more worker processes sharing the port (reuse_port)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys

import uvloop
from aiohttp import web

from . import db, logs
from .app import create_app
from .migrate import migrate
from .settings import Settings

log = logging.getLogger(__name__)


async def _migrate_once(settings: Settings) -> None:
    conn = await db.connect(settings.database_url or "")
    try:
        applied = await migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
    finally:
        await conn.close()


def _worker(settings: Settings, reuse_port: bool) -> None:
    logs.setup(settings.log_level)
    app = create_app(settings)
    # uvloop: the same asyncio API on libuv, measurably cheaper per request (see bench/RESULTS.md).
    web.run_app(app, host=settings.host, port=settings.port, reuse_port=reuse_port,
                print=None, access_log=None, handle_signals=True, shutdown_timeout=5,
                loop=uvloop.new_event_loop())


def serve(settings: Settings) -> int:
    settings.require_services()
    asyncio.run(_migrate_once(settings))
    print(f"contact gateway serving on http://{settings.host}:{settings.port} "
          f"with {settings.workers} worker(s)", file=sys.stderr, flush=True)
    if settings.workers == 1:
        _worker(settings, reuse_port=False)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(settings, True), daemon=False) for _ in range(settings.workers)]
    for p in procs:
        p.start()

    def stop(signum: int, frame: object) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()
    return 0


async def replay(settings: Settings) -> int:
    """Replays spooled contacts into the contact log (implemented by the contact log writer)."""
    from .contactlog import replay_spool
    return await replay_spool(settings)
