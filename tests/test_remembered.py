"""Answers remembered for retries: a stamped answer is kept as a reference to its template, read back
byte for byte (also by a process that never saw the template), and kept as long as its channel's
retries can come."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway import db
from gateway.contact import InboundContact
from gateway.contactlog import AnswerJson, ContactRecord
from gateway.decide import remembered
from gateway.decide.idempotency import Idempotency, TemplateLost, key
from gateway.decide.redishealth import RedisHealth
from gateway.decide.remembered import Templates, digest_of, template_key, ttl_for, whole
from gateway.redisbatch import RedisBatch
from gateway.rediskeys import SPOOLED
from gateway.rules.vocabulary import Banner, Decision, Reason, Target
from gateway.runtime import RUNTIME
from tests.factory import bearer

AT = datetime(2026, 11, 27, 9, 30, 15, 250000, tzinfo=UTC)


def _template(because: str = "Sender not recognised: normal route.") -> Decision:
    return Decision(
        contact_id="",
        action="route",
        target=Target(type="queue", id="general"),
        banner=Banner(severity="info", text="Écrivez-nous — «merci» ☎", review_due=date(2027, 1, 31)),
        reasons=[Reason(source="identity", id="unmatched", because=because)],
        ruleset_version=4,
    )


def _stamped(template: Decision, contact_id: str | None = None) -> Decision:
    return template.stamped(contact_id or str(uuid.uuid4()), AT)


def test_a_reference_stands_for_the_stamped_answer_byte_for_byte():
    templates = Templates()
    stamped = _stamped(_template())
    stamp = stamped.stamp()
    assert stamp is not None
    value, (digest, kept) = templates.reference(stamp)
    assert digest_of(value) == digest and len(value) < 100 < len(stamped.answered_json())
    assert whole(value, kept) == stamped.answered_json() == stamped.model_dump_json().encode()
    assert templates.known == {digest: kept}


def test_equal_templates_share_a_digest_and_different_ones_do_not():
    templates = Templates()
    a, b = _stamped(_template()), _stamped(_template())  # built apart, the same content
    other = _stamped(_template("Rule 'email' matched: Emails go to the email team."))
    digests = [templates.reference(d.stamp())[1][0] for d in (a, b, other)]  # type: ignore[arg-type]
    assert digests[0] == digests[1] != digests[2]
    assert len(templates.known) == 2


def test_a_decision_not_stamped_or_changed_after_stamping_has_no_stamp():
    assert _template().stamp() is None
    stamped = _stamped(_template())
    stamped.flagged = True  # its JSON is built afresh: no template makes it any more
    assert stamped.stamp() is None
    assert _stamped(_template()).model_copy(update={"action": "hold"}).stamp() is None
    assert _template().stamped("an id with a NUL \x00", AT).stamp() is None  # not plain: kept whole


def test_calls_are_remembered_a_day_and_every_other_channel_a_week():
    assert ttl_for("phone") == 86400
    assert ttl_for("email") == ttl_for("web_form") == ttl_for("letter") == ttl_for("visit") == 7 * 86400
    assert max(ttl_for(c) for c in ("phone", "email", "web_form", "letter", "visit")) <= remembered.TEMPLATE_TTL


def _record(decision: Decision, channel: str, provider_id: str) -> ContactRecord:
    record = ContactRecord(id=uuid.UUID(decision.contact_id), received_at=AT, channel=channel, action=decision.action)
    record.provider_id = provider_id
    plain = decision.answered_json_if_plain()
    assert plain is not None
    record.decision = AnswerJson(plain, decision.stamp())
    return record


def _process(redis: aioredis.Redis) -> Idempotency:
    return Idempotency(redis, RedisBatch(redis), RedisHealth(redis), None)  # type: ignore[arg-type]


def _retry(record: ContactRecord) -> ContactRecord:
    return ContactRecord(
        id=uuid.uuid4(), received_at=AT, channel=record.channel, action="route", provider_id=record.provider_id
    )


async def test_one_call_remembers_answers_sets_their_template_raises_the_flag_and_claims(settings):
    """CLAIM_BATCH with every part at once: answers by reference and whole, each with its channel's
    lifetime; their template, kept as long as the longest; the SPOOLED flag; and claims, each with
    its channel's lifetime. Then a process that never saw the template hears the answers byte for
    byte, by claim and by waiting."""
    redis = aioredis.from_url(settings.redis_url)
    try:
        first, second, third = _process(redis), _process(redis), _process(redis)
        template, pid = _template(), uuid.uuid4().hex
        call, mail = _stamped(template), _stamped(template)
        visit = _template("Visitor seen at the desk.").model_copy(update={"contact_id": str(uuid.uuid4())})
        records = [_record(call, "phone", f"CA-{pid}"), _record(mail, "email", f"<{pid}@example.org>")]
        whole_record = ContactRecord(
            id=uuid.UUID(visit.contact_id), received_at=AT, channel="visit", action="route", provider_id=f"V-{pid}"
        )
        whole_record.decision = AnswerJson(visit.answered_json())  # not stamped: kept whole
        first.remember([*records, whole_record])
        new = [
            ContactRecord(id=uuid.uuid4(), received_at=AT, channel=ch, action="route", provider_id=f"new-{ch}-{pid}")
            for ch in ("phone", "email")
        ]
        assert await first.claim(new, may_spool=True) == [None, None]

        day, week = 86400, 7 * 86400
        phone_value = await redis.get(key("phone", f"CA-{pid}"))
        digest = digest_of(phone_value)
        assert digest is not None and len(phone_value) < 100
        assert await redis.get(key("visit", f"V-{pid}")) == visit.answered_json()
        for k, ttl in (
            (key("phone", f"CA-{pid}"), day),
            (key("email", f"<{pid}@example.org>"), week),
            (key("visit", f"V-{pid}"), week),
            (template_key(digest), week),
            (key("phone", f"new-phone-{pid}"), day),
            (key("email", f"new-email-{pid}"), week),
        ):
            assert ttl - 5 <= await redis.ttl(k) <= ttl, k
        for record in new:
            assert await redis.get(key(record.channel, record.provider_id or "")) == f"pending:{record.id}".encode()
        assert await redis.exists(SPOOLED)

        assert second.templates.known == {}
        outcomes = await second.claim([_retry(r) for r in (*records, whole_record)])
        heard = [o.duplicate_of if o is not None else None for o in outcomes]
        assert heard == [orjson.loads(d.answered_json()) for d in (call, mail, visit)]
        assert second.templates.known == first.templates.known  # read once, kept
        waited = await asyncio.wait_for(third._wait_for_answer(key("email", f"<{pid}@example.org>")), 2.0)
        assert waited.answered_json() == mail.answered_json()
    finally:
        await asyncio.gather(first.close(), second.close(), third.close())
        await redis.aclose()


async def test_every_call_sending_an_answer_sets_its_template_again(settings):
    """Redis restarted empty (or evicted the template): the next answer referring to it brings it back."""
    redis = aioredis.from_url(settings.redis_url)
    try:
        process, template = _process(redis), _template()
        first = _record(_stamped(template), "phone", f"CA-{uuid.uuid4().hex}")
        process.remember([first])
        await process._send([], 5.0)
        digest = digest_of(await redis.get(key("phone", first.provider_id or "")))
        assert digest is not None
        await redis.delete(template_key(digest))
        process.remember([_record(_stamped(template), "email", f"<{uuid.uuid4().hex}@example.org>")])
        await process._send([], 5.0)
        assert await redis.ttl(template_key(digest)) > 7 * 86400 - 5
    finally:
        await process.close()
        await redis.aclose()


async def test_a_reference_whose_template_redis_lost_is_an_answer_redis_lost(settings):
    """Redis kept the answer's reference but lost its template (only data Redis lost can do that):
    the answer cannot be given, so the key is claimed as if it were empty: by a batch's claim, by a
    counted contact's, and by a retry that was waiting on it (which is then logged)."""
    redis = aioredis.from_url(settings.redis_url)
    first, second = _process(redis), _process(redis)
    try:
        records = []
        for channel in ("phone", "phone", "phone"):
            decision = _stamped(_template(f"a template of its own {uuid.uuid4()}"))
            records.append(_record(decision, channel, f"CA-lost-{uuid.uuid4().hex}"))
        first.remember(records)
        await first._send([], 5.0)
        for record in records:
            digest = digest_of(await redis.get(key("phone", record.provider_id or "")))
            assert digest is not None
            await redis.delete(template_key(digest))
        by_batch, by_count, by_wait = (key("phone", r.provider_id or "") for r in records)
        with pytest.raises(TemplateLost):
            await asyncio.wait_for(second._wait_for_answer(by_batch), 1.0)
        retry = _retry(records[0])
        assert await second.claim([retry]) == [None]  # the claim is the retry's own
        assert await redis.get(by_batch) == f"pending:{retry.id}".encode()
        counted = InboundContact(channel="phone", sender="07700 900123", provider_id=records[1].provider_id)
        async with asyncio.timeout(2.0) as budget:
            assert await second.earlier(counted, budget, 2.0) is None
        assert await redis.get(by_count) == b"pending"
        waiting = InboundContact(channel="phone", sender="07700 900123", provider_id=records[2].provider_id)
        assert await asyncio.wait_for(second.answer_of(waiting, "the-retry"), 2.0) is None  # to be logged
        assert await redis.get(by_wait) == b"pending:the-retry"
    finally:
        await asyncio.gather(first.close(), second.close())
        await redis.aclose()


