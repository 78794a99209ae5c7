"""One answer per provider id: repeats answered from the log are remembered, and the database
fallback never holds a caller past the decide deadline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.auth import create_key, forget_shared, hash_key
from gateway.contactlog import ContactRecord
from gateway.decide import idempotency
from gateway.decide.idempotency import key
from gateway.decide.redishealth import RedisHealth
from gateway.decide.remembered import digest_of, template_key, whole
from gateway.redisbatch import RedisBatch
from gateway.rediskeys import API_KEY
from gateway.runtime import RUNTIME
from tests.factory import SET_UP, Api, bearer
from tests.helpers import free_port, via_proxy

CALL = {"channel": "phone", "from": "07700 900123", "provider_id": "CA-remembered"}


async def test_a_repeat_answered_from_the_log_is_remembered_for_the_next(client, keys, settings):
    headers = bearer(keys["channel"])
    first = await (await client.post("/v1/contacts", headers=headers, json=CALL)).json()
    redis = aioredis.from_url(settings.redis_url)
    try:
        await redis.flushdb()  # Redis restarted empty: only the log knows the first answer
        repeat = await client.post("/v1/contacts", headers=headers, json=CALL)
        assert repeat.status == 200 and (await repeat.json())["contact_id"] == first["contact_id"]
        for _ in range(50):
            held = await redis.get(key("phone", "CA-remembered"))
            if held not in (None, b"pending"):
                break
            await asyncio.sleep(0.01)
        assert held is not None and first["contact_id"] in held.decode()  # not left "pending" for 7 days
        # Whole (the repeat's answer), or a reference to its template (the first attempt's answer,
        # when its remembering came after the flush): either way, the first answer.
        if (digest := digest_of(held)) is not None:
            held = whole(held, await redis.get(template_key(digest)))
        assert json.loads(held) == first == await repeat.json()
    finally:
        await redis.aclose()


async def test_with_redis_down_and_the_database_hung_a_call_is_answered_by_the_deadline(settings, keys, proxy):
    cut = settings.with_(
        database_url=via_proxy(settings.database_url, proxy.port),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        decide_deadline_ms=300,
        log_wait_ms=300,
    )
    async with TestClient(TestServer(create_app(cut))) as c:
        headers = bearer(keys["channel"])
        await c.post("/v1/contacts", headers=headers, json={"channel": "phone", "from": "07700 900001"})
        proxy.freeze()
        try:
            started = time.monotonic()
            r = await c.post("/v1/contacts", headers=headers, json={**CALL, "provider_id": "CA-hung"})
            took = time.monotonic() - started
            answer = await r.json()
        finally:
            proxy.thaw()
    # An uncounted sender is decided from the index in memory and answered from the spool (its
    # provider id could be claimed neither in Redis nor in the log); a counted one would be answered
    # degraded by the deadline, its hung lookup left to end on its own. Either way, in time.
    assert r.status == 201 and answer["contact_id"]
    assert took < 1.5, took


async def test_a_revoked_keys_shared_copy_is_removed(conn, settings):
    _, secret = await create_key(conn, "channel", "switch", actor=SET_UP)
    redis = aioredis.from_url(settings.redis_url)
    try:
        name = API_KEY + hash_key(secret).hex()
        await redis.set(name, "{}")
        await forget_shared(settings.redis_url, hash_key(secret))
        assert await redis.get(name) is None
    finally:
        await redis.aclose()


async def test_two_attempts_at_once_are_one_contact(client, keys, conn):
    """Uncounted contacts are claimed by the log's batch statement: attempts of one provider id sent
    together (one batch, or two) are answered with one contact id and logged once."""
    headers = bearer(keys["channel"])
    call = {**CALL, "provider_id": "CA-twice"}
    replies = await asyncio.gather(*(client.post("/v1/contacts", headers=headers, json=call) for _ in range(4)))
    answers = [await r.json() for r in replies]
    assert sorted(r.status for r in replies) == [200, 200, 200, 201]
    assert len({a["contact_id"] for a in answers}) == 1
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id = 'CA-twice'") == 1


async def test_attempts_at_two_processes_at_once_are_one_contact(client, keys, settings, conn):
    """No Redis claim while the database answers: the log's unique key makes the attempt in the other
    process's batch wait for the first one's outcome, and answers it with the first contact id."""
    headers = bearer(keys["channel"])
    async with TestClient(TestServer(create_app(settings))) as other:
        for n in range(5):
            call = {**CALL, "provider_id": f"CA-two-processes-{n}"}
            replies = await asyncio.gather(
                *(c.post("/v1/contacts", headers=headers, json=call) for c in (client, other, client, other))
            )
            answers = [await r.json() for r in replies]
            assert sorted(r.status for r in replies) == [200, 200, 200, 201]
            assert len({a["contact_id"] for a in answers}) == 1
    logged = await conn.fetchval("SELECT count(*) FROM contacts WHERE provider_id LIKE 'CA-two-processes-%'")
    assert logged == 5


async def test_a_retry_of_a_contact_spooled_elsewhere_hears_its_answer(client, keys, settings, conn):
    """One process spooled the first attempt (its breaker open); the retry reaches another process,
    whose commit would be quick: the log's unique key cannot see the spool, so that process claims
    in Redis first and answers with the first contact id."""
    headers = bearer(keys["channel"])
    async with TestClient(TestServer(create_app(settings))) as other:
        warm = {**CALL, "provider_id": "CA-warm-up"}
        assert (await other.post("/v1/contacts", headers=headers, json=warm)).status == 201
        client.app[RUNTIME].decide.log.breaker.trip("a test: the database is slow for this process")
        call = {**CALL, "provider_id": "CA-spooled-elsewhere"}
        first = await client.post("/v1/contacts", headers=headers, json=call)
        assert first.status == 201
        await asyncio.sleep(3 * idempotency.SPOOLED_LOOK_EVERY)
        retry = await other.post("/v1/contacts", headers=headers, json=call)
        assert retry.status == 200
        assert (await retry.json())["contact_id"] == (await first.json())["contact_id"]
        for _ in range(100):  # replayed from the spool: one row, the first attempt's
            rows = await conn.fetch("SELECT id FROM contacts WHERE provider_id = 'CA-spooled-elsewhere'")
            if rows:
                break
            await asyncio.sleep(0.05)
        assert [str(r["id"]) for r in rows] == [(await first.json())["contact_id"]]


async def test_an_unrestricted_contact_is_answered_before_redis_hears_of_it(client, keys, settings, monkeypatch):
    """The reply waits for the commit only; the answer reaches Redis afterwards, with others in one call."""
    monkeypatch.setattr(idempotency, "REMEMBER_WITHIN", 1.0)
    headers = bearer(keys["channel"])
    redis = aioredis.from_url(settings.redis_url)
    try:
        calls = [{**CALL, "provider_id": f"CA-no-redis-{n}"} for n in range(3)]
        replies = await asyncio.gather(*(client.post("/v1/contacts", headers=headers, json=c) for c in calls))
        assert [r.status for r in replies] == [201, 201, 201]
        keys_of = [key("phone", c["provider_id"]) for c in calls]
        assert await redis.mget(keys_of) == [None, None, None]  # no claim was made before the reply
        await asyncio.sleep(1.5)
        held = await redis.mget(keys_of)
        for reply, value in zip(replies, held, strict=True):
            # Kept as a reference to the answer's template (remembered.py): it stands for the very
            # JSON the caller heard, serialised once.
            digest = digest_of(value)
            assert digest is not None and len(value) < 100
            assert whole(value, await redis.get(template_key(digest))) == await reply.read()
    finally:
        await redis.aclose()


async def test_a_claim_asked_again_is_recognised_as_its_own(client, keys, settings):
    """A batch's claim that timed out is asked again; if the first try landed, it is still ours."""
    rt = client.app[RUNTIME]
    record = ContactRecord(id=uuid.uuid4(), received_at=datetime.now(UTC), channel="phone", action="route")
    record.provider_id = "CA-asked-twice"
    rival = replace(record, id=uuid.uuid4())
    assert await rt.decide.claims.claim([record]) == [None]
    assert await rt.decide.claims.claim([record]) == [None]  # the same contact: its own claim
    [held] = await rt.decide.claims.claim([rival])
    assert held is not None and held.in_flight  # another contact: waits for the first one's answer


