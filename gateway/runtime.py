"""One Runtime per process: the long-lived services every request and channel shares.

Built top to bottom when the app starts — rule set in force → restriction index and its keeper →
outbox sender → after-commit effects → contact log → decide service — and closed in reverse. Held under one typed
app key, RUNTIME; nothing else wires services together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from .contactlog import ContactLog
from .decide import Contexts, DecideService, RulesInForce
from .decide.counting import Counting
from .decide.effects import Effects
from .decide.idempotency import Idempotency
from .decide.redishealth import RedisHealth
from .index import IndexKeeper, RestrictionIndex
from .outbox import OutboxSender
from .redisbatch import RedisBatch
from .rules.calendar import bank_holidays
from .rules.compiled import CompiledRuleSet, compile_ruleset
from .rules.default_ruleset import DEFAULT_RULESET
from .rules.ruleset import parse_ruleset
from .settings import Settings
from .store.rulesets import published_ruleset
from .waystowrite import WaysToWriteCheck

log = logging.getLogger(__name__)
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def load_published_ruleset(conn: asyncpg.Pool | asyncpg.Connection) -> CompiledRuleSet:
    return compile_ruleset(parse_ruleset(await published_ruleset(conn) or DEFAULT_RULESET))


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    rules: RulesInForce
    index: RestrictionIndex
    keeper: IndexKeeper
    contexts: Contexts
    contact_log: ContactLog
    decide: DecideService
    outbox: OutboxSender
    ways_to_write: WaysToWriteCheck

    @classmethod
    async def open(cls, settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis) -> Runtime:
        tz = ZoneInfo(settings.tz)
        rules = RulesInForce(await _ruleset_or_default(pool))
        index = RestrictionIndex()
        health, batch = RedisHealth(redis), RedisBatch(redis)
        claims = Idempotency(redis, batch, health, pool)
        outbox = OutboxSender(pool, redis, settings)
        effects = Effects(redis, claims, settings, outbox.wake)
        contexts = Contexts(index, rules, settings.calendar, settings.provider())
        contact_log = ContactLog(pool, settings, on_logged=effects.after_commit, claims=claims)
        decide = DecideService(
            settings, index, contexts, claims, Counting(batch, health, pool, tz), contact_log, effects
        )

        def today() -> date:
            return datetime.now(tz).date()

        async def on_message(payload: str) -> None:
            if payload == "ruleset":
                rules.compiled = await load_published_ruleset(pool)
                log.info("rule set version %s now in force", rules.compiled.version)

        keeper = IndexKeeper(
            index, pool, redis, settings.database_url or "", settings.resync_seconds, today, on_message
        )
        ways_to_write = WaysToWriteCheck(index, settings.provider())
        runtime = cls(settings, pool, redis, rules, index, keeper, contexts, contact_log, decide, outbox, ways_to_write)
        contact_log.start()
        outbox.start()
        # The first contact reads the bank holidays, and their library then loads every country's
        # calendar (~280 modules, ~10,000 objects, measured 2026-11-27). Read now, before the index
        # load freezes what the process holds (RestrictionIndex.replace_all), or every full
        # collection walks them: 5–9 ms each, every ~2 s, in a worker under load.
        bank_holidays(today().year, settings.bank_holidays)
        await keeper.start()
        if index.loaded and (said := ways_to_write()):
            log.warning("%s", said)
        return runtime

    async def close(self) -> None:
        """Each part closed in turn, whatever another's close raised: above all the contact log,
        which commits or spools what is queued and gives its connections back to the pool."""
        failed: Exception | None = None
        closes = (self.outbox.close, self.keeper.close, self.decide.refusals.close, self.contact_log.close)
        for close in (*closes, self.decide.claims.close):
            try:
                await close()
            except Exception as exc:
                log.exception("stopping: %s failed; the other parts are closed all the same", close.__qualname__)
                failed = failed or exc
        if failed is not None:
            raise failed
        log.info("stopped: every contact logged or spooled, the last answers sent to Redis")


async def _ruleset_or_default(pool: asyncpg.Pool) -> CompiledRuleSet:
    try:
        return await load_published_ruleset(pool)
    except DATABASE_ERRORS as exc:
        log.warning("published rule set not readable (%r): the default applies until it is", exc)
        return compile_ruleset(parse_ruleset(DEFAULT_RULESET))


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