async def test_a_live_reference_stands_and_a_lost_one_is_replaced_by_the_next_answer(settings):
    """The remember step: a key holding a reference whose template Redis has keeps it (the first
    durable answer stands); one whose template is lost takes the new answer."""
    redis = aioredis.from_url(settings.redis_url)
    process = _process(redis)
    try:
        first = [_record(_stamped(_template(f"t {uuid.uuid4()}")), "phone", f"CA-{uuid.uuid4().hex}") for _ in "ab"]
        process.remember(first)
        await process._send([], 5.0)
        live, lost = (key("phone", r.provider_id or "") for r in first)
        kept = await redis.get(live)
        await redis.delete(template_key(digest_of(await redis.get(lost)) or b""))
        later = [_record(_stamped(_template()), "phone", r.provider_id or "") for r in first]
        process.remember(later)
        await process._send([], 5.0)
        assert await redis.get(live) == kept
        replaced = await redis.get(lost)
        assert replaced != kept and await process._whole(replaced) == later[1].decision.json  # type: ignore[union-attr]
    finally:
        await process.close()
        await redis.aclose()


async def test_a_claim_hears_a_reference_with_its_template_in_the_same_call(settings, monkeypatch):
    """A cold process's claim needs no read of its own: the script returns the template with the
    reference; a counted contact's claim of a live reference waits for and hears that answer."""
    redis = aioredis.from_url(settings.redis_url)
    first, second = _process(redis), _process(redis)
    try:
        decision = _stamped(_template(f"t {uuid.uuid4()}"))
        record = _record(decision, "phone", f"CA-{uuid.uuid4().hex}")
        first.remember([record])
        await first._send([], 5.0)

        async def no_reads(command: str, *args: object, **kwargs: object) -> object:
            raise AssertionError(f"a read of its own: {command}")

        monkeypatch.setattr(second.batch, "call", no_reads)
        [held] = await second.claim([_retry(record)])
        assert held is not None and held.duplicate_of == orjson.loads(decision.answered_json())
        monkeypatch.undo()
        counted = InboundContact(channel="phone", sender="07700 900123", provider_id=record.provider_id)
        async with asyncio.timeout(2.0) as budget:
            heard = await second.earlier(counted, budget, 2.0)
        assert heard is not None and heard.answered_json() == decision.answered_json()
    finally:
        await asyncio.gather(first.close(), second.close())
        await redis.aclose()


