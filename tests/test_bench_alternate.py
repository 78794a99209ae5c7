"""The bench's side-by-side phase (bench/alternate.py): the slices' order cancels a steady drift, and
the share and the scale are read from the sums of each side's slices, not from one slice."""

from __future__ import annotations

from bench.alternate import Alternated, Side, order
from bench.logcheck import LogCheck
from bench.wrk import WrkResult


def _wrk(requests: int, seconds: float, ok201: int | None = None) -> WrkResult:
    return WrkResult(requests, seconds, 0, 1.0, 2.0, 3.0, requests if ok201 is None else ok201, 0, 0, 0)


def _check(**kw: int) -> LogCheck:
    fields = {"acked_new": 100, "rows": 100, "distinct_ids": 100, "missing": 0, "unacked_rows": 0} | kw
    return LogCheck(exact=False, in_flight=64, **fields)


def test_each_side_takes_each_place_in_turn_so_a_steady_drift_falls_on_each_alike():
    assert order(3, 3) == [0, 1, 2, 2, 1, 0, 0, 1, 2]
    # A machine slowing by one unit a slice: over an even number of rounds, every side's slices
    # sum to the same slowing.
    slowing = [sum(t for t, side in enumerate(order(3, 4)) if side == s) for s in range(3)]
    assert len(set(slowing)) == 1


def test_the_share_and_the_scale_come_from_the_sums_of_the_slices():
    floor = Side(None)
    floor.add(_wrk(200_000, 4.0), cpu_s=5.0)
    floor.add(_wrk(180_000, 4.0), cpu_s=5.0)  # the machine slower in the second slice
    small, big = Side(10_000), Side(1_000_000)
    small.add(_wrk(40_000, 4.0), cpu_s=4.0)
    small.add(_wrk(36_000, 4.0), cpu_s=4.0)
    big.add(_wrk(38_000, 4.0), cpu_s=4.0)
    big.add(_wrk(38_000, 4.0), cpu_s=4.4)
    result = Alternated(floor, [small, big])
    assert floor.rate == 47_500 and small.rate == 9_500
    assert round(small.cpu_us, 1) == round(8.0 / 76_000 * 1e6, 1)
    assert round(result.scale or 0, 4) == round(8.4 / 8.0 - 1, 4)  # the same decisions, 5 % more CPU
    small.check, big.check = _check(), _check()
    line = result.line()
    assert "floor **47,500 req/s**" in line
    assert "10,000 customers 9,500 decisions/s (**20.0%** of the floor" in line
    assert "gateway CPU per decision **+5.0%**" in line
    assert "0 lost, 0 duplicated, 0 degraded" in line
    assert result.ok


def test_a_lost_duplicated_or_degraded_row_fails_the_phase():
    floor, small = Side(None), Side(10_000)
    floor.add(_wrk(100, 1.0), 0.1)
    small.add(_wrk(100, 1.0), 0.1)
    result = Alternated(floor, [small])
    assert not result.ok  # not checked yet
    assert result.scale is None and "scale" not in result.line()
    for bad in (_check(missing=1), _check(distinct_ids=99), _check(degraded=1)):
        small.check = bad
        assert not result.ok
    small.check = _check()
    assert result.ok
