"""The bench's reading of the kernel's scheduler figures: time a process spent waiting for a core."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.profile import used_since, waited_seconds

# Spins for the given seconds of wall time, then waits (still alive) for its stdin to close.
SPIN = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
sys.stdin.read()
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to compare")
def test_processes_sharing_one_core_are_seen_waiting_for_it_and_one_alone_is_not():
    cores = sorted(os.sched_getaffinity(0))
    before = waited_seconds([os.getpid()])
    shared = [_spinner(cores[0]) for _ in range(2)]
    alone = _spinner(cores[1])
    try:
        time.sleep(1.0)  # each has spun its 0.6 s: two of them sharing a core, one on a core of its own
        waited = waited_seconds([p.pid for p in shared])
        lone = waited_seconds([alone.pid])[alone.pid]
        assert all(w > 0.15 for w in waited.values()), waited  # each waited while the other ran
        assert lone < 0.5 * min(waited.values()), (lone, waited)  # the time waiting, not the time running
        assert used_since({}, waited) == sum(waited.values())
    finally:
        for p in (*shared, alone):
            p.communicate(b"")
    assert waited_seconds([alone.pid]) == {}  # gone: left out, not an error
    assert set(before) == {os.getpid()}


def _spinner(core: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SPIN, "0.6"], stdin=subprocess.PIPE, preexec_fn=lambda: os.sched_setaffinity(0, {core})
    )