async def test_a_redis_error_while_waiting_for_an_answer_asks_the_database(settings, conn):
    """A counted contact finds another attempt's claim, and Redis fails while it waits: the answer
    logged in the database is the one it hears (no second contact id)."""
    redis = aioredis.from_url(settings.redis_url)
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=1)
    process = Idempotency(redis, RedisBatch(redis), RedisHealth(redis), pool)
    try:
        pid = f"CA-{uuid.uuid4().hex}"
        first = _stamped(_template())
        logged = (
            "INSERT INTO contact_provider_ids (channel, provider_id, contact_id, decision) VALUES ('phone', $1, $2, $3)"
        )
        await conn.execute(logged, pid, uuid.UUID(first.contact_id), orjson.loads(first.answered_json()))
        await redis.set(key("phone", pid), b"pending:the-first-attempt", ex=60)
        calls = process.batch.call

        async def failing_reads(command: str, *args: object, **kwargs: object) -> object:
            if command == "get":
                raise RedisError("a test: Redis failed mid-wait")
            return await calls(command, *args, **kwargs)

        process.batch.call = failing_reads  # type: ignore[method-assign]
        counted = InboundContact(channel="phone", sender="07700 900123", provider_id=pid)
        async with asyncio.timeout(2.0) as budget:
            heard = await process.earlier(counted, budget, 2.0)
        assert heard is not None and heard.contact_id == first.contact_id
    finally:
        await process.close()
        await pool.close()
        await redis.aclose()


