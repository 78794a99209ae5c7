"""The one place that knows whether a provider id was answered before.

A retry of a provider id (Twilio and Amazon Connect retry) gets the answer the first attempt got.

While PostgreSQL answers, the contact log's batch statement decides: its unique key on (channel,
provider id) claims each provider id as the row is committed, and a retry is answered from the row
already there; a contact costs no Redis round trip. Redis is for when the database may not answer:
every answer made durable is remembered there within REMEMBER_WITHIN (off the reply path, many in one
call), and a record that may go to the spool (its commit slow, failed, or the breaker open) claims
its provider id first (`claim`), so a retry arriving while PostgreSQL hangs or is away finds the
first attempt's claim or answer, and hears that answer. A contact whose decision counts contacts
claims first (`earlier`), so that a retry is not counted twice.

A spooled contact is not in the log yet, so its unique key cannot answer a retry of it: from a
claim for a record that may be spooled (a commit slower than the log's CLAIM_AFTER, a failed one, the
breaker open) until every spool is replayed, the SPOOLED flag is up in Redis, and while it is, every
batch claims its provider ids before it is committed. What is spooled is claimed once more just
before, so a retry committed before the flag was seen (its answer in Redis within REMEMBER_WITHIN)
is answered instead of spooled. What is left: a retry committed at another process within about
REMEMBER_WITHIN of the moment its first attempt is spooled, a transition that needs the database
slow for one process and quick for another at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..contact import Decision, InboundContact
from ..contactlog import AnswerJson, Appended, ContactRecord
from ..redisbatch import RedisBatch
from ..rediskeys import IDEMPOTENCY, SPOOLED
from ..store.contacts import earlier_decision
from .detached import detached, on_connection
from .redishealth import RedisHealth
from .remembered import (
    LUA_HELD,
    TEMPLATE_TTL,
    Template,
    Templates,
    digest_of,
    template_key,
    ttl_for,
    whole,
    with_template,
)

log = logging.getLogger(__name__)

PENDING = b"pending"
POLL_SECONDS = 0.005
# One call: first the templates that answers in it refer to (remembered.py); then the answers of
# records made durable since the last call (the first durable answer for a provider id stands: a
# later one, of an attempt that gave up waiting for it, never replaces it, so every retry from then
# on hears the same answer); then, when the records claimed may be spooled, the SPOOLED flag goes
# up; then each provider id about to be made durable is claimed ('pending:<contact id>') unless
# Redis holds it already. Returns, per claimed key, '' when the claim is ours (also when an earlier
# try or an earlier call for this very contact made it), or what Redis held (another attempt's
# 'pending…', or the answer given: whole, or its reference followed by its template). A key holding
# a reference to a template Redis has lost counts as empty (`held`).
# KEYS: SPOOLED, the n remembered keys, the t template keys, the m keys to claim.
# ARGV: n, the flag's ttl (0: leave it), t, the templates' ttl, then each answer and its ttl, then
# each template, then each claim's contact id and ttl.
CLAIM_BATCH = (
    LUA_HELD
    + """
local n, flag_ttl, t, template_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for j = 1, t do redis.call('SET', KEYS[1 + n + j], ARGV[4 + 2 * n + j], 'EX', template_ttl) end
for i = 1, n do
  local k, answer, ttl = KEYS[1 + i], ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  if not redis.call('SET', k, answer, 'EX', ttl, 'NX') then
    local v = held(k)
    if not v or string.sub(v, 1, 7) == 'pending' then redis.call('SET', k, answer, 'EX', ttl) end
  end
end
if flag_ttl > 0 then redis.call('SET', KEYS[1], '1', 'EX', flag_ttl) end
local out, base = {}, 4 + 2 * n + t
for i = 1, #KEYS - 1 - n - t do
  local k, mine, ttl = KEYS[1 + n + t + i], 'pending:' .. ARGV[base + 2 * i - 1], ARGV[base + 2 * i]
  local v, template = held(k)
  if not v then redis.call('SET', k, mine, 'EX', ttl); out[i] = ''
  elseif v == mine then out[i] = ''
  elseif template then out[i] = v .. '\\n' .. template
  else out[i] = v end
end
return out
"""
)
# A counted contact's claim, before it is counted: KEYS[1] takes ARGV[1] (for ARGV[2] seconds) unless
# it holds an answer that can be given, or another attempt's claim. Returns 1 when the claim is ours.
CLAIM_ONE = (
    LUA_HELD
    + """
