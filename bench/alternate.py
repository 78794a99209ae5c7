"""Side by side: the floor and each size's gateway up at once, saturated in turn in short slices, so
that the machine's drift between phases (bench/README.md, item 3) falls on each of them alike."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from . import logcheck, profile, setup, walfiles
from .load import Shape, ensure_loaded, settle
from .logcheck import LogCheck
from .mix import Sender, senders
from .servers import Server, start_floor, start_gateway
from .wrk import WrkResult, run_wrk, write_script

ROUNDS = 4  # even: a steady drift falls on every side alike (`order`)
SLICE_SECONDS = 3
WARM_SECONDS = 1  # before every slice, unmeasured: each slice follows its own side's load, none idle
FIRST_SECONDS = 2  # each gateway's first load, before VACUUM (ANALYZE) and the slices


def order(sides: int, rounds: int) -> list[int]:
    """The slices' order: every side once a round, the order reversed every round."""
    out: list[int] = []
    for k in range(rounds):
        out += range(sides) if k % 2 == 0 else reversed(range(sides))
    return out


def slice_prefix(run_id: str, side: int, n: int, *, warm: bool = False) -> str:
    """The provider ids of slice n of a side, or of the warm-up just before it: a prefix of its own
    for each (wrk numbers its ids from 0 every run), and no warm-up's is the start of a slice's."""
    return f"{run_id}-side-{'warm-' if warm else ''}{side}-{n}-"


@dataclass
class Side:
    """One server's measured slices summed: the floor (customers None) or a size's gateway."""

    customers: int | None
    requests: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0  # its workers' CPU seconds during its slices
    other: int = 0  # answers neither 201 nor 200
    errors: int = 0  # wrk's socket errors and time-outs
    checks: list[LogCheck] = field(default_factory=list)  # a gateway's log, slice by slice
    slice_names: list[str] = field(default_factory=list)  # "<side>-<slice>", from each check's prefix

    def unmeasured(self, result: WrkResult) -> None:
        """A warm-up: not measured, but its answers must be as good."""
        self.other += result.other
        self.errors += result.errors

    def add(self, result: WrkResult, cpu_s: float) -> None:
        self.requests += result.requests
        self.seconds += result.seconds
        self.cpu_s += cpu_s
        self.other += result.other
        self.errors += result.errors

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """Workers' CPU a request (the floor) or a decision (a gateway), µs."""
        return self.cpu_s / max(self.requests, 1) * 1e6

    @property
    def check(self) -> LogCheck | None:
        """The slices' checks added up (each slice is judged on its own: `Alternated.ok`)."""
        if not self.checks:
            return None
        total = LogCheck(0, 0, 0, 0, 0, exact=False)
        for c in self.checks:
            total.acked_new += c.acked_new
            total.rows += c.rows
            total.distinct_ids += c.distinct_ids
            total.missing += c.missing
            total.unacked_rows += c.unacked_rows
            total.in_flight += c.in_flight
            total.degraded += c.degraded
            total.commits += c.commits
        return total


@dataclass
class Alternated:
    """The side-by-side phase's result: the floor, then each size's gateway, smallest first."""

    floor: Side
    gateways: list[Side] = field(default_factory=list)
    wal: walfiles.Ready | str | None = None  # the WAL files readied before the slices, or why not

    @property
    def scale(self) -> float | None:
        """Gateway CPU per decision, the largest size against the smallest, less one."""
        if len(self.gateways) < 2:
            return None
        return self.gateways[-1].cpu_us / self.gateways[0].cpu_us - 1

    @property
    def ok(self) -> bool:
        """Every slice of every gateway logged, each once and none degraded; every answer 201 or 200."""
        sides = (self.floor, *self.gateways)
        answered = all(s.other == 0 and s.errors == 0 for s in sides)
        return answered and all(g.checks for g in self.gateways) and not self.failed_slices()

    def failed_slices(self) -> list[str]:
        """Each gateway slice whose log check failed, named, with what it found."""
        return [
            f"slice {name}: {c.describe()}"
            for g in self.gateways
            for name, c in zip(g.slice_names or ["?"] * len(g.checks), g.checks, strict=True)
            if not (c.ok and c.degraded == 0 and c.acked_new > 0)
        ]

    def line(self) -> str:
        parts = [
            f"floor **{self.floor.rate:,.0f} req/s** at {self.floor.cpu_us:,.0f} µs a request",
            *(
                f"{g.customers:,} customers {g.rate:,.0f} decisions/s (**{g.rate / self.floor.rate:.1%}** of the "
                f"floor; target ≥ 20 %) at {g.cpu_us:,.0f} µs a decision"
                for g in self.gateways
            ),
        ]
        scale = self.scale
        if scale is not None:
            small, big = self.gateways[0].customers or 0, self.gateways[-1].customers or 0
            parts.append(
                f"scale {small:,} → {big:,} customers: gateway CPU per decision **{scale:+.1%}** (target within ±10 %)"
            )
        bad = [
            f"{f'{s.customers:,}' if s.customers else 'floor'}: {s.other} not 201 or 200, {s.errors} errors"
            for s in (self.floor, *self.gateways)
            if s.other or s.errors
        ]
        checks = [f"{g.customers:,}: {c.describe()}" for g in self.gateways if (c := g.check) is not None]
        failed = bad + self.failed_slices()
        wal = self.wal.describe() if isinstance(self.wal, walfiles.Ready) else self.wal or "WAL files not readied"
        return (
            f"Side by side (the floor and each size's gateway up at once, saturated in turn with the same wrk "
            f"and mix: {ROUNDS} rounds of {SLICE_SECONDS} s slices, each after {WARM_SECONDS} s of its own load, "
            f"the order reversed every round, so that a steady drift falls on each alike; {wal}): "
            f"{'; '.join(parts)}. Log, each slice checked on its own, the slices added up here: {'; '.join(checks)}"
            + (f". **FAILED: {'; '.join(failed) or 'no slice checked'}**" if not self.ok else "")
            + "."
        )


