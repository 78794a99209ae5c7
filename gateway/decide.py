"""The one decide service every channel goes through: lookup, pure rules, durable log, reply.

Bounded by the settings' deadline: on a fault or a slow dependency the contact is routed to the
general queue with `degraded: true`, and still logged. Idempotent by (channel, provider id):
Redis first, the database's unique key as the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import metrics
from .contact import Decision, InboundContact, degraded_decision
from .contactlog import ContactLog, ContactRecord
from .index import RestrictionIndex
from .redisbatch import RedisBatch
from .rediskeys import BANNER_CHANNEL, COUNTER, IDEMPOTENCY
from .rules.calendar import Calendar
from .rules.context import Context, Match
from .rules.counters import CounterSpec, contact_limit_key, counters_needed, customer_count_key
from .rules.engine import decide as rules_decide
from .rules.params import ContactLimit
from .rules.registry import REGISTRY
from .rules.ruleset import CompiledRuleSet
from .senders import SenderHandle, case_reference, sender_handle
from .settings import Settings

log = logging.getLogger(__name__)
_IDEM_TTL = 7 * 86400
REDIS_BUDGET_SECONDS = 0.1  # a healthy Redis answers in well under a millisecond
REDIS_REST_SECONDS = 5
_PENDING = b"pending"


class IndexNotLoaded(Exception):
    """The restriction index has not loaded (the database was unreachable at start-up)."""


class RulesetHolder:
    """The published rule set of this process; swapped whole when a new version is published."""

    def __init__(self, compiled: CompiledRuleSet) -> None:
        self.compiled = compiled


class DecideService:
    def __init__(
        self,
        settings: Settings,
        index: RestrictionIndex,
        contact_log: ContactLog,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        rules: RulesetHolder,
    ) -> None:
        self.settings, self.index, self.log, self.redis, self.pool = settings, index, contact_log, redis, pool
        self.rules = rules
        self.batch = RedisBatch(redis)
        self._redis_resting_until = 0.0
        self.tz = ZoneInfo(settings.tz)
        self.deadline = settings.decide_deadline_ms / 1000
        self.provider = settings.provider()
        self._calendar: tuple[frozenset[Any], Calendar] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def calendar(self) -> Calendar:
        closures = self.index.closures
        if self._calendar is None or self._calendar[0] is not closures:
            self._calendar = (closures, Calendar(tz=self.tz, closures=closures))
        return self._calendar[1]

    async def decide(self, contact: InboundContact) -> tuple[Decision, bool]:
        """Returns the decision and whether it is new (False: a repeat of an earlier provider id)."""
        started = time.perf_counter()
        received = contact.received_at or datetime.now(UTC)
        contact_id = str(uuid.uuid4())
        handle = sender_handle(contact.channel, contact.sender)
        try:
            # One deadline for the whole check: a retry's earlier answer, or a fresh decision.
            async with asyncio.timeout(self.deadline):
                earlier = await self._earlier(contact) if contact.provider_id else None
                if earlier is not None:
                    return earlier, False
                decision = await self._evaluate(contact, contact_id, handle, received)
        except Exception as exc:  # the safe answer, whatever failed: never hang, never 500
            decision = self._degraded(contact, contact_id, received, exc)
        record = self.record(contact, decision, handle, received, started)
        # Answer only once the row is durable: committed, or spooled if the database is slow.
        appended = await self.log.append(record, wait=self.settings.log_wait_ms / 1000)
        created = True
        if appended.duplicate_of:
            decision, created = Decision.model_validate(appended.duplicate_of), False
        if decision.banner is not None and created:
            self._push_banner(contact, decision)
        metrics.DECISIONS.labels(contact.channel, decision.action).inc()
        metrics.DECIDE_SECONDS.observe(time.perf_counter() - started)
        return decision, created

    def _degraded(self, contact: InboundContact, contact_id: str, received: datetime, exc: Exception) -> Decision:
        why = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        expected = isinstance(
            exc, TimeoutError | RedisError | OSError | asyncpg.PostgresConnectionError | IndexNotLoaded
        )
        log.warning("decide degraded (%s) for a %s contact", why, contact.channel, exc_info=not expected)
        metrics.DEGRADED.labels(why).inc()
        decision = degraded_decision(contact_id, f"restriction check unavailable ({why})")
        decision.received_at = received
        return decision

    async def _evaluate(
        self, contact: InboundContact, contact_id: str, handle: SenderHandle, received: datetime
    ) -> Decision:
        if not self.index.loaded:
            raise IndexNotLoaded("restriction index not loaded yet")
        match = self.index.match(handle.kind, handle.value, withheld=handle.withheld, on_behalf_of=contact.on_behalf_of)
        compiled = self.rules.compiled
        specs = counters_needed(compiled, match.bundles, received, self.tz, contact.channel) if match.bundles else []
        counts = await self._count(specs, match, received) if specs else {}
        ctx = Context(
            match=match,
            ruleset=compiled,
            kinds=REGISTRY,
            staff=self.index.staff,
            calendar=self.calendar(),
            counts=counts,
            case=self.index.case(case_reference(contact.case_ref, contact.subject)),
            appointment=contact.appointment,
            provider=self.provider,
        )
        verdict = rules_decide(contact, ctx, received)
        return verdict.to_decision(contact_id, received_at=received)

    def _redis_usable(self) -> bool:
        return asyncio.get_running_loop().time() >= self._redis_resting_until

    def _redis_failed(self, exc: BaseException) -> None:
        """Leave Redis alone for a few seconds (callers use the database), so a hung Redis cannot
        eat every contact's deadline."""
        self._redis_resting_until = asyncio.get_running_loop().time() + REDIS_REST_SECONDS
        log.warning("Redis unavailable (%r): using the database for %d s", exc, REDIS_REST_SECONDS)

    async def _count(self, specs: list[CounterSpec], match: Match, now: datetime) -> dict[str, int]:
        """Increment this contact's counters: Redis, or a count of the log when Redis is down."""
        if self._redis_usable():
            try:
                async with asyncio.timeout(REDIS_BUDGET_SECONDS):
                    results = await asyncio.gather(
                        *(
                            self.batch.call(cmd, COUNTER + s.key, *extra)
                            for s in specs
                            for cmd, extra in (("incr", ()), ("expire", (s.ttl_seconds,)))
                        )
                    )
                return {s.key: int(results[2 * i]) for i, s in enumerate(specs)}
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_failed(exc)
        owners = counter_owners(self.rules.compiled, match, now, self.tz)
        counts = {}
        for s in specs:
            customer_id, period = owners[s.key]
            counts[s.key] = 1 + int(
                await self.pool.fetchval(
                    """SELECT count(*) FROM contacts WHERE customer_ids @> ARRAY[$1::bigint] AND received_at >= $2
                   AND status = 'decided'""",
                    customer_id,
                    period_start(period, now, self.tz),
                )
            )
        return counts

    async def _earlier(self, contact: InboundContact) -> Decision | None:
        """A decision already given for this provider id, waiting briefly for one in flight."""
        key = f"{IDEMPOTENCY}{contact.channel}:{contact.provider_id}"
        if self._redis_usable():
            try:
                async with asyncio.timeout(REDIS_BUDGET_SECONDS):
                    claimed = await self.batch.call("set", key, _PENDING, nx=True, ex=_IDEM_TTL)
                if claimed:
                    return None
                while True:  # another request holds it: wait for its answer, within the deadline
                    value = await self.batch.call("get", key)
                    if value and value != _PENDING:
                        return Decision.model_validate_json(value)
                    await asyncio.sleep(0.005)
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_failed(exc)
        try:
            row = await self.pool.fetchval(
                "SELECT decision FROM contact_provider_ids WHERE channel = $1 AND provider_id = $2",
                contact.channel,
                contact.provider_id,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None  # the writer's unique key is the last word
        return Decision.model_validate(row) if row else None

    def _push_banner(self, contact: InboundContact, decision: Decision) -> None:
        """Fan the banner out to agent screens after the reply; a lost push costs nothing durable."""
        event = {
            "contact_id": decision.contact_id,
            "channel": contact.channel,
            "customer_ids": decision.matched.customer_ids,
            "target": decision.target.model_dump() if decision.target else None,
            "action": decision.action,
            "banner": decision.banner.model_dump(mode="json") if decision.banner else None,
        }
        self._background_task(self._publish_banner(json.dumps(event)))

    def _background_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Work the caller need not wait for (Redis fan-out); failures there lose nothing durable."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish_banner(self, payload: str) -> None:
        try:
            await self.redis.publish(BANNER_CHANNEL, payload)
        except (RedisError, OSError) as exc:
            log.debug("banner push failed: %r", exc)

    async def remember(self, records: list[ContactRecord]) -> None:
        """Contact-log hook: once a batch commits, its decisions answer retries (one Redis round trip)."""
        keyed = [r for r in records if r.provider_id and r.decision]
        if not keyed:
            return
        with contextlib.suppress(RedisError, OSError):  # the database holds them too
            pipe = self.redis.pipeline(transaction=False)
            for r in keyed:
                pipe.set(f"{IDEMPOTENCY}{r.channel}:{r.provider_id}", json.dumps(r.decision), ex=_IDEM_TTL)
            await pipe.execute()

    def record(
        self,
        contact: InboundContact,
        decision: Decision,
        handle: SenderHandle,
        received: datetime,
        started: float,
        *,
        status: str = "decided",
        error: str | None = None,
    ) -> ContactRecord:
        m = decision.matched
        return ContactRecord(
            id=uuid.UUID(decision.contact_id),
            received_at=received,
            channel=contact.channel,
            action=decision.action,
            status=status,
            sender_raw=contact.sender[:320] or None,
            sender_kind=handle.log_kind,
            sender=handle.value,
            recipient=contact.to,
            provider_id=contact.provider_id,
            subject=(contact.subject or None) and contact.subject[:500],
            body_excerpt=(contact.body or None) and contact.body[:2000],
            customer_ids=list(m.customer_ids),
            case_id=m.case_id,
            case_ref=case_reference(contact.case_ref, contact.subject),
            on_behalf_of=contact.on_behalf_of,
            representative_of=list(m.representative_of),
            ambiguous=m.ambiguous,
            target=decision.target.model_dump() if decision.target else None,
            flagged=decision.flagged,
            banner=decision.banner.model_dump(mode="json") if decision.banner else None,
            customer_message=decision.customer_message,
            reasons=[r.model_dump() for r in decision.reasons],
            ruleset_version=decision.ruleset_version,
            degraded=decision.degraded,
            latency_us=int((time.perf_counter() - started) * 1e6),
            error=error,
            decision=decision.model_dump(mode="json"),
        )


def counter_owners(compiled: CompiledRuleSet, match: Match, now: datetime, tz: ZoneInfo) -> dict[str, tuple[int, str]]:
    """counter key → (customer id, period), to count the log instead when Redis is down."""
    owners: dict[str, tuple[int, str]] = {}
    for b in match.bundles:
        for r in b.restrictions:
            if isinstance(r.params, ContactLimit):
                owners[contact_limit_key(r, now, tz)] = (b.customer.id, r.params.period)
        for period in compiled.periods:
            owners[customer_count_key(b.customer.id, period, now, tz)] = (b.customer.id, period)
    return owners


def period_start(period: str, now: datetime, tz: ZoneInfo) -> datetime:
    local = now.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=local.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.replace(tzinfo=None).replace(tzinfo=tz)


async def log_rejected(
    service: DecideService, *, channel: str, sender: str, provider_id: str | None, status: str, error: str
) -> None:
    """Log a contact we could not decide (malformed or refused) so that nothing is lost."""
    contact_id = uuid.uuid4()
    # Raw caller input: make it storable text (lone surrogates and NULs would fail the log write).
    sender, error = (v.encode("utf-8", "replace").decode("utf-8") for v in (sender, error))
    record = ContactRecord(
        id=contact_id,
        received_at=datetime.now(UTC),
        channel=channel[:32] or "unknown",
        action="hold",
        status=status,
        sender_raw=sender[:320] or None,
        # Kept for finding the attempt; a refused attempt never claims the id, so a good retry is decided.
        provider_id=provider_id[:200] if provider_id else None,
        error=error[:2000],
    )
    await service.log.append(record, wait=service.settings.log_wait_ms / 1000)
