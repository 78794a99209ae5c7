"""The results table: rendered as Markdown, printed, and appended to bench/RESULTS.md."""

from __future__ import annotations

import argparse
import os
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .commitprobe import INTERVAL, CommitProbe
from .logcheck import LogCheck
from .profile import Profile
from .redismem import RedisMemory
from .steady import LATE_MS, percentile
from .walfiles import Entered, Ready
from .wrk import WrkResult

RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass
class Cpu:
    """CPU seconds beyond the saturation run's gateway figure: the constant load's, and PostgreSQL's."""

    steady_s: float  # gateway workers during the constant load
    pg_saturation_s: float  # every PostgreSQL process during the saturation run
    pg_steady_s: float
    steady_wait_s: float = 0.0  # gateway workers' time runnable but waiting for a core, constant load
    pg_steady_wait_s: float = 0.0  # PostgreSQL's, the same
    # The constant load's CPU seconds taken by every other process on the machine, by name (the
    # generator, born and gone within it, is not among them), and by the hypervisor (steal).
    others: list[tuple[str, float]] = field(default_factory=list)
    steal_s: float = 0.0
    others_window_s: float = 0.0  # the time between the two snapshots (the load, its start and its end)


@dataclass
class Propagation:
    """Restriction changes timed during a constant load of their own (`load`: its generator's result)."""

    seconds: list[float]
    load: dict[str, Any]
    commits: CommitProbe | None = None  # PostgreSQL's own commit, probed beside that load

    def describe(self) -> str:
        prop = [x * 1000 for x in self.seconds]
        if not prop:
            return "no change fitted in the phase"
        lat = [float(x) for x in self.load["latencies_ms"]]
        probed = (
            f"; PostgreSQL's own one-row commit meanwhile, p50 / p99 / max ms: "
            f"{self.commits.describe(self.load.get('late', []))}"
            if self.commits is not None
            else ""
        )
        return (
            f"{percentile(prop, 50):.0f} / {percentile(prop, 99):.0f} / {max(prop):.0f} (n={len(prop)}; "
            f"the load meanwhile: {int(self.load['offered']) / float(self.load['seconds']):,.0f}/s, "
            f"p50 / p99 / p99.9 {_ms(lat)} ms{probed})"
        )


@dataclass
class ScaleResult:
    customers: int
    startup_s: float
    saturated: WrkResult
    cpu_s: float  # gateway workers' CPU seconds during the saturation run
    sat_check: LogCheck
    steady: dict[str, Any]
    steady_check: LogCheck
    propagation: Propagation
    rss_mb: list[float]
    split: Profile  # one worker, sampled in a slice of its own after the saturation run
    more: Cpu
    steady_split: Profile  # one worker, sampled in a slice of its own after the constant load
    commits: CommitProbe  # PostgreSQL's own commit time, probed during the constant load
    profiled_checks: tuple[LogCheck, ...] = ()  # the log checks of those two slices
    profiled_failed: int = 0  # requests of the constant load's slice that failed
    remembered: RedisMemory | None = None  # what the answers remembered for retries cost Redis
    wal_ready: Ready | str | None = None  # the WAL files readied before the phases, or why not
    wal_steady: Entered | None = None  # what the constant load wrote to the WAL
    spread: bool | None = None  # whether a spread checkpoint was under way as the constant load began

    @property
    def cpu_us_per_decision(self) -> float:
        return self.cpu_s / max(self.saturated.requests, 1) * 1e6

    @property
    def steady_cpu_us_per_decision(self) -> float:
        return self.more.steady_s / max(int(self.steady["offered"]), 1) * 1e6

    def pg_cpu(self) -> str:
        sat = self.more.pg_saturation_s / max(self.sat_check.rows, 1) * 1e6
        steady = self.more.pg_steady_s / max(self.steady_check.rows, 1) * 1e6
        return f"{sat:,.0f} / {steady:,.0f}"

    def waited(self) -> str:
        offered = max(int(self.steady["offered"]), 1)
        return f"{self.more.steady_wait_s / offered * 1e6:,.0f} / {self.more.pg_steady_wait_s / offered * 1e6:,.0f}"

    def others(self) -> str:
        """What the rest of the machine took from the two cores while the constant load ran."""
        seconds = max(self.more.others_window_s or float(self.steady["seconds"]), 1e-9)
        total = sum(s for _, s in self.more.others)
        busiest = [f"{name} {100 * s / seconds:.1f}" for name, s in self.more.others[:4] if s / seconds >= 0.005]
        return (
            f"{100 * total / seconds:.1f} in all ({', '.join(busiest) or 'none over 0.5'}); "
            f"steal {100 * self.more.steal_s / seconds:.1f}"
        )

    def wal(self) -> str:
        written = self.wal_steady.describe(self.steady_check.rows) if self.wal_steady else "not measured"
        readied = self.wal_ready.describe() if isinstance(self.wal_ready, Ready) else self.wal_ready or "not readied"
        spread = {
            True: "a spread checkpoint requested just before it, seen under way",
            False: "a spread checkpoint requested just before it, not seen under way (nothing to write, or denied)",
            None: "no spread checkpoint requested",
        }[self.spread]
        return f"{written}; {spread}; {readied}"

    @property
    def ok(self) -> bool:
        checks = (self.sat_check, self.steady_check, *self.profiled_checks)
        failed = int(self.steady["failed"]) + self.profiled_failed
        return all(c.ok and c.degraded == 0 for c in checks) and failed == 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()

    # The results file itself changes with every run; only other edits make a run "uncommitted".
    dirty = (
        " (with uncommitted changes)"
        if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.md")
        else ""
    )
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def _ms(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, p):.2f}" for p in (50, 99, 99.9))


