"""Prometheus metrics of one gateway process.

What every contact touches is counted by `LoopCounter` and `LoopHistogram`: plain numbers that only
the event loop's thread adds to, read when `/metrics` is scraped. prometheus_client's own take a
lock and run several checks on each count (~0.5 µs for a counter, ~1.5 for a histogram here), four
times a contact. The rest use prometheus_client's types.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)
# Whether `_created` samples are given, read as prometheus_client reads it at import (its
# `disable_created_metrics()` is not followed: nothing here calls it).
_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")


class Count:
    """The count of one label set, and when it began (its `_created` sample)."""

    __slots__ = ("created", "n")

    def __init__(self) -> None:
        self.n, self.created = 0, time.time()

    def inc(self, amount: int = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.n += amount


class LoopCounter:
    """A counter that only the event loop's thread counts: a `Count` per label set, no lock."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labelnames = name.removesuffix("_total"), documentation, list(labelnames)
        self._children: dict[tuple[str, ...], Count] = {}
        registry.register(self)

    def labels(self, *values: object) -> Count:
        """The count of these label values (keep it: each later count is then one addition)."""
        key = tuple(str(v) for v in values)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name} takes {len(self.labelnames)} label value(s), not {len(key)}")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = Count()
        return child

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.n, created=child.created if _CREATED else None)
        yield family


class LoopHistogram:
    """A histogram without labels that only the event loop's thread observes: a count per bucket
    (found by bisection) and a sum, made cumulative when scraped."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = sorted(float(b) for b in buckets if b != float("inf"))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum, self.created = 0.0, time.time()
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # a value equal to a bound is in its bucket
        self.sum += value

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        running, buckets = 0, []
        for bound, count in zip([*self.bounds, float("inf")], list(self.counts), strict=True):
            running += count
            buckets.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
        family = HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)
        if _CREATED:
            family.samples.append(Sample(self.name + "_created", {}, self.created))
        yield family


REQUESTS = LoopCounter(
    "gateway_http_requests_total",
    "HTTP requests answered, by route (its template; 'unmatched' when no route takes the path and method) and status",
    ["route", "status"],
    registry=REGISTRY,
)
_REQUESTS_BY: dict[tuple[str, int], Count] = {}


def count_request(route: str, status: int) -> None:
    """One request answered."""
    child = _REQUESTS_BY.get((route, status))
    if child is None:
        child = _REQUESTS_BY[(route, status)] = REQUESTS.labels(route, status)
    child.n += 1


DECISIONS = LoopCounter(
    "gateway_decisions_total", "Contacts decided, by channel and action", ["channel", "action"], registry=REGISTRY
)
DECIDE_SECONDS = LoopHistogram(
    "gateway_decide_seconds",
    "Time from request to logged decision",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
LEAN_EDGE = LoopCounter(
    "gateway_lean_edge_total",
    "Plain calls answered by the lean edge (contacts, Twilio voice webhooks), and connections it handed to aiohttp",
    ["outcome"],
    registry=REGISTRY,
)
DEGRADED = Counter(
    "gateway_degraded_total", "Contacts answered without a restriction check", ["why"], registry=REGISTRY
)
# Observed by the contact log's writer, on the event loop: once a commit, which at a low rate is
# once a contact (prometheus_client's histogram takes a lock each time: ~4x the cost).
LOG_BATCH = LoopHistogram(
    "gateway_contact_log_batch_rows",
    "Rows per contact-log commit",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
    registry=REGISTRY,
)
LOG_COMMIT_SECONDS = LoopHistogram(
    "gateway_contact_log_commit_seconds",
    "Time a contact-log batch took to commit, its wait for a connection included (committed batches only)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
    registry=REGISTRY,
)
REFUSALS_COUNTED = Counter(
    "gateway_refusals_counted_total",
    "Refused attempts past the per-address limit: counted, and logged as one row a minute (decide/refusals.py)",
    ["channel"],
    registry=REGISTRY,
)
SPOOLED = Gauge("gateway_contact_log_spooled", "Contacts waiting in the local spool", registry=REGISTRY)
INDEX_SIZE = Gauge("gateway_index_identifiers", "Identifiers in the restriction index", registry=REGISTRY)
MAIL_FILTER = Counter(
    "gateway_mail_filter_messages_total",
    "Messages Postfix handed the mail filter: passed (250) or deferred (451), and connections refused",
    ["outcome"],
    registry=REGISTRY,
)
