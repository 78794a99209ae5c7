"""The bench's figure of what remembered answers cost Redis: counted by channel, measured with
MEMORY USAGE, and projected over each channel's retry window."""

from __future__ import annotations

import uuid
from collections import Counter

import redis.asyncio as aioredis

from bench.redismem import RedisMemory, measure
from tests.test_remembered import _process, _record, _stamped, _template


async def test_remembered_answers_are_measured_by_channel_and_projected_over_their_windows(settings):
    redis = aioredis.from_url(settings.redis_url)
    process = _process(redis)
    try:
        template = _template()
        records = [_record(_stamped(template), "phone", f"CA-{uuid.uuid4().hex}") for _ in range(6)]
        records += [_record(_stamped(template), "email", f"<{uuid.uuid4().hex}@example.org>") for _ in range(2)]
        process.remember(records)
        await process._send([], 5.0)
    finally:
        await process.close()
        await redis.aclose()
    found = await measure(settings.redis_url)
    assert found.error is None
    assert dict(found.keys) == {"phone": 6, "email": 2}
    assert found.templates == 1 and found.template_bytes > 500  # the ~700 bytes every answer refers to
    assert all(100 < b < 300 for b in found.bytes_each.values())  # a reference, not the whole answer
    assert "phone" in found.describe(100) and "GB held" in found.describe(100)


def test_what_a_rate_holds_is_each_channel_s_share_kept_for_its_window():
    found = RedisMemory(keys=Counter(phone=3, email=1), bytes_each={"phone": 200.0, "email": 240.0})
    # 100/s: 75 calls a second kept a day at 200 B, 25 emails a second kept a week at 240 B.
    assert found.held_at(100) == 75 * 86400 * 200 + 25 * 7 * 86400 * 240 == 4_924_800_000
    assert "4.9 GB held" in found.describe(100)
