"""`make bench`: floor and decide path under the same load, at each data-set size; prints and records.

`python -m bench.run [--customers 10000,1000000] [--seconds 10] [--rate 1000] [--quick]`, with
DATABASE_URL and REDIS_URL set (the Makefile starts embedded ones when they are unset).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psutil
import redis

from gateway import db

from . import alternate, commitprobe, logcheck, mail, profile, propagation, redismem, report, setup, voice, walfiles
from .load import Shape, ensure_loaded, settle
from .mix import body_prefix, describe, senders
from .servers import Server, start_floor, start_gateway
from .steady import offer
from .wrk import WrkResult, ensure_wrk, run_wrk, write_script

# The py-spy split is taken in a slice of its own after each measured phase, under the same load:
# sampling costs the machine CPU (measured on 2026-11-27: 3–16 % fewer decisions a second with it
# at saturation, and a longer tail at 1,000/s), which the floor, measured without it, does not pay.
PROFILE_SECONDS = 5


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--customers", default="10000,1000000", help="comma-separated data-set sizes")
    p.add_argument("--seconds", type=int, default=10, help="length of each load phase")
    p.add_argument("--rate", type=int, default=1000, help="offered load of the constant-rate phase")
    p.add_argument("--connections", type=int, default=64, help="wrk connections at saturation")
    p.add_argument("--changes", type=int, default=100, help="restriction changes to time")
    p.add_argument("--workers", type=int, default=int(os.environ.get("GATEWAY_WORKERS") or 2))
    p.add_argument("--quick", action="store_true", help="10,000 customers, 5 s phases, 30 changes")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.customers, args.seconds, args.changes = "10000", 5, 30
    args.sizes = [int(x) for x in args.customers.split(",")]
    if len(args.sizes) > setup.MAX_SIZES:  # the side-by-side phase runs a gateway per size at once
        p.error(f"--customers: at most {setup.MAX_SIZES} sizes")
    return args


def _saturate(server: Server, script: Path, args: argparse.Namespace) -> tuple[WrkResult, float]:
    """A short warm-up, then the measured wrk run; also the workers' CPU seconds it used."""
    run_wrk(server.url + "/v1/contacts", script, seconds=2, connections=args.connections)
    procs = [psutil.Process(p) for p in server.worker_pids()]
    before = sum(sum(p.cpu_times()[:2]) for p in procs)
    result = run_wrk(server.url + "/v1/contacts", script, seconds=args.seconds, connections=args.connections)
    return result, sum(sum(p.cpu_times()[:2]) for p in procs) - before


async def _steady(url: str, key: str, pool: list[str], prefix: str, args: argparse.Namespace) -> dict[str, object]:
    return await offer(url + "/v1/contacts", key, pool, prefix, args.rate, args.seconds)


async def _floor(
    args: argparse.Namespace, pool_script: Path, bodies: list[str], prefix: str
) -> tuple[WrkResult, float, dict[str, object]]:
    """The floor's wrk result, its workers' CPU seconds during it, and the constant load's result
    against it: what the generator, the kernel and aiohttp add to every latency, with nothing decided."""
    print(
        f"floor: aiohttp fixed JSON, {args.workers} workers, wrk -c{args.connections} for {args.seconds} s, "
        f"then {args.rate}/s",
        file=sys.stderr,
    )
    floor = start_floor(args.workers)
    try:
        saturated, cpu = _saturate(floor, pool_script, args)
        steady = await _steady(floor.url, "floor", bodies, prefix, args)
        return saturated, cpu, steady
    finally:
        floor.stop()


def _scripts(tmp: Path, shape: Shape, prefix: str, key: str, *names: str) -> tuple[list[Path], list[str]]:
    """A wrk script per phase name (its provider ids start with the prefix and the name), and the
    request bodies the constant load sends."""
    pool = senders(shape)
    bodies = [body_prefix(s) for s in pool]
    scripts = [write_script(tmp / f"{name}-{shape.customers}.lua", pool, f"{prefix}{name}-", key) for name in names]
    return scripts, bodies


