"""What one fault did to the contacts: the recorded answers held against the contact log, one table row each.

lost: a contact id acknowledged (2xx) that has no row; duplicated: a provider id with more than one
'decided' row; split retry: a retry answered 2xx with another contact id than its first send got.
Any of the three is a defect: the run exits non-zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .inject import Window
from .load import Answer


@dataclass(frozen=True)
class LogRow:
    contact_id: str
    provider_id: str
    status: str


@dataclass
class FaultResult:
    fault: str
    contacts: int  # first sends
    retries: int
    acked: int  # answers 2xx
    failed: int  # anything else, including no answer at all
    rows: int
    lost: int
    duplicated: int
    split: int
    degraded: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_fault_ms: float
    recovery_s: float | None  # None: no healthy answer after the fault
    drained: bool = True
    unlogged_ids: int = 0  # provider ids acknowledged (2xx) that have no row at all
    dropped: int = 0  # provider ids never answered 2xx (the caller gave up) that have no row either
    examples: list[str] = field(default_factory=list)  # a few lost or split provider ids, for the report

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.split == 0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def _ok(a: Answer) -> bool:
    return 200 <= a.status < 300


def split_retries(answers: Iterable[Answer]) -> list[str]:
    """Provider ids whose retry was acknowledged with another contact id than the first send."""
    firsts: dict[str, str | None] = {}
    retries: list[Answer] = []
    for a in answers:
        if a.retry:
            retries.append(a)
        elif _ok(a):
            firsts[a.provider_id] = a.contact_id
    return [
        r.provider_id for r in retries if _ok(r) and r.provider_id in firsts and r.contact_id != firsts[r.provider_id]
    ]


def _examples(answers: list[Answer], lost_ids: set[str], split: list[str], limit: int = 5) -> list[str]:
    """'provider id: first 201 <id> / retry 201 <id> (not in the log)' for a few of the faulty contacts."""
    picked = list(dict.fromkeys([*split, *(a.provider_id for a in answers if a.contact_id in lost_ids)]))[:limit]
    out = []
    for pid in picked:
        parts = [
            f"{'retry' if a.retry else 'first'} {a.status} {a.contact_id}"
            + (" (not in the log)" if a.contact_id in lost_ids else "")
            + (" degraded" if a.degraded else "")
            + f" after {a.latency_ms:,.0f} ms"
            for a in answers
            if a.provider_id == pid
        ]
        out.append(f"{pid}: " + " / ".join(parts))
    return out


def failure_kinds(answers: Iterable[Answer]) -> Counter[str]:
    """What the non-2xx answers were: an HTTP status, or the client's error when there was no answer."""
    return Counter(
        f"HTTP {a.status}" if a.status else (a.error or "no answer").split("(")[0] for a in answers if not _ok(a)
    )


def recovery_seconds(answers: Iterable[Answer], window: Window) -> float | None:
    """From the end of the fault to the first healthy (2xx, not degraded) answer read after it."""
    after = [
        a.sent + a.latency_ms / 1000 - window.end
        for a in answers
        if _ok(a) and not a.degraded and a.sent + a.latency_ms / 1000 >= window.end
    ]
    return min(after) if after else None


def measure(fault: str, answers: list[Answer], rows: list[LogRow], window: Window, drained: bool) -> FaultResult:
    acked_ids = {a.contact_id for a in answers if _ok(a) and a.contact_id}
    lost_ids = acked_ids - {r.contact_id for r in rows}
    acked_pids, logged_pids = {a.provider_id for a in answers if _ok(a)}, {r.provider_id for r in rows}
    split = split_retries(answers)
    decided = Counter(r.provider_id for r in rows if r.status == "decided")
    latencies = [a.latency_ms for a in answers]
    in_fault = [a.latency_ms for a in answers if window.start <= a.sent <= window.end]
    return FaultResult(
        fault=fault,
        contacts=sum(1 for a in answers if not a.retry),
        retries=sum(1 for a in answers if a.retry),
        acked=sum(1 for a in answers if _ok(a)),
        failed=sum(1 for a in answers if not _ok(a)),
        rows=len(rows),
        lost=len(lost_ids),
        duplicated=sum(1 for n in decided.values() if n > 1),
        split=len(split),
        degraded=sum(1 for a in answers if _ok(a) and a.degraded),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        p99_fault_ms=percentile(in_fault, 99),
        recovery_s=recovery_seconds(answers, window),
        drained=drained,
        unlogged_ids=len(acked_pids - logged_pids),
        dropped=len({a.provider_id for a in answers} - acked_pids - logged_pids),
        examples=_examples(answers, lost_ids, split),
    )


HEADER = (
    "| fault | sent (+ retries) | 2xx | failed | rows | lost | duplicated | split retries | degraded "
    "| p50 / p99 / max ms | p99 in fault ms | recovery s |"
)


def _ms(v: float) -> str:
    return f"{v:,.0f}" if v == v else "-"  # NaN: nothing to measure


def render(results: list[FaultResult]) -> str:
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for r in results:
        recovery = "never" if r.recovery_s is None else f"{r.recovery_s:.2f}"
        rows = f"{r.rows:,}" + ("" if r.drained else " (not drained)")
        lines.append(
            f"| {r.fault} | {r.contacts:,} + {r.retries:,} | {r.acked:,} | {r.failed:,} | {rows} | {r.lost:,} "
            f"| {r.duplicated:,} | {r.split:,} | {r.degraded:,} | {_ms(r.p50_ms)} / {_ms(r.p99_ms)} / {_ms(r.max_ms)} "
            f"| {_ms(r.p99_fault_ms)} | {recovery} |"
        )
    return "\n".join(lines)