@dataclass
class _Gateway:
    shape: Shape
    server: Server
    url: str
    pool: list[Sender]
    key: str


async def run(args: argparse.Namespace, shapes: list[Shape], run_id: str, tmp: Path, floor_script: Path) -> Alternated:
    """Start the floor and a gateway per size (each on a Redis database of its own), then saturate
    them in alternated slices and check every gateway slice's contacts in the log."""
    print(
        f"side by side: the floor and {len(shapes)} gateway(s), {ROUNDS} rounds of {SLICE_SECONDS} s", file=sys.stderr
    )
    servers: list[Server] = []
    try:
        floor = start_floor(args.workers)
        servers.append(floor)
        gateways: list[_Gateway] = []
        result = Alternated(Side(None), [Side(shape.customers) for shape in shapes])
        for i, shape in enumerate(shapes):
            url = await ensure_loaded(os.environ["DATABASE_URL"], shape)
            redis_url = setup.redis_url(os.environ["REDIS_URL"], setup.BENCH_REDIS_DB + i)
            redis.Redis.from_url(redis_url).flushdb()
            env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "GATEWAY_SPOOL_DIR": str(tmp / f"spool-side-{i}")}
            server, _ = start_gateway({**os.environ, **env}, args.workers)
            servers.append(server)
            gateways.append(_Gateway(shape, server, url, senders(shape), await setup.new_key(url)))
        # The contact log starts empty (ensure_loaded): a first load of its own, then VACUUM (ANALYZE),
        # so that autovacuum's first look at the new rows does not land in a measured slice.
        for which, g in enumerate(gateways, start=1):
            first = slice_prefix(run_id, which, -1, warm=True)
            script = write_script(tmp / f"side-first-{which}.lua", g.pool, first, g.key)
            result.gateways[which - 1].unmeasured(
                run_wrk(g.server.url + "/v1/contacts", script, seconds=FIRST_SECONDS, connections=args.connections)
            )
            await settle(g.url)
        result.wal = await setup.ready_wal(gateways[0].url)  # the files are the server's, for every database
        since = datetime.now(UTC) - timedelta(seconds=1)
        sides = [result.floor, *result.gateways]
        acked: list[tuple[int, str, int]] = []  # (gateway, slice prefix, replies 201)
        for n, which in enumerate(order(len(sides), ROUNDS)):
            if which == 0:
                server, warm, script = floor, floor_script, floor_script
            else:
                g = gateways[which - 1]
                server = g.server
                warm = write_script(
                    tmp / f"side-warm-{n}.lua", g.pool, slice_prefix(run_id, which, n, warm=True), g.key
                )
                script = write_script(tmp / f"side-{n}.lua", g.pool, slice_prefix(run_id, which, n), g.key)
            sides[which].unmeasured(
                run_wrk(server.url + "/v1/contacts", warm, seconds=WARM_SECONDS, connections=args.connections)
            )
            pids = server.worker_pids()
            before = profile.cpu_seconds(pids)
            sliced = run_wrk(server.url + "/v1/contacts", script, seconds=SLICE_SECONDS, connections=args.connections)
            sides[which].add(sliced, profile.used_since(before, profile.cpu_seconds(pids)))
            if which:
                acked.append((which, slice_prefix(run_id, which, n), sliced.ok201))
        await asyncio.sleep(1.0)  # let the requests wrk cut off at its deadline commit
        for which, prefix, ok201 in acked:  # each slice: ≤ one row a connection cut off unread
            g = gateways[which - 1]
            sides[which].checks.append(await logcheck.by_count(g.url, since, prefix, ok201, args.connections))
            sides[which].slice_names.append(prefix.removeprefix(f"{run_id}-side-").rstrip("-"))
        return result
    finally:
        for server in servers:
            server.stop()
