"""The decide path's long-lived parts, opened with the app: index, its keeper, contact log, rules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from .contactlog import ContactLog
from .decide import DecideService, RulesetHolder
from .index import IndexKeeper, RestrictionIndex
from .rules.ruleset import DEFAULT_RULESET, CompiledRuleSet, compile_ruleset, parse_ruleset
from .state import DECIDER, INDEX, POOL, REDIS, SERVICES, SETTINGS

log = logging.getLogger(__name__)


async def load_published_ruleset(conn: asyncpg.Pool | asyncpg.Connection) -> CompiledRuleSet:
    row = await conn.fetchrow("SELECT version, rules, tests FROM rulesets WHERE published")
    data = DEFAULT_RULESET if row is None else {"version": row["version"], "rules": row["rules"], "tests": row["tests"]}
    return compile_ruleset(parse_ruleset(data))


async def decide_path(app: web.Application) -> AsyncIterator[None]:
    settings, pool = app[SETTINGS], app[POOL]
    tz = ZoneInfo(settings.tz)

    def today() -> date:
        return datetime.now(tz).date()

    index = RestrictionIndex()
    try:
        rules = RulesetHolder(await load_published_ruleset(pool))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("published rule set not readable (%r): the default applies until it is", exc)
        rules = RulesetHolder(compile_ruleset(parse_ruleset(DEFAULT_RULESET)))

    async def on_other(payload: str) -> None:
        if payload == "ruleset":
            rules.compiled = await load_published_ruleset(pool)
            log.info("rule set version %s now in force", rules.compiled.version)

    keeper = IndexKeeper(index, pool, app[REDIS], settings.database_url or "", settings.resync_seconds, today, on_other)
    contact_log = ContactLog(pool, settings)
    decider = DecideService(settings, index, contact_log, app[REDIS], pool, rules)
    contact_log.on_logged(decider.remember)
    contact_log.start()
    await keeper.start()
    app[INDEX] = index
    app[DECIDER] = decider
    app[SERVICES].update(index=index, keeper=keeper, contact_log=contact_log, rules=rules)
    yield
    await keeper.close()
    await contact_log.close()
