"""One rule-set simulation job, run in its own process: `python -m gateway simulate JOB`.

The API records the job and starts this process; it replays the contact log (gateway.decide.simulate),
writes its progress every few thousand contacts and the impact report at the end, or the error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import db
from .decide.simulate import SimulationParams, simulate
from .rules.calendar import Calendar
from .rules.compiled import compile_ruleset
from .rules.ruleset import parse_ruleset
from .settings import Settings
from .store import rulesets as store

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


async def run_job(dsn: str, job: int, calendar: Calendar) -> int:
    """Run the recorded job to the end; 0 when it finished (its row says done or failed)."""
    conn, progress_conn = await db.connect(dsn), await db.connect(dsn)
    try:
        found = await store.get_simulation(conn, job)
        if found is None:
            print(f"simulate: there is no simulation {job}", file=sys.stderr)
            return 1
        try:
            draft = compile_ruleset(parse_ruleset(await store.ruleset_data(conn, found["version"])))
            against = compile_ruleset(parse_ruleset(await store.ruleset_data(conn, found["against"])))
            params = SimulationParams.model_validate(found["params"])

            async def progress(done: int, total: int) -> None:
                await store.simulation_progress(progress_conn, job, done, total)

            result = await simulate(conn, draft, against, params, datetime.now(UTC), calendar, progress)
        except Exception as exc:  # the job says it failed, and why; the manager can run it again
            log.exception("simulation %s failed", job)
            await store.finish_simulation(progress_conn, job, None, f"{type(exc).__name__}: {exc}"[:2000])
            return 0
        await store.finish_simulation(progress_conn, job, result)
        return 0
    finally:
        await conn.close()
        await progress_conn.close()


async def start_job_process(settings: Settings, job: int) -> asyncio.subprocess.Process:
    """Start the job's own process, with this process's services and time zone."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "GATEWAY_TZ": settings.tz,
        "GATEWAY_BANK_HOLIDAYS": settings.bank_holidays,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "simulate",
        str(job),
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
