"""A constant offered load (wrk2-style; Debian's wrk has no -R): aiohttp, timed from the scheduled send.

Request i is due at t0 + i/rate whether or not earlier ones have been answered, and its latency is
measured from that due time, so a stall shows up in every request that waited behind it
(no coordinated omission). Every provider id answered 201 or 200 is kept for the log check.
Run as a separate process: `python -m bench.steady < ARGS-JSON` prints a JSON result.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from .mix import REPEAT_SHARE


@dataclass
class SteadyResult:
    offered: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # provider ids answered 201
    repeated: int = 0  # answered 200
    failed: int = 0
    max_lag_ms: float = 0.0  # how late the generator itself sent


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class _Sender:
    def __init__(self, session: aiohttp.ClientSession, url: str, key: str, pool: list[str], prefix: str):
        self.session, self.url, self.pool, self.prefix = session, url, pool, prefix
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.rng = random.Random(11)
        self.recent: list[tuple[str, str]] = []
        self.result = SteadyResult()

    def next_body(self, i: int) -> tuple[str, str]:
        if len(self.recent) >= 200 and self.rng.random() < REPEAT_SHARE:
            return self.rng.choice(self.recent)
        pid = f"{self.prefix}{i}"
        item = (pid, self.rng.choice(self.pool) + pid + '"}')
        self.recent = [*self.recent[-199:], item]
        return item

    async def send(self, i: int, due: float) -> None:
        loop = asyncio.get_running_loop()
        pid, body = self.next_body(i)
        self.result.max_lag_ms = max(self.result.max_lag_ms, (loop.time() - due) * 1000)
        try:
            async with self.session.post(self.url, data=body, headers=self.headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.result.latencies_ms.append((loop.time() - due) * 1000)
        if status == 201:
            self.result.created.append(pid)
        elif status == 200:
            self.result.repeated += 1
        else:
            self.result.failed += 1


async def run(
    url: str, key: str, pool: list[str], prefix: str, rate: int, seconds: int, connections: int = 64
) -> SteadyResult:
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sender = _Sender(session, url, key, pool, prefix)
        loop = asyncio.get_running_loop()
        total, t0 = rate * seconds, loop.time() + 0.05
        tasks: list[asyncio.Task[None]] = []
        i = 0
        while i < total:
            now = loop.time()
            while i < total and t0 + i / rate <= now:
                tasks.append(asyncio.create_task(sender.send(i, t0 + i / rate)))
                i += 1
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
        await asyncio.gather(*tasks)
        sender.result.offered, sender.result.seconds = total, loop.time() - t0
        return sender.result


def main() -> int:
    args: dict[str, Any] = json.load(sys.stdin)
    result = asyncio.run(run(**args))
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
