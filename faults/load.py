"""The fault run's load: phone contacts at a constant rate, 5 % of them retried, every answer recorded.

Contact n is due at t0 + n/rate whether or not earlier ones were answered, and its latency is timed
from that due time (no coordinated omission). One contact in RETRY_EVERY is sent again with the same
provider id RETRY_DELAY seconds after it was due, whether or not the first send has been answered,
as Twilio and Amazon Connect do when a webhook is slow. Runs as its own process until SIGTERM (or
its time cap): `python -m faults.load SPEC-JSON`; answers go to the spec's `out` file as JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

RETRY_EVERY = 20  # 5 % of contacts
RETRY_DELAY = 0.5
CLIENT_TIMEOUT = 10.0
CONNECTIONS = 2000  # enough that a stall queues in the gateway, not in the client


@dataclass
class Answer:
    """One request and what came back (status 0: no HTTP answer at all)."""

    provider_id: str
    retry: bool
    sent: float  # wall-clock time the request was due
    latency_ms: float  # from due time to the answer read
    status: int
    contact_id: str | None = None
    action: str | None = None
    degraded: bool | None = None
    error: str | None = None
    lag_ms: float = 0.0  # how late the generator itself sent it (its own CPU starvation, not the gateway's)


@dataclass
class Spec:
    url: str
    key: str
    prefix: str
    rate: int
    out: str
    max_seconds: float = 600.0
    progress_every: float = 5.0


def is_retried(n: int) -> bool:
    return n % RETRY_EVERY == RETRY_EVERY // 2


def body(prefix: str, n: int) -> dict[str, str]:
    return {"channel": "phone", "from": f"07700 9{n % 100_000:05d}", "provider_id": f"{prefix}{n}"}


class Load:
    def __init__(self, session: aiohttp.ClientSession, spec: Spec) -> None:
        self.session, self.spec = session, spec
        self.headers = {"Authorization": f"Bearer {spec.key}"}
        self.answers: list[Answer] = []
        self.in_flight = 0

    async def send(self, n: int, due: float, wall: float, retry: bool) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, due - loop.time()))
        payload = body(self.spec.prefix, n)
        answer = Answer(payload["provider_id"], retry, wall, 0.0, 0, lag_ms=(loop.time() - due) * 1000)
        self.in_flight += 1
        try:
            async with self.session.post(self.spec.url, json=payload, headers=self.headers) as resp:
                answer.status = resp.status
                data: dict[str, Any] = await resp.json(content_type=None)
            answer.contact_id, answer.action = data.get("contact_id"), data.get("action")
            answer.degraded = data.get("degraded")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            answer.error = repr(exc)[:200]
        finally:
            self.in_flight -= 1
        answer.latency_ms = (loop.time() - due) * 1000
        self.answers.append(answer)

    def progress(self, elapsed: float, sent: int) -> str:
        ok = sum(1 for a in self.answers if 200 <= a.status < 300)
        degraded = sum(1 for a in self.answers if a.degraded)
        failed = sum(1 for a in self.answers if not 200 <= a.status < 300)
        return (
            f"    load {elapsed:5.0f} s: {sent:,} sent, {ok:,} 2xx, {degraded:,} degraded, "
            f"{failed:,} failed, {self.in_flight} awaiting an answer"
        )


async def run(spec: Spec, stop: asyncio.Event) -> list[Answer]:
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        load = Load(session, spec)
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05
        wall0 = time.time() + (t0 - loop.time())
        tasks: list[asyncio.Task[None]] = []
        n, next_progress = 0, spec.progress_every
        while not stop.is_set() and loop.time() - t0 < spec.max_seconds:
            due = t0 + n / spec.rate
            tasks.append(asyncio.create_task(load.send(n, due, wall0 + (due - t0), retry=False)))
            if is_retried(n):
                later = due + RETRY_DELAY
                tasks.append(asyncio.create_task(load.send(n, later, wall0 + (later - t0), retry=True)))
            n += 1
            if due - t0 >= next_progress:
                print(load.progress(due - t0, len(tasks)), file=sys.stderr, flush=True)
                next_progress += spec.progress_every
            with contextlib.suppress(TimeoutError):  # the time-out is the way to the next due time
                await asyncio.wait_for(stop.wait(), max(0.0, t0 + n / spec.rate - loop.time()))
        await asyncio.gather(*tasks)
        return load.answers


def read_answers(path: Path) -> list[Answer]:
    return [Answer(**json.loads(line)) for line in path.read_text().splitlines() if line]


async def _main(spec: Spec) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    answers = await run(spec, stop)
    Path(spec.out).write_text("".join(json.dumps(asdict(a)) + "\n" for a in answers))
    return 0


def main(argv: list[str]) -> int:
    return asyncio.run(_main(Spec(**json.loads(argv[0]))))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
