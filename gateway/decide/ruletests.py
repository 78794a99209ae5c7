"""Run a rule set's own test cases through `decide` (for the authoring API's /test endpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from ..rules.calendar import Calendar
from ..rules.compiled import CompiledRuleSet
from ..rules.context import Bundle, CaseView, Context, CustomerView, Match, RestrictionView, StaffView
from ..rules.counters import counters_needed
from ..rules.engine import decide
from ..rules.kinds.closed_issue import ClosedIssue
from ..rules.kinds.named_contact import NamedContact
from ..rules.registry import DEFAULT_CHANNELS
from ..rules.ruleset import RuleTestCase, Situation
from ..rules.vocabulary import Action, Reason, Target
from .context import make_context

CUSTOMER = CustomerView(1, "Test Customer")
OTHER = CustomerView(2, "Other Household Member")


# The years a test case's time may fall in (a review or counter period around year 1 or 9999 is in no year).
RUNNABLE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    passed: bool
    problems: tuple[str, ...]
    action: Action
    target: Target | None
    flagged: bool
    reasons: list[Reason]


def _restrictions(s: Situation) -> tuple[RestrictionView, ...]:
    return tuple(
        RestrictionView(
            id=i,
            customer_id=CUSTOMER.id,
            kind=r.params.kind,
            params=r.params,
            channels=frozenset(r.channels or DEFAULT_CHANNELS[r.params.kind]),
            status=r.status,
        )
        for i, r in enumerate(s.restrictions, start=1)
    )


def _staff(rs: tuple[RestrictionView, ...]) -> dict[int, StaffView]:
    ids = {
        i
        for r in rs
        if isinstance(r.params, NamedContact)
        for i in (r.params.staff_id, r.params.deputy_staff_id)
        if i is not None
    }
    return {i: StaffView(id=i, name=f"Staff {i}") for i in ids}


def _case(s: Situation, cases: tuple[CaseView, ...], today: date) -> CaseView | None:
    """The case the contact is about: the restricted closed case, or an unrelated one."""
    if s.case_status is None:
        return None
    closed_on = None if s.case_status == "open" else today
    if s.about_restricted_case and cases:
        return CaseView(cases[0].id, cases[0].reference, CUSTOMER.id, s.case_status, closed_on)
    return CaseView(10**9, "CASE-NEW", CUSTOMER.id, s.case_status, closed_on)


def _match(s: Situation, bundle: Bundle) -> Match:
    return {
        "withheld": Match(withheld=True, sender_kind="withheld"),
        "unmatched": Match(sender_kind="phone"),
        "matched": Match((bundle,), sender_kind="phone"),
        "representative": Match((bundle,), representative_of=(CUSTOMER.id,), sender_kind="phone"),
        "ambiguous": Match((bundle, Bundle(OTHER)), sender_kind="phone"),
    }[s.sender]


def situation_context(
    case: RuleTestCase, compiled: CompiledRuleSet, at: datetime, calendar: Calendar | None = None
) -> Context:
    """The Context a test case describes: one test customer, their restrictions, staff, cases."""
    s, cal = case.situation, calendar or Calendar()
    rs = _restrictions(s)
    cases = tuple(
        CaseView(r.params.case_id, f"CASE-{r.params.case_id}", CUSTOMER.id, "exhausted", cal.local(at).date())
        for r in rs
        if isinstance(r.params, ClosedIssue)
    )
    customer = CustomerView(CUSTOMER.id, CUSTOMER.name, frozenset(s.adjustments))
    match = _match(s, Bundle(customer, rs, (), cases))
    specs = counters_needed(compiled, match.bundles, at, cal.tz)
    return make_context(
        match,
        compiled,
        staff=_staff(rs),
        calendar=cal,
        counts={spec.key: s.count for spec in specs},
        case=_case(s, cases, cal.local(at).date()),
        appointment=s.appointment,
    )


def _problems(case: RuleTestCase, action: Action, target: Target | None, flagged: bool) -> tuple[str, ...]:
    want, problems = case.expect, []
    if action != want.action:
        problems.append(f"action: expected {want.action}, got {action}")
    if want.target is not None and (target is None or (target.type, target.id) != (want.target.type, want.target.id)):
        got = f"{target.type} {target.id}" if target else "none"
        problems.append(f"target: expected {want.target.type} {want.target.id}, got {got}")
    if want.flagged is not None and flagged != want.flagged:
        problems.append(f"flagged: expected {want.flagged}, got {flagged}")
    return tuple(problems)


def run_ruleset_tests(
    compiled: CompiledRuleSet, tests: list[RuleTestCase] | None, now: datetime, calendar: Calendar | None = None
) -> list[CaseResult]:
    """Each case decided at its own `at` (or `now`), in the provider's time zone and bank holidays
    (`calendar`, without closure days: a case means the same whenever it runs); it passes when
    action, target and flag are as expected."""
    results = []
    for case in compiled.source.tests if tests is None else tests:
        at = case.situation.at or now
        if not RUNNABLE[0] <= at < RUNNABLE[1]:  # the calendar and the counters' periods count in these years
            problem = f"situation.at: {at.isoformat()} is not between 1900 and 2199, so the case cannot run"
            results.append(CaseResult(case.name, False, (problem,), "hold", None, False, []))
            continue
        verdict = decide(case.contact, situation_context(case, compiled, at, calendar), at)
        problems = _problems(case, verdict.action, verdict.target, verdict.flagged)
        results.append(
            CaseResult(
                case.name, not problems, problems, verdict.action, verdict.target, verdict.flagged, verdict.reasons
            )
        )
    return results
