"""Side by side: the floor and every data set's gateway up at once, saturated in alternated slices.

The phases before measure the floor first and each data set a minute or more after it, and this
machine's speed drifts by more than the targets' margins within that (bench/RESULTS.md: the floor's
cost a request moved from 38 to 51 µs within an hour; in the runs of 2026-11-28 01:26 and 01:32 the
same code read +43 % and +9.6 % from 10,000 to 1,000,000 customers). Here the floor and the gateways
run together, each idle but for the one being saturated, and take short slices in turn, the order
reversed every round (floor, 10 k, 1 M, then 1 M, 10 k, floor, ...), so that a drift falls on each
of them alike. The share of the floor and the scale are read from the sums of the slices.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from . import logcheck, profile
from .load import Shape, ensure_loaded, settle
from .logcheck import LogCheck
from .mix import senders
from .servers import Server, start_floor, start_gateway
from .wrk import WrkResult, run_wrk, write_script

ROUNDS = 4  # even: a steady drift falls on every side alike (`order`)
SLICE_SECONDS = 3
WARM_SECONDS = 2


@dataclass
class Side:
    """One server's slices summed: the floor (customers None) or a data set's gateway."""

    customers: int | None
    requests: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0  # its workers' CPU seconds during its slices
    acked_new: int = 0  # replies 201, for the log check
    slices: int = 0
    check: LogCheck | None = None  # a gateway's rows of every slice, against what was acknowledged

    def add(self, result: WrkResult, cpu_s: float) -> None:
        self.requests += result.requests
        self.seconds += result.seconds
        self.cpu_s += cpu_s
        self.acked_new += result.ok201
        self.slices += 1

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """Workers' CPU a request (the floor) or a decision (a gateway), µs."""
        return self.cpu_s / max(self.requests, 1) * 1e6


def order(sides: int, rounds: int) -> list[int]:
    """The slices' order: every side once a round, the order reversed every other round."""
    out: list[int] = []
    for k in range(rounds):
        out += range(sides) if k % 2 == 0 else reversed(range(sides))
    return out


@dataclass
class Alternated:
    floor: Side
    gateways: list[Side] = field(default_factory=list)
    rounds: int = ROUNDS
    slice_s: int = SLICE_SECONDS

    @property
    def scale(self) -> float | None:
        """Gateway CPU per decision, the largest data set against the smallest, less one."""
        if len(self.gateways) < 2:
            return None
        return self.gateways[-1].cpu_us / self.gateways[0].cpu_us - 1

    @property
    def ok(self) -> bool:
        return all(g.check is not None and g.check.ok and g.check.degraded == 0 for g in self.gateways)

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
        checks = "; ".join(f"{g.customers:,}: {g.check.describe()}" for g in self.gateways if g.check is not None)
        return (
            f"Side by side (the floor and each data set's gateway up at once, saturated in turn with the same "
            f"wrk and mix: {self.rounds} rounds of {self.slice_s} s slices, the order reversed every round, so "
            f"that the machine's drift falls on each alike): {'; '.join(parts)}. Log: {checks}."
        )


async def run(
    shapes: list[Shape],
    base_db: str,
    redis_url_of: Callable[[int], str],
    key_of: Callable[[str], Awaitable[str]],
    floor_script: Path,
    tmp: Path,
    prefix: str,
    workers: int,
    connections: int,
) -> Alternated:
    """Start the floor and a gateway per data set (each on a Redis database of its own:
    `redis_url_of(i)`), warm each, then saturate them in alternated slices."""
    print(
        f"side by side: the floor and {len(shapes)} gateway(s), {ROUNDS} rounds of {SLICE_SECONDS} s slices",
        file=sys.stderr,
    )
    servers: list[Server] = []
    try:
        floor = start_floor(workers)
        servers.append(floor)
        run_wrk(floor.url + "/v1/contacts", floor_script, seconds=WARM_SECONDS, connections=connections)
        gateways = []
        for i, shape in enumerate(shapes):
            url, redis_url = await ensure_loaded(base_db, shape), redis_url_of(i)
            redis.Redis.from_url(redis_url).flushdb()
            key = await key_of(url)
            env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "GATEWAY_SPOOL_DIR": str(tmp / f"spool-side-{i}")}
            server, _ = start_gateway({**os.environ, **env}, workers)
            servers.append(server)
            pool = senders(shape)
            warm = write_script(tmp / f"side-warm-{shape.customers}.lua", pool, f"{prefix}warm-{i}-", key)
            run_wrk(server.url + "/v1/contacts", warm, seconds=WARM_SECONDS, connections=connections)
            await settle(url)
            gateways.append((shape, server, url, pool, key))
        since = datetime.now(UTC) - timedelta(seconds=1)
        result = Alternated(Side(None), [Side(shape.customers) for shape in shapes])
        sides = [result.floor, *result.gateways]
        for n, which in enumerate(order(len(sides), ROUNDS)):
            if which == 0:
                server, script = floor, floor_script
            else:
                shape, server, _, pool, key = gateways[which - 1]
                script = write_script(tmp / f"side-{shape.customers}-{n}.lua", pool, f"{prefix}{which - 1}-{n}-", key)
            pids = server.worker_pids()
            before = profile.cpu_seconds(pids)
            sliced = run_wrk(server.url + "/v1/contacts", script, seconds=SLICE_SECONDS, connections=connections)
            sides[which].add(sliced, profile.used_since(before, profile.cpu_seconds(pids)))
        await asyncio.sleep(1.0)  # let the requests wrk cut off at its deadline commit
        for i, (side, (_, _, url, _, _)) in enumerate(zip(result.gateways, gateways, strict=True)):
            side.check = await logcheck.by_count(url, since, f"{prefix}{i}-", side.acked_new, connections * side.slices)
        return result
    finally:
        for server in servers:
            server.stop()
