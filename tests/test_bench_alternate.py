"""The bench's side-by-side phase (bench/alternate.py): the slices' order cancels a steady drift, each
slice's contacts are found by a prefix of their own, and the share and the scale are read from the
sums of each side's slices, not from one slice."""

from __future__ import annotations

from itertools import product

import pytest

from bench import setup
from bench.alternate import Alternated, Side, order, slice_prefix
from bench.logcheck import LogCheck
from bench.wrk import WrkResult


def _wrk(requests: int, seconds: float, other: int = 0, errors: int = 0) -> WrkResult:
    return WrkResult(requests, seconds, errors, 1.0, 2.0, 3.0, requests - other, 0, other, 0)


def _check(**kw: int) -> LogCheck:
    fields = {"acked_new": 100, "rows": 100, "distinct_ids": 100, "missing": 0, "unacked_rows": 0} | kw
    return LogCheck(exact=False, in_flight=64, **fields)


def test_each_side_takes_each_place_in_turn_so_a_steady_drift_falls_on_each_alike():
    assert order(3, 3) == [0, 1, 2, 2, 1, 0, 0, 1, 2]
    # A machine slowing by one unit a slice: over an even number of rounds, every side's slices
    # sum to the same slowing.
    slowing = [sum(t for t, side in enumerate(order(3, 4)) if side == s) for s in range(3)]
    assert len(set(slowing)) == 1


def test_every_slice_and_every_warm_up_has_provider_ids_of_its_own():
    """wrk numbers its provider ids from 0 every run, and a slice is checked by its prefix: no
    prefix may be the start of another's, or a slice would be charged another's rows."""
    prefixes = [slice_prefix("b1", side, n, warm=w) for side, n, w in product(range(1, 12), range(12), (False, True))]
    assert len(set(prefixes)) == len(prefixes)
    for a, b in product(prefixes, prefixes):
        assert a == b or not b.startswith(a), (a, b)


def test_the_share_and_the_scale_come_from_the_sums_of_the_slices():
    floor = Side(None)
    floor.add(_wrk(200_000, 4.0), cpu_s=5.0)
    floor.add(_wrk(90_000, 2.0), cpu_s=2.5)  # a shorter slice, the machine a little slower
    small, big = Side(10_000), Side(1_000_000)
    small.add(_wrk(40_000, 4.0), cpu_s=4.0)
    small.add(_wrk(16_000, 2.0), cpu_s=2.0)
    big.add(_wrk(38_000, 4.0), cpu_s=4.0)
    big.add(_wrk(18_000, 2.0), cpu_s=1.88)
    result = Alternated(floor, [small, big])
    assert floor.rate == 290_000 / 6.0  # not the mean of the two slices' rates (47,500)
    assert small.rate == 56_000 / 6.0
    assert round(result.scale or 0, 4) == round((5.88 / 56_000) / (6.0 / 56_000) - 1, 4)  # −2 %
    small.checks, big.checks = [_check(), _check()], [_check(), _check(unacked_rows=3)]
    line = result.line()
    assert "floor **48,333 req/s**" in line
    assert "10,000 customers 9,333 decisions/s (**19.3%** of the floor" in line
    assert "gateway CPU per decision **-2.0%**" in line
    assert "1,000,000: 200 acked / 200 rows (by count): 0 lost, 0 duplicated, 0 degraded, 3 logged but" in line
    assert result.ok


def test_a_bad_answer_or_a_lost_duplicated_or_degraded_row_in_any_slice_fails_the_phase():
    floor, small = Side(None), Side(10_000)
    floor.add(_wrk(100, 1.0), 0.1)
    small.add(_wrk(100, 1.0), 0.1)
    result = Alternated(floor, [small])
    assert not result.ok  # not checked yet
    assert result.scale is None and "scale" not in result.line()
    for bad in (
        _check(missing=1),
        _check(distinct_ids=99),
        _check(degraded=1),
        _check(unacked_rows=65),  # more than one connection's worth, in this slice alone
        _check(acked_new=0, rows=0, distinct_ids=0),  # nothing answered 201
    ):
        small.checks, small.slice_names = [_check(), bad], ["1-0", "1-3"]
        assert not result.ok, bad
        assert "**FAILED: slice 1-3:" in result.line() and "slice 1-0" not in result.line()
    small.checks = [_check(), _check()]
    assert result.ok and "FAILED" not in result.line()
    small.add(_wrk(50, 1.0, other=2), 0.1)  # two answers 401, say
    assert not result.ok
    assert "10,000: 2 not 201 or 200, 0 errors" in result.line()
    small.other = 0
    floor.add(_wrk(50, 1.0, errors=1), 0.1)
    assert not result.ok
    floor.errors = 0
    small.unmeasured(_wrk(50, 1.0, other=1))  # a warm-up's answers count as much
    assert not result.ok


def test_the_bench_s_redis_databases_are_named_in_the_url_as_its_scheme_names_them():
    assert setup.redis_url("redis://127.0.0.1:6379/0", 2) == "redis://127.0.0.1:6379/2"
    assert setup.redis_url("redis://localhost:6379", 1) == "redis://localhost:6379/1"
    assert setup.redis_url("unix:///run/redis.sock?db=0&timeout=2", 3) == "unix:///run/redis.sock?timeout=2&db=3"
    with pytest.raises(ValueError):
        setup.redis_url("redis://127.0.0.1:6379/0", setup.BENCH_REDIS_DB + setup.MAX_SIZES)
