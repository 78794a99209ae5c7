"""`make faults`: a real gateway, its own PostgreSQL and Redis, steady load, and four faults one after another.

`python -m faults.run [--rate 150] [--hang-seconds 30] [--only FAULT] [--workers 2]`. Everything runs
under a temporary directory and talks only to 127.0.0.1. Prints one table row per fault and exits
1 if any fault lost, duplicated or split a contact (the whole table is printed first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import asyncpg

from bench.servers import wait_ready

from . import logs
from .inject import FAULTS, INJECT, Timings, Window, say
from .load import CLIENT_TIMEOUT, Spec, read_answers
from .measure import FaultResult, LogRow, failure_kinds, measure, render
from .services import Services, run_query

_ROWS = "SELECT id::text AS contact_id, provider_id, status FROM contacts WHERE starts_with(provider_id, $1)"
_COUNT = "SELECT count(*) AS n FROM contacts WHERE starts_with(provider_id, $1)"


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m faults.run", description=__doc__)
    p.add_argument("--rate", type=int, default=150, help="contacts per second offered (default 150)")
    p.add_argument("--hang-seconds", type=float, default=30, help="how long PostgreSQL stays frozen")
    p.add_argument("--only", choices=FAULTS, action="append", help="run only this fault (repeatable)")
    p.add_argument("--workers", type=int, default=2, help="gateway worker processes (GATEWAY_WORKERS)")
    p.add_argument("--warmup", type=float, default=10, help="seconds of load before each fault")
    p.add_argument("--recovery", type=float, default=20, help="seconds of load after each fault ends")
    p.add_argument("--pg-down-seconds", type=float, default=5, help="between PostgreSQL's kill -9 and its restart")
    p.add_argument("--redis-down-seconds", type=float, default=20, help="between Redis's SIGKILL and its restart")
    p.add_argument("--drain-seconds", type=float, default=90, help="at most this long waiting for the spool")
    p.add_argument("--keep", action="store_true", help="keep the run's directory (logs, answers, data)")
    args = p.parse_args(argv)
    if args.rate < 1 or args.rate > 2000 or args.workers < 1:
        p.error("--rate must be 1..2000 and --workers at least 1")
    return args


def _start_load(
    services: Services, key: str, prefix: str, out: Path, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    assert services.gateway is not None
    cap = args.warmup + args.recovery + max(args.hang_seconds, args.redis_down_seconds) + 180
    spec = Spec(services.gateway.url + "/v1/contacts", key, prefix, args.rate, str(out), max_seconds=cap)
    return subprocess.Popen([sys.executable, "-m", "faults.load", json.dumps(asdict(spec))])


def _stop_load(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(CLIENT_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError("the load generator did not stop; its answers are lost") from None


def _drain(services: Services, prefix: str, limit: float) -> tuple[bool, float]:
    """Wait until the spool is empty and the fault's row count has held still for 5 s (at most `limit`)."""
    started, last, still_since = time.monotonic(), -1, time.monotonic()
    while time.monotonic() - started < limit:
        try:
            n = int(run_query(services.database_url, _COUNT, prefix)[0]["n"])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            n = -1  # not counted: an unreachable database is not a steady count
        if n != last or n < 0:
            last, still_since = n, time.monotonic()
        elif services.spooled_files() == 0 and time.monotonic() - still_since >= 5:
            return True, time.monotonic() - started
        time.sleep(1)
    return False, time.monotonic() - started


def _wait_healthy(services: Services, fault: str) -> None:
    assert services.gateway is not None
    try:
        wait_ready(services.gateway, 60)
    except RuntimeError as exc:
        say(fault, f"gateway not ready before the fault: {exc}")


def _report_logs(services: Services, fault: str, offset: int) -> None:
    total, shapes = logs.summarise(services.log_path, offset)
    say(fault, f"gateway log: {total:,} line(s) during this fault; most frequent:")
    for text, n in shapes:
        say(fault, f"  {n:>7,} × {text}")