async def _profile_saturated(
    server: Server, url: str, script: Path, prefix: str, connections: int, workers: list[int]
) -> tuple[profile.Profile, logcheck.LogCheck]:
    """The saturation profile: one worker sampled by py-spy for a slice of its own, under the same
    load; its contacts are checked in the log like the measured phase's."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    with profile.sampled(workers[0], PROFILE_SECONDS) as split:
        sliced = run_wrk(server.url + "/v1/contacts", script, seconds=PROFILE_SECONDS, connections=connections)
    await asyncio.sleep(1.0)
    return split, await logcheck.by_count(url, since, prefix, sliced.ok201, connections)


async def _profile_steady(
    server: Server, url: str, key: str, bodies: list[str], prefix: str, args: argparse.Namespace, workers: list[int]
) -> tuple[profile.Profile, logcheck.LogCheck, int]:
    """The constant load's profile, in a slice of its own at the same rate (and its failed requests)."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    sliced = argparse.Namespace(**{**vars(args), "seconds": PROFILE_SECONDS})
    with profile.sampled(workers[0], PROFILE_SECONDS) as split:
        steady = await _steady(server.url, key, bodies, prefix, sliced)
    created = steady["created"]
    assert isinstance(created, list)
    return split, await logcheck.by_id(url, since, prefix, created, int(steady["failed"])), int(steady["failed"])


async def _wal_position(url: str) -> walfiles.Position | None:
    conn = await db.connect(url)
    try:
        return await walfiles.position(conn)
    except asyncpg.PostgresError:  # pg_ls_waldir needs a superuser or pg_monitor
        return None
    finally:
        await conn.close()


async def _scale(args: argparse.Namespace, shape: Shape, run_id: str, tmp: Path) -> report.ScaleResult:
    base_db, base_redis = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    url, redis_url = await ensure_loaded(base_db, shape), setup.redis_url(base_redis)
    redis.Redis.from_url(redis_url).flushdb()
    key = await setup.new_key(url)
    wal_ready = await setup.ready_wal(url)
    prefix = f"{run_id}-{shape.customers}-"
    (warm, sat, sat_profiled), bodies = _scripts(tmp, shape, prefix, key, "warm", "sat", "profiled-sat")
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "GATEWAY_SPOOL_DIR": str(tmp / "spool")}
    print(f"gateway: {shape.customers:,} customers, starting {args.workers} workers", file=sys.stderr)
    server, startup = start_gateway(env, args.workers)
    try:
        run_wrk(server.url + "/v1/contacts", warm, seconds=2, connections=args.connections)
        await settle(url)
        since = datetime.now(UTC) - timedelta(seconds=1)
        workers = server.worker_pids()
        cpu0, pg0 = profile.cpu_seconds(workers), profile.cpu_seconds(profile.postgres_pids(url))
        saturated = run_wrk(server.url + "/v1/contacts", sat, seconds=args.seconds, connections=args.connections)
        cpu = profile.used_since(cpu0, profile.cpu_seconds(workers))
        pg_sat = profile.used_since(pg0, profile.cpu_seconds(profile.postgres_pids(url)))
        await asyncio.sleep(1.0)  # let the requests wrk cut off at its deadline commit
        sat_check = await logcheck.by_count(url, since, prefix + "sat-", saturated.ok201, args.connections)
        print(f"  saturation: {saturated.rate:,.0f}/s; {sat_check.describe()}", file=sys.stderr)
        split, split_check = await _profile_saturated(
            server, url, sat_profiled, prefix + "profiled-sat-", args.connections, workers
        )
        print(f"  saturation, profiled slice: {split_check.describe()}", file=sys.stderr)
        await settle(url)
        since = datetime.now(UTC) - timedelta(seconds=1)
        # The constant load runs while a checkpoint spreads its writes, as a production server's
        # load does most of the time (bench/walfiles.py).
        async with walfiles.spreading(url) as spread, commitprobe.probing(url) as probe:
            postgres = [pid for pid in profile.postgres_pids(url) if pid != probe.backend_pid]
            cpu0, pg0 = profile.cpu_seconds(workers), profile.cpu_seconds(postgres)
            wait0, pg_wait0 = profile.waited_seconds(workers), profile.waited_seconds(postgres)
            wal0 = await _wal_position(url)
            machine0 = profile.Machine.now()
            steady = await _steady(server.url, key, bodies, prefix + "steady-", args)
            machine1 = profile.Machine.now()
            wal1 = await _wal_position(url)
            steady_cpu = profile.used_since(cpu0, profile.cpu_seconds(workers))
            steady_wait = profile.used_since(wait0, profile.waited_seconds(workers))
            later = [pid for pid in profile.postgres_pids(url) if pid != probe.backend_pid]
            pg_steady = profile.used_since(pg0, profile.cpu_seconds(later))
            pg_steady_wait = profile.used_since(pg_wait0, profile.waited_seconds(later))
            others = profile.others_since(machine0, machine1, [*workers, *later], [probe.backend_pid])
        start = float(steady["started_at"])  # the probe's commits of the load's own window
        commits = probe.within(start, start + float(steady["seconds"]))
        created = steady["created"]
        assert isinstance(created, list)
        steady_check = await logcheck.by_id(url, since, prefix + "steady-", created, int(steady["failed"]))
        print(f"  {args.rate}/s: {steady_check.describe()}", file=sys.stderr)
        steady_split, steady_split_check, steady_split_failed = await _profile_steady(
            server, url, key, bodies, prefix + "profiled-steady-", args, workers
        )
        print(f"  {args.rate}/s, profiled slice: {steady_split_check.describe()}", file=sys.stderr)
        await settle(url)
        # Propagation under load: the same constant load again, in a phase of its own (its probe
        # adds decide calls of its own, which must not count in the figures above), while
        # restriction changes are made and timed until every worker enforces them. PostgreSQL's own
        # commit is probed beside it too, so that a stall of this load can be told from the database's.
        async with commitprobe.probing(url) as prop_probe:
            load = asyncio.create_task(_steady(server.url, key, bodies, prefix + "prop-load-", args))
            await asyncio.sleep(0.5)
            changes = await propagation.measure(server, url, redis_url, shape, key, run_id, args.changes, load)
            loaded = await load
        start = float(loaded["started_at"])
        prop_commits = prop_probe.within(start, start + float(loaded["seconds"]))
        rss = server.rss_mb()
        remembered = await redismem.measure(redis_url)
    finally:
        server.stop()
    return report.ScaleResult(
        shape.customers,
        startup,
        saturated,
        cpu,
        sat_check,
        steady,
        steady_check,
        report.Propagation([c.seconds for c in changes], loaded, prop_commits),
        rss,
        split,
        report.Cpu(
            steady_cpu,
            pg_sat,
            pg_steady,
            steady_wait,
            pg_steady_wait,
            others,
            machine1.steal_s - machine0.steal_s,
            machine1.at - machine0.at,
        ),
        steady_split,
        commits,
        (split_check, steady_split_check),
        steady_split_failed,
        remembered,
        wal_ready,
        walfiles.entered(wal0, wal1) if wal0 and wal1 else None,
        spread,
    )


