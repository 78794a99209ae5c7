"""Managers authoring rule sets, for the API and the console alike: parse an edit, validate it
(precise paths and the guardrail report), run its tests, publish or roll back, diff, simulate."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
import yaml
from aiohttp import web

from .appkeys import POOL, REDIS, SETTINGS
from .decide.guardrails import guardrail_report
from .decide.ruletests import CaseResult, run_ruleset_tests
from .decide.simulate import SimulationParams
from .errors import FieldInvalid, RuleConflict, StateConflict
from .invalidation import publish
from .models.rulesets import NOTE_MAX
from .rules.calendar import Calendar
from .rules.compiled import CompiledRuleSet, compile_ruleset
from .rules.diff import diff_rulesets
from .rules.ruleset import RuleSet, RuleSetError, parse_ruleset
from .runtime import RUNTIME, load_published_ruleset
from .settings import Settings
from .simjob import start_job_process
from .store import rulesets as store

log = logging.getLogger(__name__)
# The simulation processes this process started, watched until they end (so none is left a zombie).
_JOBS: set[asyncio.Task[None]] = set()
# At most this many simulations at once (each takes a core); a 'running' row older than the window
# belongs to a process that was lost, and no longer counts.
MAX_RUNNING, RUNNING_WINDOW_MINUTES = 2, 30


def parse_edit(version: int, data: Any) -> tuple[RuleSet, str | None]:
    """An edit's body ({rules, tests, note}) as a valid rule set; RuleSetError lists every path."""
    if not isinstance(data, dict):
        raise RuleSetError([{"field": "(root)", "message": "the body must be an object with rules and tests"}])
    data = dict(data)
    note = data.pop("note", None)
    data.pop("version", None)
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        raise RuleSetError([{"field": "note", "message": f"must be text of at most {NOTE_MAX} characters"}])
    return parse_ruleset({**data, "version": version}), note


def stored_form(ruleset: RuleSet) -> dict[str, Any]:
    """{rules, tests} as stored and shown: fields in their model order, defaults left out, `from` as sent."""
    data = ruleset.model_dump(mode="json", by_alias=True, exclude_defaults=True, include={"rules", "tests"})
    tests = data.get("tests", [])
    for case, model in zip(tests, ruleset.tests, strict=True):  # a restriction's kind names its params
        for given, restriction in zip(
            case.get("situation", {}).get("restrictions", []), model.situation.restrictions, strict=True
        ):
            given["params"] = {"kind": restriction.params.kind, **given.get("params", {})}
    return {"rules": data.get("rules", []), "tests": tests}


def as_yaml(version: dict[str, Any]) -> str:
    """A stored version's rules and tests as YAML, for people."""
    ruleset = parse_ruleset({"version": version["version"], "rules": version["rules"], "tests": version["tests"]})
    return yaml.safe_dump(stored_form(ruleset), sort_keys=False, allow_unicode=True, width=100)


async def load_version(conn: asyncpg.Pool | asyncpg.Connection, version: int) -> RuleSet:
    return parse_ruleset(await store.ruleset_data(conn, version))


def test_report(compiled: CompiledRuleSet, calendar: Calendar, now: datetime | None = None) -> dict[str, Any]:
    """The version's test cases run in `calendar` (the provider's: Settings.calendar)."""
    results = run_ruleset_tests(compiled, None, now or datetime.now(UTC), calendar)
    return {
        "version": compiled.version,
        "passed": all(r.passed for r in results),
        "total": len(results),
        "failed": sum(1 for r in results if not r.passed),
        "results": [_result(r) for r in results],
    }


def _result(r: CaseResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "passed": r.passed,
        "problems": list(r.problems),
        "action": r.action,
        "target": r.target.model_dump() if r.target else None,
        "flagged": r.flagged,
        "reasons": [x.model_dump() for x in r.reasons],
    }


def validation_report(ruleset: RuleSet) -> dict[str, Any]:
    compiled = compile_ruleset(ruleset)
    return {"version": compiled.version, "valid": True, "errors": [], "guardrails": guardrail_report(ruleset)}


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason or len(reason) > 1000:
        raise FieldInvalid("reason", "say why, in 1 to 1000 characters")
    return reason


async def put_in_force(
    app: web.Application, version: int, reason: str, actor: str, *, rollback: bool
) -> dict[str, Any]:
    """Publish a draft whose tests all pass, or roll back to an earlier published version; every
    gateway process is told (Redis now, NOTIFY at commit) and this one switches at once."""
    pool = app[POOL]
    reason = _reason(reason)
    compiled = compile_ruleset(await load_version(pool, version))
    if not rollback:
        report = test_report(compiled, app[SETTINGS].calendar())
        if not report["passed"]:
            raise RuleConflict(
                f"{report['failed']} of {report['total']} test case(s) fail: all must pass to publish",
                report,
                code="tests_failed",
            )
    async with pool.acquire() as conn:
        previous = await store.put_in_force(conn, version, reason, actor, rollback=rollback)
    await publish(app[REDIS], "ruleset")
    runtime = app.get(RUNTIME)
    if runtime is not None:
        runtime.rules.compiled = await load_published_ruleset(pool)
    return {"version": version, "previous": previous, "reason": reason, "by": actor, "rolled_back": rollback}


async def diff(pool: asyncpg.Pool, old: int, new: int) -> dict[str, Any]:
    return diff_rulesets(await load_version(pool, old), await load_version(pool, new))


async def start_simulation(
    pool: asyncpg.Pool, settings: Settings, version: int, params: SimulationParams, actor: str
) -> int:
    """Record the job and start its process; returns the job id to poll."""
    await load_version(pool, version)  # exists and parses
    against = params.against
    if against is None:
        published = await store.published_ruleset(pool)
        against = int(published["version"]) if published else 1
    await load_version(pool, against)
    async with pool.acquire() as conn:
        job = await store.start_simulation(
            conn, version, against, params.model_dump(), actor, most=MAX_RUNNING, window=RUNNING_WINDOW_MINUTES
        )
    if job is None:
        raise StateConflict(
            f"{MAX_RUNNING} simulations are running already: wait for one to finish", code="simulations_busy"
        )
    task = asyncio.create_task(_run_and_watch(pool, settings, job))
    _JOBS.add(task)
    task.add_done_callback(_JOBS.discard)
    return job


async def _run_and_watch(pool: asyncpg.Pool, settings: Settings, job: int) -> None:
    """Start the job's process; if it ends without recording how it went, record that it failed."""
    try:
        code = await (await start_job_process(settings, job)).wait()
    except OSError as exc:
        code, why = -1, f"the simulation process could not start: {exc}"
    else:
        why = f"the simulation process ended with exit code {code}"
    if code != 0:
        try:
            await store.fail_if_running(pool, job, why)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # shutting down, or no database
            log.warning("simulation %s: %s; could not record it (%r)", job, why, exc)
