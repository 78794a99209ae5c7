"""Answers remembered for retries: a stamped answer is kept as a reference to its template, read back
byte for byte (also by a process that never saw the template), and kept as long as its channel's
retries can come."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, date, datetime

import orjson
import redis.asyncio as aioredis

from gateway.contactlog import AnswerJson, ContactRecord
from gateway.decide import remembered
from gateway.decide.idempotency import Idempotency, key
from gateway.decide.redishealth import RedisHealth
from gateway.decide.remembered import TEMPLATE_REFRESH, Templates, digest_of, template_key, ttl_for, whole
from gateway.redisbatch import RedisBatch
from gateway.rules.vocabulary import Banner, Decision, Reason, Target

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
    value = templates.reference(stamp, now=0.0)
    digest = digest_of(value)
    assert digest is not None and len(value) < 100 < len(stamped.answered_json())
    assert whole(value, templates.known[digest]) == stamped.answered_json() == stamped.model_dump_json().encode()


def test_equal_templates_share_a_digest_and_different_ones_do_not():
    templates = Templates()
    a, b = _stamped(_template()), _stamped(_template())  # built apart, the same content
    other = _stamped(_template("Rule 'email' matched: Emails go to the email team."))
    digests = [digest_of(templates.reference(d.stamp(), 0.0)) for d in (a, b, other)]  # type: ignore[arg-type]
    assert digests[0] == digests[1] != digests[2]
    assert len(templates.known) == 2


def test_a_decision_not_stamped_or_changed_after_stamping_has_no_stamp():
    assert _template().stamp() is None
    stamped = _stamped(_template())
    stamped.flagged = True  # its JSON is built afresh: no template makes it any more
    assert stamped.stamp() is None
    assert _template().stamped("an id with a NUL \x00", AT).stamp() is None  # not plain: kept whole


def test_a_template_is_due_to_redis_on_first_use_and_again_after_the_refresh():
    templates = Templates()
    stamp = _stamped(_template()).stamp()
    assert stamp is not None
    templates.reference(stamp, now=10.0)
    due = templates.take_due()
    assert len(due) == 1 and templates.take_due() == []
    templates.untold(due)  # the call failed: due again
    assert templates.take_due() == due
    templates.told(due, now=10.0)
    templates.reference(stamp, now=10.0 + TEMPLATE_REFRESH - 1)
    assert templates.take_due() == []
    templates.reference(stamp, now=10.0 + TEMPLATE_REFRESH)
    assert templates.take_due() == due


def test_calls_and_visits_are_remembered_a_day_and_written_contacts_a_week():
    assert ttl_for("phone") == ttl_for("visit") == 86400
    assert ttl_for("email") == ttl_for("web_form") == ttl_for("letter") == 7 * 86400
    assert ttl_for("email") + TEMPLATE_REFRESH < remembered.TEMPLATE_TTL  # outlives every answer told in time


def _record(decision: Decision, channel: str, provider_id: str) -> ContactRecord:
    record = ContactRecord(id=uuid.UUID(decision.contact_id), received_at=AT, channel=channel, action=decision.action)
    record.provider_id = provider_id
    plain = decision.answered_json_if_plain()
    assert plain is not None
    record.decision = AnswerJson(plain, decision.stamp())
    return record


def _process(redis: aioredis.Redis) -> Idempotency:
    return Idempotency(redis, RedisBatch(redis), RedisHealth(redis), None)  # type: ignore[arg-type]


async def test_a_retry_at_a_process_that_never_saw_the_template_hears_the_first_answer(settings):
    """Process A remembers two stamped answers (a call, an email); process B, whose own template
    cache is empty, claims the same provider ids for retries and hears A's answers byte for byte;
    each key lives as long as its channel's retries."""
    redis = aioredis.from_url(settings.redis_url)
    try:
        first, second = _process(redis), _process(redis)
        template = _template()
        call, mail = _stamped(template), _stamped(template)
        pid = uuid.uuid4().hex
        records = [_record(call, "phone", f"CA-{pid}"), _record(mail, "email", f"<{pid}@example.org>")]
        first.remember(records)
        assert await first._send([], 5.0) == []
        stored = await redis.get(key("phone", f"CA-{pid}"))
        assert stored is not None and stored.startswith(b"@") and len(stored) < 100
        assert await redis.ttl(key("phone", f"CA-{pid}")) in range(86400 - 5, 86401)
        assert await redis.ttl(key("email", f"<{pid}@example.org>")) in range(7 * 86400 - 5, 7 * 86400 + 1)
        digest = digest_of(stored)
        assert digest is not None and await redis.ttl(template_key(digest)) > 7 * 86400

        retries = [
            ContactRecord(id=uuid.uuid4(), received_at=AT, channel=r.channel, action="route", provider_id=r.provider_id)
            for r in records
        ]
        assert second.templates.known == {}
        outcomes = await second.claim(retries)
        heard = [o.duplicate_of if o is not None else None for o in outcomes]
        assert heard == [orjson.loads(call.answered_json()), orjson.loads(mail.answered_json())]
        assert second.templates.known == first.templates.known  # read once, kept
        # A retry waiting on the first attempt's claim reads the answer the same way.
        assert await asyncio.wait_for(second._wait_for_answer(key("phone", f"CA-{pid}")), 2.0) == call
    finally:
        await redis.aclose()


async def test_a_reference_whose_template_redis_lost_leaves_the_retry_to_the_logs_unique_key(settings, caplog):
    redis = aioredis.from_url(settings.redis_url)
    try:
        first, second = _process(redis), _process(redis)
        decision = _stamped(_template(f"a template of its own {uuid.uuid4()}"))
        record = _record(decision, "phone", f"CA-lost-{uuid.uuid4().hex}")
        first.remember([record])
        await first._send([], 5.0)
        stored = await redis.get(key("phone", record.provider_id or ""))
        assert stored is not None
        digest = digest_of(stored)
        assert digest is not None
        await redis.delete(template_key(digest))
        retry = ContactRecord(
            id=uuid.uuid4(), received_at=AT, channel="phone", action="route", provider_id=record.provider_id
        )
        with caplog.at_level(logging.WARNING, logger="gateway.decide.idempotency"):
            assert await second.claim([retry]) == [None]
        assert "no longer holds" in caplog.text
        # The process that made the reference still reads it from its own templates.
        [held] = await first.claim([retry])
        assert held is not None and held.duplicate_of == orjson.loads(decision.answered_json())
    finally:
        await redis.aclose()
