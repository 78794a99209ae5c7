"""What the I/O edge hands the pure engine: index views, rule set, calendar and counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from .calendar import Calendar
from .outcome import Outcome
from .params import KindParams, Window
from .vocabulary import CaseStatus, Contact, RestrictionStatus

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StaffView:
    id: int
    name: str
    role: str = "agent"
    line: str | None = None
    voicemail: str | None = None
    mailbox: str | None = None
    queue: str | None = None
    working_hours: tuple[Window, ...] = ()  # empty: always available


@dataclass(frozen=True, slots=True)
class CaseView:
    id: int
    reference: str
    customer_id: int
    status: CaseStatus
    closed_on: date | None = None
    subject: str = ""


@dataclass(frozen=True, slots=True)
class UrgentReviewView:
    """A restriction flagged because the customer is left with no way in: until a person acts,
    their contacts on `channels` reach the caution queue instead of being deflected."""

    since: datetime
    why: str
    channels: frozenset[str]


@dataclass(frozen=True, slots=True)
class RestrictionView:
    id: int
    customer_id: int
    kind: str
    params: KindParams
    channels: frozenset[str]
    status: RestrictionStatus = "active"
    review_due: date | None = None
    urgent: UrgentReviewView | None = None

    def covers(self, channel: str) -> bool:
        return channel in self.channels

    def params_as(self, model: type[P]) -> P:
        """The params narrowed to the kind's model; a mismatch is a bug in the edge's loader."""
        if not isinstance(self.params, model):
            raise TypeError(f"restriction {self.id}: {self.kind} params expected, got {type(self.params).__name__}")
        return self.params


@dataclass(frozen=True, slots=True)
class CustomerView:
    id: int
    name: str
    adjustments_flags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RepresentativeView:
    id: int
    name: str
    relationship: str


@dataclass(frozen=True, slots=True)
class Bundle:
    """One customer with their restrictions (any status: the engine enforces only active ones)."""

    customer: CustomerView
    restrictions: tuple[RestrictionView, ...] = ()
    representatives: tuple[RepresentativeView, ...] = ()
    cases: tuple[CaseView, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """Who the sender is. A registered representative of X brings X's bundle, and X's id is in
    representative_of (restricted customers only: only they have bundles)."""

    bundles: tuple[Bundle, ...] = ()
    representative_of: tuple[int, ...] = ()
    withheld: bool = False
    sender_kind: str = "none"  # phone | email | web | withheld | none
    # Flags recorded for the customers the sender is or acts for, restricted or not; and whether
    # the sender is a registered representative of any customer (restricted or not).
    adjustments: frozenset[str] = frozenset()
    on_behalf: bool = False
    # The other customers the identifier is theirs too (a household phone), who have no restriction:
    # (id, name). The caller may be any of them, so the decision says it was ambiguous.
    shared_with: tuple[tuple[int, str], ...] = ()

    @property
    def ambiguous(self) -> bool:
        return len(self.bundles) + len(self.shared_with) > 1

    @property
    def customer_ids(self) -> tuple[int, ...]:
        return (*(b.customer.id for b in self.bundles), *(cid for cid, _ in self.shared_with))

    @property
    def names(self) -> list[str]:
        """Who the caller may be: the restricted customers, then the others sharing the identifier."""
        return [*(b.customer.name for b in self.bundles), *(name for _, name in self.shared_with)]


UNNAMED_PROVIDER = "the housing team"


@dataclass(frozen=True, slots=True)
class Provider:
    """How customers can write to the provider: quoted when a call or visit is deflected, and on
    letters. `address` holds its lines separated by new lines."""

    name: str = UNNAMED_PROVIDER
    address: str = ""
    email: str = ""
    web_form_url: str = ""
    phone: str = ""
    emergency_phone: str = ""  # the emergency repairs line, answered whatever a restriction says

    def emergency_sentence(self) -> str:
        """Told to a caller or visitor turned away, and in letters: how to report an emergency. Empty
        when no emergency line is configured (nothing is promised that the gateway cannot keep)."""
        if not self.emergency_phone:
            return ""
        return f"In an emergency, such as a gas leak, a flood or no heating, call {self.emergency_phone} at any time."

    def address_lines(self) -> tuple[str, ...]:
        return tuple(line.strip() for line in self.address.splitlines() if line.strip())

    def one_line_address(self) -> str:
        return ", ".join(self.address_lines())

    @property
    def can_be_written_to(self) -> bool:
        """Whether a customer told to write is told where: an address, an email or a web form."""
        return bool(self.address_lines() or self.email or self.web_form_url)

    def how_to_write(self) -> str:
        ways = [
            f"write to {self.name_prefix()}{self.one_line_address()}" if self.address_lines() else "write to us",
            f"email {self.email}" if self.email else "",
            f"use the contact form at {self.web_form_url}" if self.web_form_url else "",
        ]
        chosen = [w for w in ways if w]
        text = chosen[0] if len(chosen) == 1 else ", ".join(chosen[:-1]) + " or " + chosen[-1]
        return f"Please {text}."

    def name_prefix(self) -> str:
        """ "Demo Homes, " before the address when the provider has named itself."""
        return "" if self.name == UNNAMED_PROVIDER else f"{self.name}, "


class RuleSetInForce(Protocol):
    """What the engine asks of the manager rule set in force: a proposal for the facts of a contact
    (gateway.rules.compiled), its version, the periods its counting rules read and the
    conditions its rules use."""

    @property
    def version(self) -> int: ...

    @property
    def periods(self) -> frozenset[str]: ...

    @property
    def conditions(self) -> frozenset[str]: ...

    def propose(self, facts: Any, /) -> Any: ...


class KindCheck(Protocol):
    """What the engine needs of a restriction kind (gateway.rules.kind.RestrictionKind)."""

    @property
    def check(self) -> Callable[[Contact, RestrictionView, Context, datetime], Outcome]: ...


class Kinds(Protocol):
    """The registry of restriction kinds, as the engine sees it."""

    def __getitem__(self, name: str, /) -> KindCheck: ...


@dataclass(frozen=True, slots=True)
class Context:
    """Everything `decide` may look at besides the contact and `now`.

    `counts` maps counter keys (gateway.rules.counters) to contacts this period, this one included.
    `case` is the case the contact is about, resolved by the edge from case_ref or subject.
    """

    match: Match
    ruleset: RuleSetInForce  # a compiled manager rule set (gateway.rules.compiled.CompiledRuleSet)
    kinds: Kinds  # the restriction kinds in force (the registry): each enforced restriction's check
    staff: Mapping[int, StaffView] = field(default_factory=dict)
    calendar: Calendar = field(default_factory=Calendar)
    counts: Mapping[str, int] = field(default_factory=dict)
    case: CaseView | None = None
    appointment: bool = False
    provider: Provider = field(default_factory=Provider)

    def bundle_of(self, customer_id: int) -> Bundle | None:
        return next((b for b in self.match.bundles if b.customer.id == customer_id), None)

    def find_case(self, case_id: int) -> CaseView | None:
        if self.case is not None and self.case.id == case_id:
            return self.case
        cases = (c for b in self.match.bundles for c in b.cases if c.id == case_id)
        return next(cases, None)
