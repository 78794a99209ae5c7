"""Case references in free text (an email subject): a configurable pattern, proven bounded at start-up.

The pattern (`GATEWAY_CASE_REF_PATTERN`) is a provider's setting, so it is vetted before use: every
repetition must repeat one character class with an upper bound, nothing repeated may itself repeat
or branch, and the worst case is timed on hostile text. Matching then costs at most a small
constant per character of a subject, which is cut to SUBJECT_CHARS first.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

DEFAULT_PATTERN = r"\b[A-Za-z]{2,8}-[0-9]{1,12}\b"
SUBJECT_CHARS = 1000
MAX_CANDIDATES = 20
MAX_PATTERN_CHARS = 200
MAX_REPEAT = 64
MAX_WORK = 10_000  # product of the repetitions' ranges: the most backtracking one start position can cost
SELF_TEST_SECONDS = 0.05

_SINGLE = {sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.IN, sre_c.ANY, sre_c.CATEGORY}
_REPEATS = {
    sre_c.MAX_REPEAT,
    sre_c.MIN_REPEAT,
    *([sre_c.POSSESSIVE_REPEAT] if hasattr(sre_c, "POSSESSIVE_REPEAT") else []),
}
_HOSTILE = ("A" * SUBJECT_CHARS, "A-" * (SUBJECT_CHARS // 2), "1" * SUBJECT_CHARS, "[" * SUBJECT_CHARS, "a1-" * 333)


class PatternRejected(ValueError):
    """The pattern could backtrack without bound, or cannot be a case reference pattern."""


def _walk(items: Any, work: list[int]) -> None:
    """Refuse what can backtrack: unbounded or nested repetition, back-references."""
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            if high == sre_c.MAXREPEAT or high > MAX_REPEAT:
                raise PatternRejected(f"every repetition needs an upper bound of at most {MAX_REPEAT} (use {{m,n}})")
            if len(body) != 1 or body[0][0] not in _SINGLE:
                raise PatternRejected("only a single character or character class may be repeated")
            work[0] *= high - low + 1
        elif op == sre_c.GROUPREF or op == sre_c.GROUPREF_EXISTS:
            raise PatternRejected("back-references are not allowed")
        elif op == sre_c.SUBPATTERN:
            _walk(av[-1], work)
        elif op == sre_c.BRANCH:
            for branch in av[1]:
                _walk(branch, work)
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            _walk(av[1], work)


@dataclass(frozen=True)
class Candidate:
    reference: str
    bracketed: bool


class CaseRefPattern:
    """A vetted pattern; `candidates(subject)` lists the references it finds, bracketed ones first."""

    def __init__(self, pattern: str = DEFAULT_PATTERN) -> None:
        self.pattern = pattern
        self.regex = vet(pattern)

    def candidates(self, subject: str | None) -> list[Candidate]:
        if not subject:
            return []
        text = subject[:SUBJECT_CHARS]
        found: list[Candidate] = []
        for m in self.regex.finditer(text):
            ref = (m.group(1) if self.regex.groups else m.group(0)).strip()
            if not ref or len(ref) > 50:
                continue
            start, end = m.span()
            bracketed = start > 0 and text[start - 1] == "[" and text[end : end + 1] == "]"
            found.append(Candidate(ref, bracketed))
            if len(found) >= MAX_CANDIDATES:
                break
        return sorted(found, key=lambda c: not c.bracketed)


def vet(pattern: str) -> re.Pattern[str]:
    """The compiled pattern, or PatternRejected saying why it cannot be used."""
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise PatternRejected(f"must be 1 to {MAX_PATTERN_CHARS} characters")
    try:
        regex = re.compile(pattern)
        tree = sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise PatternRejected(f"is not a regular expression ({exc})") from None
    if regex.groups > 1:
        raise PatternRejected("may have at most one capturing group (the reference)")
    work = [1]
    _walk(tree, work)
    if work[0] > MAX_WORK:
        raise PatternRejected(f"its repetitions allow {work[0]} ways to match at one position (at most {MAX_WORK})")
    if regex.match("") is not None:
        raise PatternRejected("matches the empty string")
    for text in _HOSTILE:
        started = time.perf_counter()
        list(regex.finditer(text))
        if time.perf_counter() - started > SELF_TEST_SECONDS:
            raise PatternRejected("is too slow on long subjects")
    return regex


def resolve(pattern: CaseRefPattern, case_ref: str | None, subject: str | None, on_record: Any) -> str | None:
    """The case a contact is about: the caller's explicit reference, else the first reference in the
    subject that names a case on record (`on_record(ref)` is truthy), else the first one found
    (bracketed first), which the contact log still checks against every case."""
    if case_ref:
        return case_ref.strip()
    found = pattern.candidates(subject)
    for c in found:
        if on_record(c.reference):
            return c.reference
    return found[0].reference if found else None
