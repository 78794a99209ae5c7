"""Manager rule sets: an ordered list of rules validated by pydantic, compiled at load time.

Rules only *propose* a route; the engine then applies the restrictions, which always win.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .calendar import Calendar
from .context import CaseStatus, RestrictionStatus
from .outcome import Dest
from .params import Channel, Kind, Params, Window
from .template import check_template
from .vocabulary import GENERAL_QUEUE, Action, Contact, RulesInvalid

SenderLabel = Literal["matched", "unmatched", "representative", "ambiguous", "withheld"]
RuleAction = Literal["route", "deflect", "auto_acknowledge"]
_QUEUE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_STAFF_ID = re.compile(r"^[1-9][0-9]{0,17}$")
GENERAL = Dest("queue", GENERAL_QUEUE)  # the route when no rule matches


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    type: Literal["queue", "staff", "voicemail"]
    id: str

    @model_validator(mode="after")
    def _id_fits_type(self) -> TargetSpec:
        pattern, what = (
            (_QUEUE_ID, "a queue name: lower-case letters, digits, '-', '_', '.'")
            if self.type == "queue"
            else (_STAFF_ID, "a staff id (digits)")
        )
        if not pattern.match(self.id):
            raise ValueError(f"id must be {what}")
        return self

    def as_dest(self) -> Dest:
        return Dest(self.type, self.id)


class CountAtLeast(_Strict):
    count: int = Field(ge=1, le=100_000)
    period: Literal["day", "week", "month"]


class When(_Strict):
    """All given conditions must hold. `kinds`: any listed kind among the enforced restrictions.
    `sender`: any label applies; a representative or a shared identifier is also 'matched',
    a withheld number is also 'unmatched'."""

    channels: list[Channel] | None = Field(default=None, min_length=1)
    kinds: list[Kind] | None = Field(default=None, min_length=1)
    sender: list[SenderLabel] | None = Field(default=None, min_length=1)
    windows: list[Window] | None = Field(default=None, min_length=1, max_length=21)
    outside_windows: list[Window] | None = Field(default=None, min_length=1, max_length=21)
    bank_holiday: bool | None = None
    case_status: list[Literal["open", "closed", "exhausted", "none"]] | None = Field(default=None, min_length=1)
    count_at_least: CountAtLeast | None = None


class Then(_Strict):
    """What a matching rule proposes; unset fields keep what an earlier rule proposed."""

    action: RuleAction | None = None
    target: TargetSpec | None = None
    priority: int | None = Field(default=None, ge=0, le=100)
    banner: str | None = Field(default=None, min_length=1, max_length=300)
    message: str | None = Field(default=None, min_length=1, max_length=1000)
    flag: bool = False
    stop: bool = False

    @field_validator("target")
    @classmethod
    def _no_target_when_deflected(cls, v: TargetSpec | None, info: ValidationInfo) -> TargetSpec | None:
        if v is not None and info.data.get("action") == "deflect":
            raise ValueError("a deflected contact has no target")
        return v

    @field_validator("message")
    @classmethod
    def _safe_template(cls, v: str | None) -> str | None:
        return None if v is None else check_template(v)


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = Field(min_length=1, max_length=300)
    when: When = Field(default_factory=When)
    then: Then


class SituationRestriction(_Strict):
    params: Params
    channels: list[Channel] | None = Field(default=None, min_length=1)  # None: kind default
    status: RestrictionStatus = "active"


class Situation(_Strict):
    """The world a rule-set test case runs in (who sent it, their restrictions, when)."""

    at: AwareDatetime | None = None
    sender: SenderLabel = "matched"
    restrictions: list[SituationRestriction] = Field(default_factory=list, max_length=20)
    case_status: CaseStatus | None = None
    about_restricted_case: bool = True
    count: int = Field(default=1, ge=0, le=100_000)
    appointment: bool = False


class Expect(_Strict):
    action: Action
    target: TargetSpec | None = None
    flagged: bool | None = None


class RuleTestCase(_Strict):
    name: str = Field(min_length=1, max_length=200)
    contact: Contact
    situation: Situation = Field(default_factory=Situation)
    expect: Expect


class RuleSet(_Strict):
    version: int = Field(ge=0)
    rules: list[Rule] = Field(max_length=500)
    tests: list[RuleTestCase] = Field(default_factory=list, max_length=500)


class RuleSetError(RulesInvalid):
    """A rule set that cannot be loaded; `errors` lists {field, message} with precise paths."""

    code = "invalid_ruleset"


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def parse_ruleset(data: Mapping[str, Any]) -> RuleSet:
    """Validate JSON-able data into a RuleSet; errors carry paths like `rules.2.then.target`."""
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError(
            [{"field": _path(e["loc"]), "message": e["msg"]} for e in exc.errors(include_url=False)]
        ) from None
    _check_unique(ruleset)
    return ruleset


def _check_unique(ruleset: RuleSet) -> None:
    errors, seen = [], set()
    for i, rule in enumerate(ruleset.rules):
        if rule.id in seen:
            errors.append({"field": f"rules.{i}.id", "message": f"duplicate rule id {rule.id!r}"})
        seen.add(rule.id)
    if errors:
        raise RuleSetError(errors)


# ---- compiled form -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    """What rules may look at, gathered once per contact by the engine."""

    channel: str
    senders: frozenset[str]
    kinds: frozenset[str]
    now: datetime
    calendar: Calendar
    case_status: str  # open | closed | exhausted | none
    counts: Mapping[str, int]  # period -> contacts this period (most of any customer)


Predicate = Callable[[Facts], bool]


def _any_of(attr: str) -> Callable[[Any], Predicate]:
    def build(values: list[str]) -> Predicate:
        wanted = frozenset(values)
        if attr in ("senders", "kinds"):
            return lambda f: bool(wanted & getattr(f, attr))
        return lambda f: getattr(f, attr) in wanted

    return build


def _inside(windows: list[Window]) -> Predicate:
    return lambda f: f.calendar.in_windows(windows, f.now, closed_on_holidays=False)


def _outside(windows: list[Window]) -> Predicate:
    return lambda f: not f.calendar.in_windows(windows, f.now, closed_on_holidays=False)


def _holiday(wanted: bool) -> Predicate:
    return lambda f: f.calendar.is_holiday(f.calendar.local(f.now).date()) == wanted


def _count(spec: CountAtLeast) -> Predicate:
    return lambda f: f.counts.get(spec.period, 0) >= spec.count


# The condition table: each `when` field and how it becomes a predicate.
CONDITIONS: tuple[tuple[str, Callable[[Any], Predicate]], ...] = (
    ("channels", _any_of("channel")),
    ("kinds", _any_of("kinds")),
    ("sender", _any_of("senders")),
    ("windows", _inside),
    ("outside_windows", _outside),
    ("bank_holiday", _holiday),
    ("case_status", _any_of("case_status")),
    ("count_at_least", _count),
)


@dataclass(frozen=True, slots=True)
class Proposal:
    """The route the manager rules propose, before restrictions are applied."""

    action: Action = "route"
    target: Dest | None = GENERAL
    priority: int = 0
    flagged: bool = False
    banners: tuple[str, ...] = ()
    message: str | None = None  # template; the engine renders it
    message_windows: tuple[Window, ...] = ()  # what {next_allowed} refers to
    action_rule: str | None = None
    target_rule: str | None = None
    matched: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    predicates: tuple[Predicate, ...]

    def matches(self, facts: Facts) -> bool:
        return all(p(facts) for p in self.predicates)

    def apply(self, p: Proposal) -> Proposal:
        then, rid = self.rule.then, self.rule.id
        when = self.rule.when
        changes: dict[str, Any] = {"matched": (*p.matched, self.rule), "flagged": p.flagged or then.flag}
        if then.action is not None:
            changes.update(action=then.action, action_rule=rid)
            if then.action == "deflect":
                changes.update(target=None, target_rule=rid)
        if then.target is not None:
            changes.update(target=then.target.as_dest(), target_rule=rid)
        if then.priority is not None:
            changes["priority"] = then.priority
        if then.banner is not None:
            changes["banners"] = (*p.banners, then.banner)
        if then.message is not None:
            changes.update(message=then.message, message_windows=tuple(when.outside_windows or when.windows or ()))
        return dataclasses.replace(p, **changes)


@dataclass(frozen=True, slots=True)
class CompiledRuleSet:
    version: int
    rules: tuple[CompiledRule, ...]
    periods: frozenset[str]  # periods some rule's count_at_least reads
    source: RuleSet

    def propose(self, facts: Facts) -> Proposal:
        """Every matching rule applies what it sets, in order, until one says stop."""
        proposal = Proposal()
        for rule in self.rules:
            if rule.matches(facts):
                proposal = rule.apply(proposal)
                if rule.rule.then.stop:
                    break
        return proposal


def _compile_rule(rule: Rule) -> CompiledRule:
    predicates = tuple(
        build(getattr(rule.when, name)) for name, build in CONDITIONS if getattr(rule.when, name) is not None
    )
    return CompiledRule(rule, predicates)


def compile_ruleset(ruleset: RuleSet) -> CompiledRuleSet:
    _check_unique(ruleset)
    periods = frozenset(r.when.count_at_least.period for r in ruleset.rules if r.when.count_at_least is not None)
    return CompiledRuleSet(ruleset.version, tuple(_compile_rule(r) for r in ruleset.rules), periods, ruleset)


def _rule(rid: str, description: str, when: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "description": description, "when": when, "then": then}


# Shipped as the first published rule set (also inserted by a SQL migration): JSON-able data.
DEFAULT_RULESET: dict[str, Any] = {
    "version": 1,
    "rules": [
        _rule(
            "general",
            "Everything goes to the general queue unless a later rule says otherwise",
            {},
            {"action": "route", "target": {"type": "queue", "id": "general"}},
        ),
        _rule(
            "email",
            "Emails go to the email team",
            {"channels": ["email"]},
            {"target": {"type": "queue", "id": "email"}},
        ),
        _rule(
            "web-form",
            "Web forms go to the web team",
            {"channels": ["web_form"]},
            {"target": {"type": "queue", "id": "web"}},
        ),
        _rule(
            "reception",
            "Visits go to reception",
            {"channels": ["visit"]},
            {"target": {"type": "queue", "id": "reception"}},
        ),
        _rule(
            "withheld-phone",
            "Calls from withheld numbers go to the general queue",
            {"channels": ["phone"], "sender": ["withheld"]},
            {"target": {"type": "queue", "id": "general"}},
        ),
        _rule(
            "caution",
            "Customers with a caution marker go to the caution queue, flagged",
            {"kinds": ["caution"]},
            {"target": {"type": "queue", "id": "caution"}, "flag": True, "stop": True},
        ),
    ],
    "tests": [
        {
            "name": "unknown caller goes to general",
            "contact": {"channel": "phone"},
            "situation": {"sender": "unmatched"},
            "expect": {"action": "route", "target": {"type": "queue", "id": "general"}},
        },
        {
            "name": "email goes to the email queue",
            "contact": {"channel": "email"},
            "situation": {"sender": "unmatched"},
            "expect": {"action": "route", "target": {"type": "queue", "id": "email"}},
        },
        {
            "name": "caution marker goes to the caution queue",
            "contact": {"channel": "phone"},
            "situation": {"restrictions": [{"params": {"kind": "caution", "note": "Threatened staff"}}]},
            "expect": {"action": "route", "target": {"type": "queue", "id": "caution"}, "flagged": True},
        },
        {
            "name": "written-only caller is deflected",
            "contact": {"channel": "phone"},
            "situation": {"restrictions": [{"params": {"kind": "written_only"}}]},
            "expect": {"action": "deflect"},
        },
    ],
}