async def test_a_process_holding_a_template_still_reads_its_answers_without_redis_having_it(settings):
    redis = aioredis.from_url(settings.redis_url)
    first = _process(redis)
    try:
        decision = _stamped(_template(f"a template of its own {uuid.uuid4()}"))
        record = _record(decision, "phone", f"CA-held-{uuid.uuid4().hex}")
        first.remember([record])
        await first._send([], 5.0)
        value = await redis.get(key("phone", record.provider_id or ""))
        assert await first._whole(value) == decision.answered_json()
    finally:
        await first.close()
        await redis.aclose()


async def test_a_retry_waiting_on_an_answer_redis_can_no_longer_give_is_logged_as_its_own(client, keys, settings):
    """The database is slow for this process (its breaker open): a call whose provider id another
    attempt holds waits for that answer; the key then holds a reference to a template Redis lost.
    The call claims the provider id and is answered and logged as a contact of its own."""
    redis = aioredis.from_url(settings.redis_url)
    try:
        pid = f"CA-{uuid.uuid4().hex}"
        await redis.set(key("phone", pid), b"pending:another-attempt", ex=60)
        client.app[RUNTIME].decide.log.breaker.trip("a test: the database is slow for this process")
        call = {"channel": "phone", "from": "07700 900456", "provider_id": pid}
        reply = asyncio.ensure_future(client.post("/v1/contacts", headers=bearer(keys["channel"]), json=call))
        await asyncio.sleep(0.2)  # waiting on the other attempt's claim
        assert not reply.done()
        await redis.set(key("phone", pid), b'@0123456789abcdef\n"lost"\n"2026-11-27T09:00:00Z"', ex=60)
        answered = await asyncio.wait_for(reply, 5.0)
        assert answered.status == 201
        contact_id = (await answered.json())["contact_id"]
        held = await redis.get(key("phone", pid))  # its claim, or by now its own answer
        assert held is not None and contact_id.encode() in held and b"another-attempt" not in held
    finally:
        await redis.aclose()
