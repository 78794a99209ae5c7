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
