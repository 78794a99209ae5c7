"""A manager rule set compiled for evaluation: each `when` becomes predicates over the Facts of one
contact, by a table; the first matching rules propose a route, and restrictions are applied after."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .calendar import Calendar
from .outcome import Dest
from .params import Window
from .ruleset import GENERAL, CountAtLeast, Rule, RuleSet, check_unique
from .vocabulary import Action
from .words import address_key, contains_phrase, phrase_words


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
    to: frozenset[str] = frozenset()  # the numbers or mailboxes contacted (gateway.rules.words.address_keys)
    subject_words: tuple[str, ...] = ()
    adjustments: frozenset[str] = frozenset()  # flags recorded for the customers concerned
    on_behalf: bool = False  # a representative, or someone naming the customer they act for


Predicate = Callable[[Facts], bool]


def _any_of(attr: str) -> Callable[[Any], Predicate]:
    def build(values: list[str]) -> Predicate:
        wanted = frozenset(values)
        if attr in ("senders", "kinds", "adjustments"):
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


def _to(addresses: list[str]) -> Predicate:
    wanted = frozenset(address_key(a) for a in addresses)
    return lambda f: bool(wanted & f.to)


def _subject_has(phrases: list[str]) -> Predicate:
    wanted = tuple(phrase_words(p) for p in phrases)
    return lambda f: any(contains_phrase(f.subject_words, p) for p in wanted)


def _has_adjustments(wanted: bool) -> Predicate:
    return lambda f: bool(f.adjustments) == wanted


def _on_behalf(wanted: bool) -> Predicate:
    return lambda f: f.on_behalf == wanted


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
    ("to", _to),
    ("subject_has", _subject_has),
    ("has_adjustments", _has_adjustments),
    ("adjustments", _any_of("adjustments")),
    ("on_behalf", _on_behalf),
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
    conditions: frozenset[str] = frozenset()  # the `when` fields some rule sets (what the facts must hold)

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
    check_unique(ruleset)
    periods = frozenset(r.when.count_at_least.period for r in ruleset.rules if r.when.count_at_least is not None)
    conditions = frozenset(name for r in ruleset.rules for name, _ in CONDITIONS if getattr(r.when, name) is not None)
    return CompiledRuleSet(
        ruleset.version, tuple(_compile_rule(r) for r in ruleset.rules), periods, ruleset, conditions
    )