async def test_a_written_contact_waits_longer_than_a_call_before_its_safe_answer(settings, keys, proxy):
    """Counted contacts with Redis away are counted from the log; the log hangs for 0.8 s. The call is
    answered degraded at its 300 ms deadline; the email, whose deadline is longer, is decided."""
    async with TestClient(TestServer(create_app(settings))) as c:  # made first, so the app below loads it
        api = Api(c, keys)
        team = await api.team()
        cid = await api.customer("Gary", ("phone", "07700 900008"), ("email", "gary@example.org"))
        await api.restriction(cid, "contact_limit", params={"limit": 5, "period": "day"}, deciders=team.deciders)
    cut = settings.with_(
        database_url=via_proxy(settings.database_url, proxy.port),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        decide_deadline_ms=300,
        written_deadline_ms=3000,
        log_wait_ms=3000,
    )
    async with TestClient(TestServer(create_app(cut))) as c:
        headers = bearer(keys["channel"])
        await c.post("/v1/contacts", headers=headers, json={"channel": "phone", "from": "07700 900001"})  # key known
        proxy.freeze()
        try:
            started = time.monotonic()
            email = asyncio.create_task(
                c.post("/v1/contacts", headers=headers, json={"channel": "email", "from": "gary@example.org"})
            )
            call = await asyncio.wait_for(  # answered while the database still hangs
                c.post("/v1/contacts", headers=headers, json={"channel": "phone", "from": "07700 900008"}), 5
            )
            await asyncio.sleep(max(0.0, 0.8 - (time.monotonic() - started)))
        finally:
            proxy.thaw()
        answers = [await call.json(), await (await email).json()]
        waited = time.monotonic() - started
    assert [(a["action"], a["degraded"]) for a in answers] == [("route", True), ("route", False)]
    assert answers[0]["banner"]["text"].startswith("Restriction check unavailable")
    assert "(timeout)" in str(answers[0]["reasons"])
    assert waited >= 0.8  # the email was decided once the database answered again, not before


