"""A constant offered load (wrk2-style; Debian's wrk has no -R), timed from the scheduled send.

A lean HTTP/1.1 client on keep-alive connections (uvloop, requests written as bytes, replies read
to their Content-Length, in the connection's callback: no task, timer or future a request):
aiohttp's client cost ~600 µs of CPU per request on the 2-core bench machine, over half a core at
1,000/s taken from the gateway it measures; a task a request, 127–143 µs; this, a fraction of that.

Request i is due at t0 + i/rate whether or not earlier ones have been answered, and its latency is
measured from that due time, so a stall shows up in every request that waited behind it
(no coordinated omission). Every provider id answered 201 is kept for the log check (a 200, a
repeat of an earlier one, is counted).
Run as a separate process: `python -m bench.steady < ARGS-JSON` writes a JSON result to ARGS' `out`
(`offer` does both). With `calls` (a file of signed voice webhooks, bench/voice.py), it sends
those instead, each once, as Twilio posts them: a call's provider id is its CallSid, and every
call is new, so a 200 counts as created.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote_plus, urlsplit

import uvloop

from .mix import REPEAT_SHARE

LATE_MS = 5.0  # the p99 target: a request answered later than this is kept in `late`
_CALL_ID = re.compile(r"(?:^|&)CallSid=([^&]*)")


@dataclass
class SteadyResult:
    offered: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # provider ids answered 201 (a call: 200)
    repeated: int = 0  # answered 200
    failed: int = 0
    max_lag_ms: float = 0.0  # how late the generator itself sent
    # How late the generator itself sent each request (its own wait for a core or its loop), in ms:
    # every request's, and each late request's (in the order of `late`).
    lags_ms: list[float] = field(default_factory=list)
    late_lags_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # the generator's own CPU while it sent (it shares the machine with the gateway)
    late: list[tuple[float, float]] = field(default_factory=list)  # (wall-clock due time, ms) over LATE_MS
    started_at: float = 0.0  # wall-clock time the first request was due; the load ran `seconds` from it


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, read just far enough to know the
    status and where the reply ends (the gateway's replies carry Content-Length)."""

    def __init__(self, sender: _Sender) -> None:
        self.sender = sender
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.job: _Job | None = None  # the request sent and not answered yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self.sender.ready(self)

    def send(self, job: _Job) -> None:
        assert self.transport is not None
        self.job = job
        self.transport.write(job.data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.job is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        if at < 0:  # not a reply this client can read to its end: failed, and the connection with it
            self.close()
            return
        line_end = head.find(b"\r\n", at)
        length = int(head[at + 15 : line_end if line_end > 0 else None])
        if len(self.buffer) >= end + 4 + length:
            status = int(head[9:12])
            del self.buffer[: end + 4 + length]
            job, self.job = self.job, None
            self.sender.answered(self, job, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        job, self.job = self.job, None
        self.sender.lost(self, job)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class _Job:
    pid: str
    due: float
    data: bytes
    lag_ms: float = 0.0  # how late the generator fired it (waiting for a free connection not counted)


class _Sender:
    """Sends each request as it falls due on an idle connection, opening one when none is idle (up
    to `connections`; meanwhile it waits its turn, first come first sent), and times its reply.

    No task, timer or future a request: the reply is read in the connection's callback, where its
    latency is taken and the next request waiting, if any, is sent. A request unanswered after
    TIMEOUT (looked for once a second) fails, and its connection is closed (its reply may still
    come)."""

    TIMEOUT = 10.0

    def __init__(
        self, url: str, key: str, pool: list[str], prefix: str, connections: int, calls: list[str] | None = None
    ):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.voice_head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()
        self.pool, self.prefix, self.calls = pool, prefix, calls
        self.connections = connections
        self.opened = 0  # connections open or opening
        self.live: set[_Connection] = set()
        self.idle: list[_Connection] = []
        self.waiting: deque[_Job] = deque()  # due, and no connection idle for them yet
        self.unanswered = 0  # sent or waiting, not answered (nor failed) yet
        self.all_sent = False
        self.closed = False  # the run is over: a connection that opens now is closed at once
        self.finished = asyncio.Event()
        self.rng = random.Random(11)
        self.recent: list[tuple[str, str]] = []
        self.result = SteadyResult()
        self.wall_offset = time.time() - time.perf_counter()  # a perf_counter reading plus this is wall-clock time

    def next_body(self, i: int) -> tuple[str, str]:
        if len(self.recent) >= 200 and self.rng.random() < REPEAT_SHARE:
            return self.rng.choice(self.recent)
        pid = f"{self.prefix}{i}"
        item = (pid, self.rng.choice(self.pool) + pid + '"}')
        self.recent = [*self.recent[-199:], item]
        return item

    def next_request(self, i: int) -> tuple[str, bytes]:
        """Request i's provider id and its bytes."""
        if self.calls is None:
            pid, body = self.next_body(i)
            data = body.encode()
            return pid, self.head + str(len(data)).encode() + b"\r\n\r\n" + data
        form, _, signature = self.calls[i].partition("\t")
        call_id = _CALL_ID.search(form)
        data = form.encode()
        head = (
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        return unquote_plus(call_id[1]) if call_id else "", self.voice_head + head.encode() + data

    def fire(self, i: int, due: float, loop: asyncio.AbstractEventLoop) -> None:
        """Request i is due: sent now on an idle connection, or as soon as one is free or opened."""
        pid, data = self.next_request(i)
        lag = (time.perf_counter() - due) * 1000
        self.result.max_lag_ms = max(self.result.max_lag_ms, lag)
        self.unanswered += 1
        job = _Job(pid, due, data, lag)
        if self.idle:
            self.idle.pop().send(job)
            return
        self.waiting.append(job)
        self._open_for_waiting(loop)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except Exception:  # refused, unreachable, or anything else: the connection never came
            self.opened -= 1
            if self.waiting:  # the request waiting longest fails, and the next one asks again
                self._record(self.waiting.popleft(), 0)
            self._open_for_waiting(loop)

    def ready(self, conn: _Connection) -> None:
        """A connection opened, or answered: it takes the request waiting longest, or waits itself."""
        if self.closed:
            conn.close()
            return
        self.live.add(conn)
        if self.waiting:
            conn.send(self.waiting.popleft())
        else:
            self.idle.append(conn)

    def answered(self, conn: _Connection, job: _Job, status: int) -> None:
        self._record(job, status)
        self.ready(conn)

    def lost(self, conn: _Connection, job: _Job | None) -> None:
        self.opened -= 1
        self.live.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if job is not None:
            self._record(job, 0)
        self._open_for_waiting(asyncio.get_running_loop())

    def _open_for_waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.waiting and self.opened < self.connections:
            self.opened += 1
            loop.create_task(self._open(loop))

    def sweep(self) -> None:
        """Requests unanswered after TIMEOUT fail; their connections are closed (never reused)."""
        cutoff = time.perf_counter() - self.TIMEOUT
        while self.waiting and self.waiting[0].due < cutoff:  # no connection came free for them
            self._record(self.waiting.popleft(), 0)
        for conn in list(self.live):
            if conn.job is not None and conn.job.due < cutoff:
                job, conn.job = conn.job, None
                self._record(job, 0)
                conn.close()

    def _record(self, job: _Job, status: int) -> None:
        ms = (time.perf_counter() - job.due) * 1000
        self.result.latencies_ms.append(ms)
        self.result.lags_ms.append(job.lag_ms)
        if ms > LATE_MS:  # for bench.commitprobe: was it waiting for the storage?
            self.result.late.append((job.due + self.wall_offset, ms))
            self.result.late_lags_ms.append(job.lag_ms)
        if status == 201 or (status == 200 and self.calls is not None):  # a call is answered 200
            self.result.created.append(job.pid)
        elif status == 200:
            self.result.repeated += 1
        else:
            self.result.failed += 1
        self.unanswered -= 1
        if self.all_sent and self.unanswered == 0:
            self.finished.set()

    def close(self) -> None:
        self.closed = True
        for conn in list(self.live):
            conn.close()


def _pace(
    loop: asyncio.AbstractEventLoop,
    sender: _Sender,
    total: int,
    t0: float,
    rate: int,
    sent: asyncio.Event,
    stop: threading.Event,
) -> None:
    """Hands each request to the loop as it falls due, from a thread of its own: `time.sleep` wakes
    within tens of µs of the time asked (clock_nanosleep), where uvloop's timers count whole
    milliseconds. Paced by the loop's timer, requests were sent up to 1–2 ms after they were due
    (p99 1.2–1.8 ms on the bench machine, measured as `lags_ms`), and that wait counted in every
    latency, the gateway's p99 included. Each call wakes the loop (call_soon_threadsafe)."""
    clock = time.perf_counter
    for i in range(total):
        due = t0 + i / rate
        wait = due - clock()
        if wait > 0:
            time.sleep(wait)
        if stop.is_set():  # the run ended early (it raised): nothing more is fired
            return
        loop.call_soon_threadsafe(sender.fire, i, due, loop)
    loop.call_soon_threadsafe(sent.set)


async def run(
    url: str,
    key: str,
    pool: list[str],
    prefix: str,
    rate: int,
    seconds: int,
    connections: int = 64,
    calls: str | None = None,
) -> SteadyResult:
    signed = Path(calls).read_text().splitlines() if calls else None
    if signed is not None and len(signed) < rate * seconds:
        raise ValueError(f"{calls}: {len(signed)} signed calls, fewer than the {rate * seconds} to send")
    sender = _Sender(url, key, pool, prefix, connections, signed)
    # The generator's own cyclic collections paused it 10-16 ms twice a phase (measured with gc
    # callbacks): every request in flight then read its reply late, and that lateness was counted
    # in the gateway's p99. Its garbage is freed by reference counting; the collector waits.
    gc.collect()
    gc.freeze()
    gc.disable()
    loop = asyncio.get_running_loop()
    total, t0, cpu0 = rate * seconds, time.perf_counter() + 0.05, time.process_time()
    sent, stop = asyncio.Event(), threading.Event()
    pacer = threading.Thread(target=_pace, args=(loop, sender, total, t0, rate, sent, stop), name="pacer", daemon=True)
    pacer.start()
    try:
        while not sent.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sent.wait(), 1.0)
            sender.sweep()
    finally:
        stop.set()
    sender.all_sent = True
    while sender.unanswered:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sender.finished.wait(), 1.0)
        sender.sweep()
    gc.enable()
    sender.close()
    sender.result.offered, sender.result.seconds = total, time.perf_counter() - t0
    sender.result.started_at = t0 + sender.wall_offset
    sender.result.cpu_s = time.process_time() - cpu0
    return sender.result


async def offer(
    url: str, key: str, pool: list[str], prefix: str, rate: int, seconds: int, calls: Path | None = None
) -> dict[str, Any]:
    """Run the load in a process of its own (it shares the machine, not the gateway's loop) and
    return its result as run() makes it."""
    with tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
        out = Path(tmp) / "result.json"
        spec: dict[str, Any] = {
            "url": url,
            "key": key,
            "pool": pool,
            "prefix": prefix,
            "rate": rate,
            "seconds": seconds,
            "out": str(out),
        }
        if calls is not None:
            spec["calls"] = str(calls)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.steady", stdin=subprocess.PIPE)
        await proc.communicate(json.dumps(spec).encode())
        if proc.returncode != 0:
            raise RuntimeError(f"bench.steady exited {proc.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> int:
    args: dict[str, Any] = json.load(sys.stdin)
    out = Path(args.pop("out"))
    result = uvloop.run(run(**args))
    # To a file, not stdout: the result is hundreds of KB, and through the pipe it arrived cut at
    # 64 KiB now and then (which failed the run).
    out.write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
