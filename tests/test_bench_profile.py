"""The bench's reading of the kernel's scheduler figures: time a process spent waiting for a core."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import profile
from bench.profile import used_since, waited_seconds

# Spins for the given seconds of wall time, then waits (still alive) for its stdin to close.
SPIN = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
sys.stdin.read()
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_processes_sharing_one_core_are_seen_waiting_for_it_longer_than_they_run():
    """Three processes spinning on one core each run about a third of the time and wait the rest:
    their time waiting is about twice their CPU time (more if anything else wants that core)."""
    core = min(os.sched_getaffinity(0))
    before = waited_seconds([os.getpid()])
    spinners = [_spinner(core) for _ in range(3)]
    try:
        time.sleep(1.3)  # each has spun its 0.9 s
        waited = waited_seconds([p.pid for p in spinners])
        ran = profile.cpu_seconds([p.pid for p in spinners])
        for pid, w in waited.items():
            assert w > 1.3 * ran[pid], (waited, ran)  # the time waiting, not the time running
        assert used_since({}, waited) == sum(waited.values())
    finally:
        for p in spinners:
            p.communicate(b"")
    assert waited_seconds([spinners[0].pid]) == {}  # gone: left out, not an error
    assert set(before) == {os.getpid()}


def _spinner(core: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SPIN, "0.9"], stdin=subprocess.PIPE, preexec_fn=lambda: os.sched_setaffinity(0, {core})
    )


def test_the_rest_of_the_machine_is_counted_by_name_skipping_what_is_measured_apart():
    """A process that ran through both snapshots is counted by its name; one skipped (a gateway
    worker, PostgreSQL) is not, nor one born after the first; the bench's own are "the bench"."""
    named, skipped, late = _spinner_named("bench-noise"), _spinner_named("bench-skipped"), None
    try:
        time.sleep(0.1)  # both started
        before = profile.Machine.now()
        late = _spinner_named("bench-late")
        time.sleep(0.6)  # each has spun (a share of a core each, on a busy machine)
        after = profile.Machine.now()
        used = dict(profile.others_since(before, after, [skipped.pid]))
        assert used["bench-noise"] > 0.1, used
        assert "bench-skipped" not in used and "bench-late" not in used, used
        ours = dict(profile.others_since(before, after, [skipped.pid], [named.pid]))
        assert "bench-noise" not in ours and ours["the bench"] >= used["bench-noise"], ours
        assert after.steal_s >= before.steal_s >= 0.0
    finally:
        for p in (named, skipped, late):
            if p is not None:
                p.communicate(b"")


def _spinner_named(name: str) -> subprocess.Popen[bytes]:
    """A spinner whose process name (/proc/PID/stat) is `name`, for 0.9 s (then alive until its stdin closes)."""
    script = f"import ctypes; ctypes.CDLL(None).prctl(15, b'{name}', 0, 0, 0)\n" + SPIN
    return subprocess.Popen([sys.executable, "-c", script, "0.9"], stdin=subprocess.PIPE)