def _steady_ms(steady: dict[str, Any]) -> str:
    """A constant load's result: "998/s offered: p50 / p99 / p99.9" in ms."""
    offered = int(steady["offered"]) / max(float(steady["seconds"]), 1e-9)
    return f"{offered:,.0f}/s offered: {_ms([float(x) for x in steady['latencies_ms']])}"


def _generator(steady: dict[str, Any]) -> str:
    """The generator's own part: its CPU, and how late it sent (its own wait for a core or its loop),
    over all requests and over the late ones: a late request sent late was late before the gateway
    had it."""
    cpu = float(steady.get("cpu_s", 0)) / max(int(steady["offered"]), 1) * 1e6
    said = f"the generator's own CPU: {cpu:,.0f} µs per request"
    lags, late = [float(x) for x in steady.get("lags_ms", [])], [float(x) for x in steady.get("late_lags_ms", [])]
    if not lags:
        return said
    lagging = sum(1 for x in late if x >= 1.0)
    return (
        f"{said}; it fired them p99 {percentile(lags, 99):.2f} / max {max(lags):.2f} ms after they were due, "
        f"and {lagging} of the {len(late)} over {LATE_MS:.0f} ms 1 ms or more after"
    )


def _per_request_us(cpu_s: float, run: WrkResult) -> float:
    return cpu_s / max(run.requests, 1) * 1e6


def _rows(floor: WrkResult, floor_us: float, s: ScaleResult, rate: int) -> list[str]:
    w = s.saturated
    return [
        f"{s.startup_s:.1f}",
        f"{w.rate:,.0f}",
        f"{w.rate / floor.rate:.1%}",
        f"{w.p50_ms:.2f} / {w.p99_ms:.2f} / {w.p999_ms:.2f}",
        f"{s.cpu_us_per_decision:,.0f}",
        f"{s.cpu_us_per_decision / max(floor_us, 1e-9):.1f}×",
        s.split.describe(s.cpu_us_per_decision),
        f"{_steady_ms(s.steady)} ({_generator(s.steady)})",
        s.commits.describe(s.steady.get("late", [])),
        s.wal(),
        f"{s.steady_cpu_us_per_decision:,.0f}",
        s.waited(),
        s.others(),
        s.steady_split.describe(s.steady_cpu_us_per_decision),
        s.pg_cpu(),
        s.sat_check.describe() + ("" if w.other == 0 and w.errors == 0 else f"; {w.other} non-2xx, {w.errors} errors"),
        s.steady_check.describe() + (f"; {s.steady['failed']} failed" if s.steady["failed"] else ""),
        " / ".join(c.describe() for c in s.profiled_checks)
        + (f"; {s.profiled_failed} failed" if s.profiled_failed else ""),
        s.propagation.describe(),
        " + ".join(f"{x:.0f}" for x in s.rss_mb),
        s.remembered.describe(rate) if s.remembered else "not measured",
    ]


