"""The bench's figure of what remembered answers cost Redis: counted by channel, measured with
MEMORY USAGE, and projected over each channel's retry window."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from bench.redismem import measure
from gateway.decide.remembered import ttl_for
from tests.test_remembered import _process, _record, _stamped, _template


async def test_remembered_answers_are_measured_by_channel_and_projected_over_their_windows(settings):
    redis = aioredis.from_url(settings.redis_url)
    try:
        process = _process(redis)
        template = _template()
        records = [_record(_stamped(template), "phone", f"CA-{uuid.uuid4().hex}") for _ in range(6)]
        records += [_record(_stamped(template), "email", f"<{uuid.uuid4().hex}@example.org>") for _ in range(2)]
        process.remember(records)
        await process._send([], 5.0)
    finally:
        await redis.aclose()
    found = await measure(settings.redis_url)
    assert found.error is None
    assert dict(found.keys) == {"phone": 6, "email": 2}
    assert found.templates == 1 and found.template_bytes > 500  # the ~700 bytes every answer refers to
    assert all(100 < b < 300 for b in found.bytes_each.values())  # a reference, not the whole answer
    expected = 100 * (
        0.75 * ttl_for("phone") * found.bytes_each["phone"] + 0.25 * ttl_for("email") * found.bytes_each["email"]
    )
    assert abs(found.held_at(100) - expected) < 1
    assert "phone" in found.describe(100) and "GB held" in found.describe(100)