if held(KEYS[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
)
# Answers made durable are sent to Redis this long after the first of them, all in one call (or
# sooner, with a claim). Meanwhile a retry is answered from the log; only one that has to be spooled
# (the database away within this window of the first answer) cannot find it.
REMEMBER_WITHIN = 0.05
# A batch's claim that timed out is asked again once, for up to this long, before the batch goes on
# without it; answers sent on their own have as long.
CLAIM_PATIENCE = 1.0
UNSENT_MAX = 10_000
# The SPOOLED flag lasts this long after a contact was spooled or a spool was seen not replayed yet;
# every process looks at it this often (a retry of a contact spooled this long ago at most, reaching
# another process whose commit is quick, can miss it).
SPOOLED_TTL = 3
SPOOLED_LOOK_EVERY = 0.1


def key(channel: str, provider_id: str) -> str:
    return f"{IDEMPOTENCY}{channel}:{provider_id}"


class Idempotency:
    def __init__(self, redis: aioredis.Redis, batch: RedisBatch, health: RedisHealth, pool: asyncpg.Pool) -> None:
        self.redis, self.batch, self.health, self.pool = redis, batch, health, pool
        self._claim_batch = redis.register_script(CLAIM_BATCH)
        self._claim_one = redis.register_script(CLAIM_ONE)
        # Answers made durable, not in Redis yet: (key, value, ttl, the template the value refers to).
        self._unsent: list[tuple[str, bytes, int, Template | None]] = []
        self.templates = Templates()
        self._sender: asyncio.Task[None] | None = None
        self._spooled_until = 0.0  # (time.monotonic()) until then, a spool may hold contacts not replayed
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    def must_claim(self) -> bool:
        """Whether a batch is to claim its provider ids before it is committed: some process may
        hold spooled contacts that the log's unique key cannot see yet."""
        if not self._closed and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.create_task(self._watch_spooled(), name="spooled-flag")
        return time.monotonic() < self._spooled_until

    async def spooling(self) -> None:
        """This process is spooling contacts, or holds spooled contacts not replayed yet: the flag
        goes (or stays) up."""
        self._spooled_until = time.monotonic() + SPOOLED_TTL
        if self.health.usable():
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self.health.budget):
                    await self.batch.call("set", SPOOLED, "1", ex=SPOOLED_TTL)

    async def _watch_spooled(self) -> None:
        """Look at the SPOOLED flag every SPOOLED_LOOK_EVERY (Redis away: claims could not be made anyway)."""
        while True:
            await asyncio.sleep(SPOOLED_LOOK_EVERY)
            if not self.health.usable():
                continue
            try:
                async with asyncio.timeout(self.health.budget):
                    left = await self.batch.call("pttl", SPOOLED)
            except Exception:  # Redis slow or away, or a reply not understood: look again next time
                continue
            if isinstance(left, int) and left > 0:
                self._spooled_until = max(self._spooled_until, time.monotonic() + left / 1000)

    async def claim(self, records: list[ContactRecord], *, may_spool: bool = True) -> list[Appended | None]:
        """The contact log's `Claims`: claim these records' provider ids in one call, just before
        they become durable. None: log it (ours, or Redis could not say: the log's unique key decides).
        `may_spool`: they may be spooled, so the SPOOLED flag goes up with the claim."""
        if not self.health.usable():
            return [None] * len(records)
        claims = [(key(r.channel, r.provider_id or ""), str(r.id), ttl_for(r.channel)) for r in records]
        flag = SPOOLED_TTL if may_spool else 0
        if may_spool:
            self._spooled_until = time.monotonic() + SPOOLED_TTL
        try:
            try:
                held = await self._send(claims, self.health.budget, flag)
            except TimeoutError:
                # Slow is not down: these records may be about to be spooled, where nothing else
                # would stop a retry being answered with a second contact id. Ask once more, with
                # time (a claim that landed the first time is recognised as ours).
                held = await self._send(claims, CLAIM_PATIENCE, flag)
        except (RedisError, OSError, TimeoutError) as exc:
            self.health.failed(exc)
            return [None] * len(records)
        return [self._outcome(v) for v in held]

    async def _send(self, claims: list[tuple[str, str, int]], budget: float, flag_ttl: int = 0) -> list[bytes]:
        """One call: the answers waiting to be remembered with the templates they refer to (each set
        again, so Redis holds it at least as long as they), and these claims (key, contact id, ttl).
        The answers go back in the queue if the call fails."""
        unsent, self._unsent = self._unsent, []
        templates = dict(t for *_, t in unsent if t is not None)
        keys = [SPOOLED, *(k for k, *_ in unsent), *(template_key(d) for d in templates)]
        keys += [k for k, _, _ in claims]
        args: list[str | bytes | int] = [len(unsent), flag_ttl, len(templates), TEMPLATE_TTL]
        for _, value, ttl, _ in unsent:
            args += (value, ttl)
        args += templates.values()
        for _, cid, ttl in claims:
            args += (cid, ttl)
        try:
            async with asyncio.timeout(budget):
                held: list[bytes] = await self._claim_batch(keys=keys, args=args)
        except BaseException:
            self._unsent[:0] = unsent
            raise
        return held

    def _outcome(self, held: bytes) -> Appended | None:
        """What a record's caller is to hear, from what Redis held for its provider id (None: log it):
        a reference comes with its template, read in the same call."""
        if not held:
            return None
        if held.startswith(PENDING):
            return Appended(in_flight=True)
        if digest_of(held) is not None and (parts := with_template(held)) is not None:
            reference, template = parts
            self.templates.learn(digest_of(reference) or b"", template)
            held = whole(reference, template)
        return Appended(duplicate_of=json.loads(held))

    async def _whole(self, value: bytes) -> bytes | None:
        """A remembered answer as given: kept whole, or made from the template it refers to (held
        here, or read from Redis). None when Redis no longer has that template (it lost data: see
        the README on sizing Redis); an error reading it is raised."""
        digest = digest_of(value)
        if digest is None:
            return value
        kept = self.templates.known.get(digest)
        if kept is None:
            async with asyncio.timeout(self.health.budget):
                kept = await self.batch.call("get", template_key(digest))
            if kept is None:
                log.warning("a remembered answer refers to template %s, which Redis no longer holds", digest.decode())
                return None
            self.templates.learn(digest, kept)
        return whole(value, kept)

    async def answer_of(self, contact: InboundContact, contact_id: str) -> Decision | None:
        """The answer of the attempt in flight that holds this contact's provider id (the caller bounds
        the wait); None when that answer can no longer be given (its template lost) and the provider
        id is now claimed for `contact_id`, this contact: it is to be logged."""
        return await self._wait_or_claim(key(contact.channel, contact.provider_id or ""), contact.channel, contact_id)

    async def earlier(self, contact: InboundContact, budget: asyncio.Timeout, patience: float) -> Decision | None:
        """The answer already given for this provider id; None: ours to decide.

        When another attempt holds the claim, its answer is waited for beyond the caller's budget,
        up to `patience` (long enough for that attempt to be decided and made durable, even on the
        spool): answering a retry on its own would acknowledge a second contact id for one contact.
        """
        pid = contact.provider_id
        if not pid:
            return None
        k = key(contact.channel, pid)
        if self.health.usable():
            try:
                async with asyncio.timeout(self.health.budget):
                    claimed = await self.batch.call("set", k, PENDING, nx=True, ex=ttl_for(contact.channel))
                if claimed:
                    return None
            except (RedisError, OSError, TimeoutError) as exc:
                self.health.failed(exc)
            else:
                deadline = budget.when()
                budget.reschedule(asyncio.get_running_loop().time() + patience)
                try:
                    earlier = await self._wait_or_claim(k, contact.channel)
                except (RedisError, OSError, TimeoutError) as exc:  # Redis failed meanwhile: ask the database
                    self.health.failed(exc)
                else:
                    if earlier is None:  # claimed after all: decided within the caller's own deadline
                        budget.reschedule(deadline)
                    return earlier
        try:  # shielded: the deadline answers the caller; a hung query is left to end on its own
            row = await detached(on_connection(self.pool, budget.when(), earlier_decision, contact.channel, pid))
        except TimeoutError:  # the caller's deadline (an OSError too, but not one to decide past)
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None  # the writer's unique key is the last word
        return Decision.model_validate(row) if row else None

    async def _wait_or_claim(self, k: str, channel: str, contact_id: str | None = None) -> Decision | None:
        """The answer of the attempt holding this key; None when the key held an answer that can no
        longer be given (its template lost) and is now this contact's claim ('pending:<contact_id>',
        or 'pending' before the contact has an id of its own in Redis). A Redis error is raised (the
        caller's deadline bounds the wait; each claim has the health budget)."""
        mine = PENDING if contact_id is None else PENDING + b":" + contact_id.encode()
        while True:
            try:
                return await self._wait_for_answer(k)
            except TemplateLost:  # as if Redis had lost the answer: the key is free to claim
                async with asyncio.timeout(self.health.budget):
                    if await self._claim_one(keys=[k], args=[mine, ttl_for(channel)]):
                        return None
                await asyncio.sleep(POLL_SECONDS)  # another attempt took it first: wait for its answer

    async def _wait_for_answer(self, k: str) -> Decision:
        """Another request holds the claim: poll for its answer (the caller's deadline bounds this)."""
        while True:
            value = await self.batch.call("get", k)
            if value and not value.startswith(PENDING):
                answer = await self._whole(value)
                if answer is None:
                    raise TemplateLost(k)
                return Decision.model_validate_json(answer)
            await asyncio.sleep(POLL_SECONDS)

    @staticmethod
    def settle(decision: Decision, appended: Appended) -> tuple[Decision, bool]:
        """The answer to give once the log has spoken: ours, or the earlier one it already held."""
        if appended.duplicate_of:  # an empty one: the earlier row was forgotten meanwhile; ours stands
            return Decision.model_validate(appended.duplicate_of), False
        return decision, True

    def remember_answer(self, contact: InboundContact, decision: Decision) -> None:
        """The answer a repeat was given (the log already held one): the next repeat finds it in Redis
        instead of waiting on a claim nobody will answer. Sent with the other answers to remember."""
        if contact.provider_id:
            k = key(contact.channel, contact.provider_id)
            self._queue([(k, decision.answered_json(), ttl_for(contact.channel), None)])

    def remember(self, records: list[ContactRecord]) -> None:
        """Once a batch is durable, its decisions answer retries: carried by the next claim, or sent
        on their own within REMEMBER_WITHIN (a retry meanwhile waits on a 'pending' claim, if any).
        A decision stamped from a template is kept as a reference to it (remembered.py)."""
        answers: list[tuple[str, bytes, int, Template | None]] = []
        for r in records:
            if not r.provider_id or not r.decision:
                continue
            d = r.decision
            value, template = (
                self.templates.reference(d.stamp) if isinstance(d, AnswerJson) and d.stamp else (_json_of(d), None)
            )
            answers.append((key(r.channel, r.provider_id), value, ttl_for(r.channel), template))
        self._queue(answers)

    def _queue(self, answers: list[tuple[str, bytes, int, Template | None]]) -> None:
        """Answers (key, value, ttl, template) for the next claim, or sent on their own within REMEMBER_WITHIN."""
        self._unsent += answers
        del self._unsent[:-UNSENT_MAX]  # Redis away a long time: the database holds the oldest
        if self._closed:  # after close: sent by close's last try, or left to the database
            return
        if self._unsent and (self._sender is None or self._sender.done()):
            self._sender = asyncio.create_task(self._send_soon())

    async def close(self) -> None:
        """At shutdown (after the contact log drained): the answers not sent yet, one last try."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._unsent and self.health.usable():
            with contextlib.suppress(RedisError, OSError, TimeoutError):  # the database holds them too
                await self._send([], CLAIM_PATIENCE)

    async def _send_soon(self) -> None:
        """Until every answer is in Redis (a retry may be waiting on its claim): off the reply path,
        so with time to spare, and again after a failure while Redis is not known to be down."""
        delay = REMEMBER_WITHIN
        while self._unsent:
            await asyncio.sleep(delay)
            if not self._unsent:
                return
            if not self.health.usable():
                delay = self.health.rest
                continue
            try:
                await self._send([], CLAIM_PATIENCE)
            except (RedisError, OSError, TimeoutError):  # kept for the next try, or the next claim
                delay = min(delay * 4, CLAIM_PATIENCE)


class TemplateLost(RedisError):
    """A remembered answer refers to a template Redis no longer holds: as if Redis had lost the answer."""


def _json_of(decision: dict[str, Any] | AnswerJson | None) -> bytes:
    """A record's decision as JSON: the reply's own bytes when it carries them."""
    return decision.json if isinstance(decision, AnswerJson) else orjson.dumps(decision)
