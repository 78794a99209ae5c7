"""The decide path's own counters and histogram (gateway/metrics.py) expose exactly what
prometheus_client's would for the same counts."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.metrics import LoopCounter, LoopHistogram

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 1.0)


def samples(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines (help and type included); a `_created` sample's time is checked to be
    recent, then left out of the comparison."""
    lines = []
    for line in generate_latest(registry).decode().splitlines():
        if "_created" in line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert abs(float(value) - time.time()) < 60
            line = f"{name} <created>"
        lines.append(line)
    return sorted(lines)


def test_a_loop_histogram_exposes_what_prometheus_clients_does():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("decide_seconds", "Time", BUCKETS, registry=ours)
    reference = Histogram("decide_seconds", "Time", buckets=BUCKETS, registry=theirs)
    # On a bound (in its bucket), between bounds, below the first and above the last.
    for value in (0.0001, 0.0005, 0.0007, 0.001, 0.0049, 0.005, 0.3, 1.0, 2.5, 40.0):
        loop.observe(value)
        reference.observe(value)
    assert samples(ours) == samples(theirs)
    assert 'decide_seconds_bucket{le="0.001"} 4.0' in samples(ours)
    assert 'decide_seconds_bucket{le="+Inf"} 10.0' in samples(ours)
    assert "decide_seconds_created <created>" in samples(ours)


def test_a_loop_counter_exposes_what_prometheus_clients_does():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("requests_total", "Requests", ["route", "status"], registry=ours)
    reference = Counter("requests_total", "Requests", ["route", "status"], registry=theirs)
    kept = loop.labels("/v1/contacts", 201)  # kept by its caller, counted in place
    for _ in range(3):
        kept.n += 1
        reference.labels("/v1/contacts", "201").inc()
    loop.labels("unmatched", "404").inc(2)
    reference.labels("unmatched", "404").inc(2)
    assert samples(ours) == samples(theirs)
    assert loop.labels("/v1/contacts", "201") is kept  # one count per label set, however it is named
    assert 'requests_created{route="unmatched",status="404"} <created>' in samples(ours)
    with pytest.raises(ValueError, match="only goes up"):
        kept.inc(-1)


def test_a_loop_counter_refuses_the_wrong_number_of_labels():
    counter = LoopCounter("edge_total", "Edge", ["outcome"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes 1 label value"):
        counter.labels("answered", "extra")


def test_a_name_taken_twice_in_one_registry_is_refused():
    registry = CollectorRegistry(auto_describe=True)
    LoopCounter("decisions_total", "Decisions", ["channel"], registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("decisions_total", "Decisions again", ["channel"], registry=registry)
