"""Prometheus metrics of one gateway process."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered, by route (its template; 'unmatched' when no route takes the path and method) and status",
    ["route", "status"],
    registry=REGISTRY,
)
_REQUESTS_BY: dict[tuple[str, int], Any] = {}


def count_request(route: str, status: int) -> None:
    """One request answered. Each (route, status) child is looked up once: `labels` takes a lock."""
    child = _REQUESTS_BY.get((route, status))
    if child is None:
        child = _REQUESTS_BY[(route, status)] = REQUESTS.labels(route, str(status))
    child.inc()


DECISIONS = Counter(
    "gateway_decisions_total", "Contacts decided, by channel and action", ["channel", "action"], registry=REGISTRY
)
DECIDE_SECONDS = Histogram(
    "gateway_decide_seconds",
    "Time from request to logged decision",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
LEAN_EDGE = Counter(
    "gateway_lean_edge_total",
    "POST /v1/contacts calls answered by the lean edge, and connections it handed to aiohttp",
    ["outcome"],
    registry=REGISTRY,
)
DEGRADED = Counter(
    "gateway_degraded_total", "Contacts answered without a restriction check", ["why"], registry=REGISTRY
)
LOG_BATCH = Histogram(
    "gateway_contact_log_batch_rows",
    "Rows per contact-log commit",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
    registry=REGISTRY,
)
LOG_COMMIT_SECONDS = Histogram(
    "gateway_contact_log_commit_seconds",
    "Time a contact-log batch took to commit, its wait for a pool connection included (committed batches only)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
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
