"""Where the CPU goes: process CPU seconds (gateway workers, PostgreSQL) and a py-spy profile split.

CPU time is counted per process (user + system), so a busy machine inflates it far less than it
does wall-clock figures. The profile samples one worker with py-spy while a phase runs; each sample
is put in one part of the decide path by its stack (the deepest frame of a known part), and a part's
share of the samples times the measured CPU per decision gives its cost in µs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

# Parts of the decide path (matched anywhere in a stack: the deepest frame wins); py-spy names
# files by their path below site-packages or the repository ...
_PARTS = (
    ("Redis", ("(redis/", "gateway/redisbatch.py", "gateway/decide/idempotency.py", "gateway/decide/counting.py")),
    ("contact log", ("gateway/contactlog/", "gateway/store/contactlog.py", "(asyncpg/")),
    ("rules", ("gateway/rules/", "gateway/decide/context.py")),
    ("index and phone parsing", ("gateway/index/", "gateway/identifiers.py", "(phonenumbers/")),
)
# ... and, when a stack holds none of them, what it was doing. The event loop's own work (polling,
# sockets, callbacks: uvloop's C code, run by a worker's run_until_complete) shows as the frame that
# runs the loop: serve.py's _worker (aiohttp's run_app before serve.py served the app itself).
_GENERIC = (
    ("pydantic and JSON", ("(pydantic/", "(pydantic_core/", "(json/", "orjson")),
    ("metrics", ("(prometheus_client/", "gateway/metrics.py")),
    (
        "event loop, tasks, timers",
        ("_worker (gateway/serve.py", "run_app (aiohttp/web.py", "(asyncio/", "uvloop"),
    ),
    (
        "HTTP (edge, aiohttp, auth, channel)",
        ("gateway/edge.py", "(aiohttp/", "(multidict/", "(yarl/", "gateway/auth.py", "gateway/channels/"),
    ),
    ("decide service", ("gateway/decide/",)),
)
PART_NAMES = [name for name, _ in (*_PARTS, *_GENERIC)] + ["other"]


def _deepest(frames: list[str], table: tuple[tuple[str, tuple[str, ...]], ...]) -> str | None:
    for frame in reversed(frames):
        for name, needles in table:
            if any(n in frame for n in needles):
                return name
    return None


def classify(stack: str) -> str:
    """One py-spy raw stack ("fn (file:line);fn (file:line)", root first) → its part of the path."""
    frames = stack.split(";")
    return _deepest(frames, _PARTS) or _deepest(frames, _GENERIC) or "other"


@dataclass
class Profile:
    samples: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.samples.values())

    def shares(self) -> list[tuple[str, float]]:
        total = max(self.total, 1)
        return sorted(((n, c / total) for n, c in self.samples.items()), key=lambda x: -x[1])

    def describe(self, us_per_decision: float) -> str:
        if self.error or not self.total:
            return f"no profile ({self.error or 'no samples'})"
        return "; ".join(f"{name} {share:.0%} ({share * us_per_decision:,.0f})" for name, share in self.shares())


def parse_raw(lines: Iterable[str]) -> Profile:
    profile = Profile()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            profile.samples[classify(stack)] += int(count)
    return profile


@contextlib.contextmanager
def sampled(pid: int, seconds: float, rate: int = 250) -> Iterator[Profile]:
    """Profile `pid` with py-spy for at most `seconds` while the block runs; filled in on exit."""
    profile = Profile()
    beside = Path(sys.executable).with_name("py-spy")  # installed in the venv, which may not be on PATH
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        profile.error = "py-spy not installed"
        yield profile
        return
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        out = Path(tmp) / "raw.txt"
        cmd = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--duration", str(max(1, int(seconds)))]
        cmd += ["--format", "raw", "--nonblocking", "--output", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            yield profile
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(seconds + 10)
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            if out.exists():
                if keep := os.environ.get("BENCH_KEEP_PROFILES"):  # the raw stacks, to read them further
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copy(out, Path(keep) / f"{pid}-{time.strftime('%H%M%S')}.txt")
                parsed = parse_raw(out.read_text().splitlines())
                profile.samples = parsed.samples
            else:
                stderr = proc.stderr.read() if proc.stderr else ""
                profile.error = (stderr.strip().splitlines() or ["py-spy wrote no profile"])[-1][:120]


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
    return out


def waited_seconds(pids: Iterable[int]) -> dict[int, float]:
    """Seconds each live process's threads have spent runnable but waiting for a core (the run
    delay in /proc/PID/task/TID/schedstat): on a machine whose cores the gateway shares with
    PostgreSQL, Redis and the load, the part of a latency that is queueing for CPU."""
    out = {}
    for pid in pids:
        total = 0.0
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:  # gone
            continue
        for task in tasks:
            with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended meanwhile
                total += int((task / "schedstat").read_text().split()[1]) / 1e9
        out[pid] = total
    return out


_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Machine:
    """A snapshot of every process's CPU seconds (with its name) and of the time the hypervisor
    gave this machine's cores to others (steal, from /proc/stat)."""

    processes: dict[int, tuple[str, float]]
    steal_s: float
    at: float = 0.0  # time.monotonic() when it was taken

    @classmethod
    def now(cls) -> Machine:
        processes = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):  # gone meanwhile
                stat = (entry / "stat").read_text()
                name, _, rest = stat[stat.index("(") + 1 :].rpartition(")")
                fields = rest.split()
                processes[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
        steal = 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            steal = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8]) / _TICK
        return cls(processes, steal, time.monotonic())


def others_since(
    before: Machine, after: Machine, skip: Iterable[int], ours: Iterable[int] = ()
) -> list[tuple[str, float]]:
    """CPU seconds used between two snapshots by the processes outside `skip` that lived through
    both, by name (the processes of one name together), most first. This process and `ours` (the
    bench's own, e.g. its probe's PostgreSQL backend) are "the bench"."""
    skipped, bench = set(skip), {os.getpid(), *ours}
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.processes.items():
        if pid in skipped or pid not in before.processes:
            continue
        spent = seconds - before.processes[pid][1]
        if spent > 0:
            label = "the bench" if pid in bench else name
            used[label] = used.get(label, 0.0) + spent
    return sorted(used.items(), key=lambda item: -item[1])


def used_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots (a process born meanwhile counts from zero)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def postgres_pids(database_url: str) -> list[int]:
    """The PostgreSQL server listening on the URL's port and every process it started."""
    port = urlsplit(database_url).port or 5432
    with contextlib.suppress(psutil.AccessDenied):
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid:
                master = psutil.Process(c.pid)
                return [master.pid, *(p.pid for p in master.children(recursive=True))]
    return []
