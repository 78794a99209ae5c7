"""Factories for the pure engine's tests: restrictions, bundles, contexts. No database, no Redis."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from gateway.contact import InboundContact
from gateway.rules.compiled import CompiledRuleSet, compile_ruleset
from gateway.rules.context import (
    Bundle,
    CaseView,
    Context,
    CustomerView,
    Match,
    Provider,
    RepresentativeView,
    RestrictionView,
    StaffView,
)
from gateway.rules.default_ruleset import DEFAULT_RULESET
from gateway.rules.kinds.appointment_only import AppointmentOnly
from gateway.rules.kinds.caution import Caution
from gateway.rules.kinds.closed_issue import ClosedIssue
from gateway.rules.kinds.contact_limit import ContactLimit
from gateway.rules.kinds.named_contact import NamedContact
from gateway.rules.kinds.no_personal_contact import NoPersonalContact
from gateway.rules.kinds.set_times import SetTimes
from gateway.rules.kinds.written_only import WrittenOnly
from gateway.rules.params import Window
from gateway.rules.registry import DEFAULT_CHANNELS, REGISTRY
from gateway.rules.ruleset import parse_ruleset

# Tuesday 3 March 2026 (GMT): 10:30 is inside "Tuesdays and Thursdays 10am-12 noon", 15:00 is not.
TUE_1030 = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)
TUE_1500 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
TUE_2000 = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
TUE_THU = Window(days=["tue", "thu"], start="10:00", end="12:00")
OFFICE_HOURS = Window(days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="17:00")
CUSTOMER = CustomerView(1, "Alex Smith")
NEIGHBOUR = CustomerView(2, "Jo Smith")
REP = RepresentativeView(5, "Chris Doe", "support worker")
SAM = StaffView(7, "Sam Jones", line="+441134960007", voicemail="+441134960070", working_hours=(OFFICE_HOURS,))
PAT = StaffView(8, "Pat Lee", line="+441134960008")
# Someone with no line, voicemail or queue of their own: nothing of theirs can take a call.
LEE = StaffView(9, "Lee Unreachable", mailbox="lee@example.org")
STAFF = {SAM.id: SAM, PAT.id: PAT, LEE.id: LEE}
CLOSED_CASE = CaseView(42, "CMP-1234", CUSTOMER.id, "exhausted", date(2025, 11, 3), "Repairs")
OTHER_CASE = CaseView(43, "CMP-2000", CUSTOMER.id, "open", None, "Noise")
PROVIDER = Provider(
    name="Riverside Homes",
    address="1 River Street, Leeds LS1 1AA",
    email="contact@riverside.example",
    web_form_url="https://riverside.example/contact",
)
DEFAULT = compile_ruleset(parse_ruleset(DEFAULT_RULESET))

PARAMS: dict[str, Any] = {
    "set_times": SetTimes(windows=[TUE_THU]),
    "named_contact": NamedContact(staff_id=7, deputy_staff_id=8),
    "written_only": WrittenOnly(),
    "no_personal_contact": NoPersonalContact(),
    "appointment_only": AppointmentOnly(),
    "closed_issue": ClosedIssue(case_id=CLOSED_CASE.id),
    "caution": Caution(note="Threatened staff with violence"),
    "contact_limit": ContactLimit(limit=3, period="week"),
}


def restriction(
    kind: str,
    params: Any = None,
    *,
    rid: int = 1,
    customer_id: int = 1,
    channels: set[str] | None = None,
    status: str = "active",
    review_due: date | None = date(2027, 3, 1),
) -> RestrictionView:
    return RestrictionView(
        rid,
        customer_id,
        kind,
        params or PARAMS[kind],
        frozenset(channels or DEFAULT_CHANNELS[kind]),
        status,
        review_due,
    )  # type: ignore[arg-type]


def bundle(*restrictions: RestrictionView, customer: CustomerView = CUSTOMER) -> Bundle:
    return Bundle(customer, tuple(restrictions), (REP,), (CLOSED_CASE, OTHER_CASE))


def context(
    match: Match,
    *,
    ruleset: CompiledRuleSet = DEFAULT,
    staff: Mapping[int, StaffView] | None = None,
    counts: Mapping[str, int] | None = None,
    case: CaseView | None = None,
    appointment: bool = False,
) -> Context:
    return Context(
        match=match,
        ruleset=ruleset,
        kinds=REGISTRY,
        staff=STAFF if staff is None else staff,
        counts=counts or {},
        case=case,
        appointment=appointment,
        provider=PROVIDER,
    )


def contact(channel: str, **fields: Any) -> InboundContact:
    return InboundContact.model_validate({"channel": channel, "from": "+447700900123", **fields})