async def test_a_retry_waits_for_its_first_attempt_as_long_as_that_attempts_channel_allows(settings, keys):
    """Two counted retries find their first attempt's claim still pending. The call's patience (its
    100 ms deadline + 100 ms log wait + 1 s) runs out first: degraded. The email's (1.5 s + 0.1 + 1) is
    still running when the first attempt's answer arrives at 2 s: it hears that answer."""
    async with TestClient(TestServer(create_app(settings))) as c:
        api = Api(c, keys)
        team = await api.team()
        cid = await api.customer("Gary", ("phone", "07700 900008"), ("email", "gary@example.org"))
        await api.restriction(cid, "contact_limit", params={"limit": 5, "period": "day"}, deciders=team.deciders)
    quick = settings.with_(decide_deadline_ms=100, written_deadline_ms=1500, log_wait_ms=100)
    redis = aioredis.from_url(settings.redis_url)
    try:
        async with TestClient(TestServer(create_app(quick))) as c:
            headers = bearer(keys["channel"])
            answered = await (
                await c.post("/v1/contacts", headers=headers, json={"channel": "email", "from": "gary@example.org"})
            ).json()
            for channel in ("phone", "email"):  # first attempts still being decided elsewhere
                await redis.set(key(channel, f"{channel}-in-flight"), b"pending:elsewhere", ex=60)

            async def retry(channel: str, sender: str) -> tuple[int, dict[str, object], float]:
                started = time.monotonic()
                r = await c.post(
                    "/v1/contacts",
                    headers=headers,
                    json={"channel": channel, "from": sender, "provider_id": f"{channel}-in-flight"},
                )
                return r.status, await r.json(), time.monotonic() - started

            call = asyncio.create_task(retry("phone", "07700 900008"))
            email = asyncio.create_task(retry("email", "gary@example.org"))
            await asyncio.sleep(2.0)
            first_answer = json.dumps({**answered, "contact_id": "the-first-attempt"})
            for channel in ("phone", "email"):
                await redis.set(key(channel, f"{channel}-in-flight"), first_answer, ex=60)
            (call_status, call_answer, call_took), (email_status, email_answer, _) = await asyncio.gather(call, email)
    finally:
        await redis.aclose()
    assert (call_status, call_answer["degraded"]) == (201, True) and call_took < 2.0
    assert (email_status, email_answer["contact_id"], email_answer["degraded"]) == (200, "the-first-attempt", False)


async def test_remembering_sets_an_answer_where_none_or_only_a_claim_is_held_and_never_replaces_one(settings):
    """The remember step of CLAIM_BATCH: a key with nothing, or another attempt's pending claim, takes
    the answer; a key holding an answer keeps it (the first durable answer stands), also against a
    second answer for the same key in the same call."""
    redis = aioredis.from_url(settings.redis_url)
    try:
        claims = idempotency.Idempotency(redis, RedisBatch(redis), RedisHealth(redis), None)  # type: ignore[arg-type]
        absent, pending, answered = (key("email", f"remember-{n}-{uuid.uuid4().hex}") for n in range(3))
        await redis.set(pending, b"pending:another-attempt", ex=60)
        await redis.set(answered, b'{"contact_id": "first"}', ex=60)
        week = 7 * 86400
        claims._unsent = [
            (absent, b'{"contact_id": "ours"}', week, None),
            (pending, b'{"contact_id": "ours"}', week, None),
            (answered, b'{"contact_id": "ours"}', week, None),
            (absent, b'{"contact_id": "later"}', week, None),
        ]
        assert await claims._send([], 5.0) == []
        assert await redis.get(absent) == b'{"contact_id": "ours"}'
        assert await redis.get(pending) == b'{"contact_id": "ours"}'
        assert await redis.get(answered) == b'{"contact_id": "first"}'
        assert await redis.ttl(absent) > week - 5 and await redis.ttl(pending) > week - 5  # a mail server's retries
        assert claims._unsent == []
    finally:
        await redis.aclose()