async def _main(args: argparse.Namespace) -> int:
    ensure_wrk()
    run_id = "b" + uuid.uuid4().hex[:8]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as name:
        tmp = Path(name)
        shapes = [Shape(n) for n in args.sizes]
        await ensure_loaded(os.environ["DATABASE_URL"], shapes[-1])
        (floor_script,), floor_bodies = _scripts(tmp, shapes[-1], f"{run_id}-floor-", "floor", "sat")
        floor, floor_cpu, floor_steady = await _floor(args, floor_script, floor_bodies, f"{run_id}-floor-steady-")
        print(f"  floor: {floor.rate:,.0f}/s", file=sys.stderr)
        scales = [await _scale(args, s, run_id, tmp) for s in shapes]
        side = await alternate.run(args, shapes, run_id, tmp, floor_script)
        print(f"  side by side: {side.line()}", file=sys.stderr)
        mailed = await mail.run(args, shapes[-1], run_id, tmp, setup.redis_url(os.environ["REDIS_URL"]))
        called = await voice.run(args, shapes[-1], run_id, tmp, setup.redis_url(os.environ["REDIS_URL"]))
    text = report.render(
        args, floor, floor_cpu, floor_steady, scales, describe(senders(shapes[-1])), time.monotonic() - started
    )
    text += side.line() + "\n"
    text += mailed.line() + "\n"
    text += called.line() + "\n"
    print(text)
    if not args.no_record:
        report.append(text)
    return 0 if all(s.ok for s in scales) and side.ok and mailed.check.ok and called.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        print("bench: DATABASE_URL and REDIS_URL must be set (`make bench` sets them)", file=sys.stderr)
        return 2
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