def run_fault(fault: str, services: Services, key: str, args: argparse.Namespace) -> FaultResult:
    prefix = f"faults-{fault}-"
    timings = Timings(args.pg_down_seconds, args.hang_seconds, args.redis_down_seconds)
    _wait_healthy(services, fault)
    offset = logs.size(services.log_path)
    out = services.base / f"answers-{fault}.jsonl"
    say(fault, f"load at {args.rate}/s; warm-up {args.warmup:.0f} s")
    load = _start_load(services, key, prefix, out, args)
    try:
        time.sleep(args.warmup)
        window = INJECT[fault](services, timings)
        say(fault, f"recovery: {args.recovery:.0f} s more load")
        time.sleep(args.recovery)
    finally:
        _stop_load(load)
    answers = read_answers(out)
    lag = max((a.lag_ms for a in answers), default=0.0)
    say(fault, f"load stopped: {len(answers):,} answers recorded (the generator sent at most {lag:,.0f} ms late)")
    say(fault, "waiting for the spool to drain")
    drained, took = _drain(services, prefix, args.drain_seconds)
    say(
        fault,
        f"{'drained' if drained else 'NOT drained'} after {took:.0f} s; {services.spooled_files()} spool file(s) "
        f"left, {services.quarantined()} record(s) in quarantine",
    )
    rows = [LogRow(**r) for r in run_query(services.database_url, _ROWS, prefix)]
    result = measure(fault, answers, rows, window, drained)
    if result.failed:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in failure_kinds(answers).most_common())
        say(fault, f"not acknowledged: {kinds}")
    _report_logs(services, fault, offset)
    _describe(fault, result, window)
    return result


def _describe(fault: str, r: FaultResult, window: Window) -> None:
    verdict = "ok" if r.ok else "DEFECT"
    say(
        fault,
        f"{verdict}: {r.acked:,} acknowledged, {r.rows:,} rows, {r.lost:,} lost ({r.unlogged_ids:,} provider ids "
        f"acknowledged with no row at all), {r.duplicated:,} duplicated, {r.split:,} split retries, "
        f"{r.degraded:,} degraded; {r.dropped:,} contacts never acknowledged and not logged either; "
        f"fault window {window.end - window.start:.1f} s",
    )
    for example in r.examples:
        say(fault, f"  e.g. {example}")


def _run(args: argparse.Namespace, base: Path, results: list[FaultResult]) -> None:
    services = Services(base)
    try:
        services.start_postgres()
        services.start_redis()
        print(f"faults: PostgreSQL {services.database_url}, Redis {services.redis_url} (in {base})", file=sys.stderr)
        key = asyncio.run(services.prepare())
        ready = services.start_gateway(args.workers)
        assert services.gateway is not None
        print(
            f"faults: {args.workers} gateway workers ready in {ready:.1f} s at {services.gateway.url}", file=sys.stderr
        )
        for fault in args.only or FAULTS:
            results.append(run_fault(fault, services, key, args))
    finally:
        services.stop()


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    # SIGTERM unwinds like Ctrl-C, so the run's PostgreSQL (perhaps frozen) and Redis are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = Path(tempfile.mkdtemp(prefix="gateway-faults-"))
    started, aborted = time.monotonic(), None
    results: list[FaultResult] = []
    try:
        _run(args, base, results)
    except Exception as exc:
        aborted = exc
    print(
        f"\nfaults: {args.rate} contacts/s, {args.workers} workers, PostgreSQL hang {args.hang_seconds:.0f} s, "
        f"{time.monotonic() - started:.0f} s in all\n"
    )
    print(render(results))
    if aborted is not None or args.keep:
        print(f"\nfaults: the run's files are in {base}", file=sys.stderr)
    else:
        shutil.rmtree(base, ignore_errors=True)
    if aborted is not None:
        print(f"faults: run aborted: {aborted!r}", file=sys.stderr)
        return 2
    bad = [r.fault for r in results if not r.ok]
    if bad:
        print(f"faults: contacts lost, duplicated or split under: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