_LABELS = [
    "start-up to /readyz 200 in every worker, s",
    "decisions/s at saturation",
    "decide / floor (target ≥ 20 %; the product's goal 50 %)",
    "saturation latency p50 / p99 / p99.9, ms",
    "gateway CPU per decision, µs (both workers)",
    "gateway CPU per decision ÷ the floor's CPU per request",
    "gateway CPU split at saturation (py-spy, one worker, in a 5 s slice after it): share (µs a decision)",
    "constant load latency p50 / p99 / p99.9, ms (target p99 ≤ 5)",
    f"PostgreSQL's own one-row commit beside the constant load (every {INTERVAL * 1000:.0f} ms on a connection of "
    "its own, send to answer), p50 / p99 / max, ms",
    "PostgreSQL's WAL at the constant load: written a row; WAL files entered, and how many PostgreSQL had to "
    "make meanwhile (each holds every commit 38–55 ms here); checkpoints (the load runs in the first seconds of a "
    "spread one, which goes on through the phases after it); files readied before the phases (bench/walfiles.py)",
    "gateway CPU per decision at the constant load, µs",
    "time waiting for a core at the constant load (run-queue delay), µs a contact: gateway workers / PostgreSQL",
    "the rest of the machine at the constant load, % of a core: the other processes that ran through it, in all (the "
    "busiest, by name; the generator's own CPU is given above, the bench's is its commit probe), and time the "
    "hypervisor took (steal)",
    "gateway CPU split at the constant load (py-spy, one worker, in a 5 s slice after it): share (µs a decision)",
    "PostgreSQL CPU per contact logged, µs (saturation / constant load)",
    "log check, saturation",
    "log check, constant load",
    "log check, the profiled slices (saturation / constant load)",
    "restriction in force in every worker, changed under a second constant load, p50 / p99 / max, ms (target ≤ 1000)",
    "resident memory per worker, MB",
    "Redis memory per answer remembered for retries (MEMORY USAGE of a sample), and what a sustained rate holds",
]


def _table(floor: WrkResult, floor_us: float, scales: list[ScaleResult], rate: int) -> list[str]:
    head = "| | " + " | ".join(f"{s.customers:,} customers" for s in scales) + " |"
    lines = [head, "|---" * (len(scales) + 1) + "|"]
    columns = [_rows(floor, floor_us, s, rate) for s in scales]
    for i, label in enumerate(_LABELS):
        lines.append(f"| {label} | " + " | ".join(c[i] for c in columns) + " |")
    return lines


def _scale_line(scales: list[ScaleResult]) -> str:
    if len(scales) < 2:
        return "Scale: one size only in this run."
    small, big = scales[0], scales[-1]
    cpu = big.cpu_us_per_decision / small.cpu_us_per_decision - 1
    wall = small.saturated.rate / big.saturated.rate - 1
    return (
        f"Scale {small.customers:,} → {big.customers:,} customers: gateway CPU per decision "
        f"{cpu:+.1%}, wall time per decision at saturation {wall:+.1%} (target within ±10 %)."
    )


def render(
    args: argparse.Namespace,
    floor: WrkResult,
    floor_cpu: float,
    floor_steady: dict[str, Any],
    scales: list[ScaleResult],
    mix: str,
    elapsed: float,
) -> str:
    lines = [
        f"## {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} — commit {_commit()}",
        "",
        f"CPU: {_cpu_model()}, {os.cpu_count()} cores. Workers: {args.workers}. "
        f"Saturation: wrk -t1 -c{args.connections}, {args.seconds} s after a 2 s warm-up. "
        f"Constant load: {args.rate}/s from bench/steady.py (a lean HTTP/1.1 client, timed from the scheduled send). "
        f"Mix: {mix}. Run took {elapsed:.0f} s.",
        "",
        f"Floor (aiohttp fixed JSON, same workers, same wrk and mix): **{floor.rate:,.0f} req/s**, "
        f"p50 / p99 / p99.9 {floor.p50_ms:.2f} / {floor.p99_ms:.2f} / {floor.p999_ms:.2f} ms; "
        f"its workers' CPU per request {_per_request_us(floor_cpu, floor):,.0f} µs. "
        f"The floor alone under the constant load's generator, p50 / p99 / p99.9 in ms, {_steady_ms(floor_steady)}"
        + (f"; {floor_steady['failed']} failed" if floor_steady.get("failed") else "")
        + ".",
        "",
        *_table(floor, _per_request_us(floor_cpu, floor), scales, args.rate),
        "",
        _scale_line(scales),
        "",
    ]
    return "\n".join(lines)


def append(text: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nAppended by `make bench` (newest last); "
            "see bench/README.md for what is measured and how.\n\n"
        )
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(text + "\n")
