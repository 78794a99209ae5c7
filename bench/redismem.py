"""What the answers remembered for retries cost Redis: bytes a key, and what a sustained rate holds.

Every contact with a provider id leaves an answer in Redis for its channel's retry window
(gateway/decide/remembered.py), so Redis's memory grows with the rate and those windows. Measured
with MEMORY USAGE on a sample of the keys a phase left, by channel; the templates they refer to are
counted apart (one per distinct answer text, whatever the rate).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from gateway.decide.remembered import ttl_for
from gateway.rediskeys import ANSWER_TEMPLATE, IDEMPOTENCY

SAMPLE = 300  # keys measured a channel


@dataclass
class RedisMemory:
    keys: Counter[str] = field(default_factory=Counter)  # remembered answers held, by channel
    bytes_each: dict[str, float] = field(default_factory=dict)  # MEMORY USAGE, mean of a sample, by channel
    templates: int = 0
    template_bytes: int = 0
    error: str | None = None

    def held_at(self, rate: float) -> float:
        """Bytes held once `rate` contacts a second (this mix of channels) have run a whole retry window."""
        total = sum(self.keys.values())
        return sum(rate * n / total * ttl_for(ch) * self.bytes_each[ch] for ch, n in self.keys.items()) if total else 0

    def describe(self, rate: float) -> str:
        if self.error or not self.keys:
            return f"not measured ({self.error or 'no remembered answers'})"
        each = ", ".join(
            f"{ch} {self.bytes_each[ch]:,.0f} B (kept {ttl_for(ch) // 86400} d)" for ch, _ in self.keys.most_common()
        )
        return (
            f"{each}; {sum(self.keys.values()):,} answers and {self.templates} template(s) "
            f"({self.template_bytes:,} B in all) held; at {rate:,.0f}/s of this mix, "
            f"{self.held_at(rate) / 1e9:,.1f} GB held"
        )


async def measure(redis_url: str) -> RedisMemory:
    found = RedisMemory()
    redis = aioredis.from_url(redis_url)
    try:
        sampled: dict[str, list[bytes]] = {}
        async for k in redis.scan_iter(match=IDEMPOTENCY + "*", count=1000):
            channel = k.decode()[len(IDEMPOTENCY) :].split(":", 1)[0]
            found.keys[channel] += 1
            if len(sampled.setdefault(channel, [])) < SAMPLE:
                sampled[channel].append(k)
        for channel, keys in sampled.items():
            sizes = [await redis.memory_usage(k) or 0 for k in keys]
            found.bytes_each[channel] = sum(sizes) / len(sizes)
        async for k in redis.scan_iter(match=ANSWER_TEMPLATE + "*", count=1000):
            found.templates += 1
            found.template_bytes += await redis.memory_usage(k) or 0
    except Exception as exc:  # a figure of the report, never the run's failure
        found.error = repr(exc)
    finally:
        await redis.aclose()
    return found
