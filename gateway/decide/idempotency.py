"""The one place that knows whether a provider id was answered before.

A retry of a provider id (Twilio and Amazon Connect retry) gets the answer the first attempt got.
Redis holds the claim and then the answer; the contact log's unique key on (channel, provider id)
is the backstop that settles any race Redis could not see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..contact import Decision, InboundContact
from ..contactlog import Appended, ContactRecord
from ..redisbatch import RedisBatch
from ..rediskeys import IDEMPOTENCY
from ..store.contacts import earlier_decision
from .detached import detached
from .redishealth import RedisHealth

TTL_SECONDS = 7 * 86400
PENDING = b"pending"
POLL_SECONDS = 0.005
# The first durable answer for a provider id stands: a later one (an attempt that gave up waiting
# for it) never replaces it, so every retry from then on hears the same answer.
FIRST_ANSWER = """
local v = redis.call('GET', KEYS[1])
if v and v ~= 'pending' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def key(channel: str, provider_id: str) -> str:
    return f"{IDEMPOTENCY}{channel}:{provider_id}"


class Idempotency:
    def __init__(self, redis: aioredis.Redis, batch: RedisBatch, health: RedisHealth, pool: asyncpg.Pool) -> None:
        self.redis, self.batch, self.health, self.pool = redis, batch, health, pool
        self._first_answer = redis.register_script(FIRST_ANSWER)

    async def earlier(self, contact: InboundContact, budget: asyncio.Timeout, patience: float) -> Decision | None:
        """The answer already given for this provider id; None: ours to decide.

        When another attempt holds the claim, its answer is waited for beyond the caller's budget,
        up to `patience` (long enough for that attempt to be decided and made durable, even on the
        spool): answering a retry on its own would acknowledge a second contact id for one contact.
        """
        if not contact.provider_id:
            return None
        k = key(contact.channel, contact.provider_id)
        if self.health.usable():
            try:
                async with asyncio.timeout(self.health.budget):
                    claimed = await self.batch.call("set", k, PENDING, nx=True, ex=TTL_SECONDS)
                if claimed:
                    return None
            except (RedisError, OSError, TimeoutError) as exc:
                self.health.failed(exc)
            else:
                budget.reschedule(asyncio.get_running_loop().time() + patience)
                return await self._wait_for_answer(k)
        try:  # shielded: the deadline answers the caller; a hung query is left to end on its own
            row = await detached(earlier_decision(self.pool, contact.channel, contact.provider_id))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None  # the writer's unique key is the last word
        return Decision.model_validate(row) if row else None

    async def _wait_for_answer(self, k: str) -> Decision:
        """Another request holds the claim: poll for its answer (the caller's deadline bounds this)."""
        while True:
            value = await self.batch.call("get", k)
            if value and value != PENDING:
                return Decision.model_validate_json(value)
            await asyncio.sleep(POLL_SECONDS)

    @staticmethod
    def settle(decision: Decision, appended: Appended) -> tuple[Decision, bool]:
        """The answer to give once the log has spoken: ours, or the earlier one it already held."""
        if appended.duplicate_of:  # an empty one: the earlier row was forgotten meanwhile; ours stands
            return Decision.model_validate(appended.duplicate_of), False
        return decision, True

    async def remember_answer(self, contact: InboundContact, decision: Decision) -> None:
        """The answer a repeat was given (the log already held one): the next repeat finds it in Redis
        instead of waiting on a claim nobody will answer."""
        if not contact.provider_id:
            return
        args = (decision.model_dump_json(), TTL_SECONDS)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._first_answer(keys=[key(contact.channel, contact.provider_id)], args=args)

    async def remember(self, records: list[ContactRecord]) -> None:
        """Once a batch is durable, its decisions answer retries (one Redis round trip)."""
        keyed = [r for r in records if r.provider_id and r.decision]
        if not keyed:
            return
        with contextlib.suppress(RedisError, OSError):  # the database holds them too
            pipe = self.redis.pipeline(transaction=False)
            for r in keyed:
                assert r.provider_id is not None
                args = (json.dumps(r.decision), TTL_SECONDS)
                await self._first_answer(keys=[key(r.channel, r.provider_id)], args=args, client=pipe)
            await pipe.execute()
